"""Stand-ins for the daemon's watchdog device and systemd's NOTIFY_SOCKET, used by the fault
suite (tests/e2e/test_faults.py); re-exported by appliance.lab.faults."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from typing import List, Optional, Tuple


class FifoWatchdog:
    """Reader of a FIFO the daemon's `watchdog` directive points at; records (time, bytes)."""

    def __init__(self, host_path: str) -> None:
        self.path = host_path
        if os.path.lexists(host_path):
            os.unlink(host_path)
        os.mkfifo(host_path, 0o600)
        self.fd = os.open(host_path, os.O_RDONLY | os.O_NONBLOCK)
        self.events: List[Tuple[float, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fifo-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if data:
                self.events.append((time.monotonic(), data))
            else:           # no writer (EOF): do not spin
                self._stop.wait(0.05)

    def fed_between(self, t0: float, t1: float = float("inf")) -> int:
        return sum(len(d) for t, d in list(self.events) if t0 <= t <= t1)

    def last_feed(self) -> Optional[float]:
        ev = list(self.events)
        return ev[-1][0] if ev else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            os.close(self.fd)
        except OSError:
            pass


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; records (time, text)."""

    def __init__(self, host_path: str) -> None:
        if os.path.lexists(host_path):
            os.unlink(host_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(host_path)
        self.events: List[Tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-socket", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.events.append((time.monotonic(), data.decode(errors="replace")))

    def count(self, text: str, t0: float = 0.0, t1: float = float("inf")) -> int:
        return sum(1 for t, d in list(self.events) if t0 <= t <= t1 and text in d)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
