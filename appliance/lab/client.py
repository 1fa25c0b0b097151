"""The client namespace: HTTP probes of (floating) addresses through a long-lived poller.

The poller (`_poller.py`, stdlib only) runs inside the client namespace with `ip netns exec`
and is driven over a JSON-lines pipe, so no process is forked per request and the poll timing
does not depend on the test process's GIL. Its sample times are time.monotonic() values,
which are comparable with the test process's (CLOCK_MONOTONIC is system wide).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import List, Optional, Sequence, Tuple

from ._proc import LabError, run
from .capture import ArpFrame, is_gratuitous, parse_arp_frames  # noqa: F401  (re-export)

POLLER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_poller.py")
MAX_POLL_SECONDS = 600.0


class Client:
    """A client on the lab bridge. Created by Lab (ip .250)."""

    def __init__(self, ns: str, ip: str, mac: str, log_path: Optional[str] = None) -> None:
        self.ns = ns
        self.ip = ip
        self.ip6: Optional[str] = None  # set by Lab when it has ipv6_subnet
        self.mac = mac
        self._lock = threading.Lock()
        self._polling = False
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self._proc: Optional[subprocess.Popen] = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-u", POLLER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,
        )
        self._buf = b""
        self._call({"op": "ping"}, wait=15.0)

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def _readline(self, deadline: float) -> bytes:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        for _ in range(100000):
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise LabError(f"client poller exited (rc={proc.poll()})")
                self._buf += chunk
        raise LabError("client poller did not answer in time")

    def _call(self, msg: dict, wait: float) -> dict:
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                raise LabError("client poller is not running")
            assert proc.stdin is not None
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            proc.stdin.flush()
            ans = json.loads(self._readline(time.monotonic() + wait))
        if not ans.get("ok"):
            raise LabError(f"client poller error: {ans.get('error')}")
        return ans

    def get(self, ip: str, port: int = 80, timeout: float = 0.25) -> Optional[str]:
        """One HTTP `GET /` from the client; the stripped body (status 200) or None."""
        ans = self._call({"op": "get", "ip": ip, "port": port, "timeout": timeout},
                         wait=timeout + 10.0)
        return ans["answer"]

    def start_polling(self, ip: str, interval: float = 0.025, port: int = 80,
                      timeout: float = 0.25, max_seconds: float = MAX_POLL_SECONDS) -> None:
        """Poll ip in the background every `interval` s until stop_polling() (or max_seconds,
        at most 600 s). Raises if already polling."""
        if self._polling:
            raise LabError("client is already polling; call stop_polling() first")
        self._call({"op": "start", "ip": ip, "port": port, "interval": interval,
                    "timeout": timeout, "max_seconds": min(max_seconds, MAX_POLL_SECONDS)},
                   wait=10.0)
        self._polling = True

    def stop_polling(self) -> List[Tuple[float, Optional[str]]]:
        """Stop polling; samples as (monotonic time the request was sent, answer or None)."""
        ans = self._call({"op": "stop"}, wait=15.0)
        self._polling = False
        return [(float(t), a) for t, a in ans["samples"]]

    def wait_for(self, ip: str, expected: Optional[str], timeout: float, port: int = 80,
                 interval: float = 0.025) -> float:
        """Probe ip until the answer == expected (None = no answer); elapsed seconds.

        Raises TimeoutError with the last answers seen."""
        start = time.monotonic()
        deadline = start + timeout
        last: List[Optional[str]] = []
        for _ in range(int(timeout / interval) + 10):
            remaining = deadline - time.monotonic()
            ans = self.get(ip, port=port, timeout=max(0.05, min(0.25, remaining)))
            if ans == expected:
                return time.monotonic() - start
            last = (last + [ans])[-5:]
            if time.monotonic() + interval >= deadline:
                break
            time.sleep(interval)
        raise TimeoutError(
            f"{ip}:{port} did not answer {expected!r} within {timeout}s; last answers: {last}")

    def run(self, argv: Sequence[str], timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run argv in the client namespace (network only)."""
        return run(["ip", "netns", "exec", self.ns] + list(argv), timeout=timeout, check=check)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
            self._log = subprocess.DEVNULL
        self._polling = False
