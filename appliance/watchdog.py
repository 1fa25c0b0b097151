"""Keeping watchdogs fed from the heartbeat loop itself, so a stuck loop stops feeding them.

* The `watchdog` directive: a /dev/watchdog-style device, opened write-only, timeout set to
  ceil((deadtime_ms + 10) / 1000) s, one NUL byte per heartbeat, magic `V` on a clean stop.
* systemd: READY=1 / RELOADING=1 / STOPPING=1 / WATCHDOG=1 through sdnotify when NOTIFY_SOCKET
  is set (Type=notify with WatchdogSec).
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import struct

log = logging.getLogger("heartbeat")

WDIOC_SETTIMEOUT = 0xC0045706   # _IOWR('W', 6, int)


class HardwareWatchdog:
    def __init__(self, path: str, deadtime_ms: int) -> None:
        self.path = path
        self.timeout = math.ceil((deadtime_ms + 10) / 1000)
        self.fd: int | None = None

    def open(self) -> None:
        try:
            # O_NONBLOCK: a FIFO standing in for the device must not block start-up.
            self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.error("Cannot open watchdog device %s: %s", self.path, exc.strerror)
            return
        try:
            fcntl.ioctl(self.fd, WDIOC_SETTIMEOUT, struct.pack("i", self.timeout))
        except OSError:
            log.debug("watchdog %s: cannot set timeout (not a watchdog device)", self.path)
        log.info("Watchdog device %s opened, timeout %d s", self.path, self.timeout)

    def feed(self) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"\0")
        except BlockingIOError:
            pass
        except OSError as exc:
            log.error("Watchdog write to %s failed (%s): closing it", self.path, exc.strerror)
            self._close_fd()

    def close(self) -> None:
        """Clean stop: the magic close character disarms a real watchdog."""
        if self.fd is None:
            return
        try:
            os.write(self.fd, b"V")
        except OSError:
            pass
        self._close_fd()

    def _close_fd(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class SystemdNotify:
    """sdnotify, only when systemd gave us a socket; silently nothing otherwise."""

    def __init__(self) -> None:
        self._notifier = None
        if os.environ.get("NOTIFY_SOCKET"):
            try:
                import sdnotify

                self._notifier = sdnotify.SystemdNotifier()
            except ImportError:
                log.warning("NOTIFY_SOCKET is set but sdnotify is not available")

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    def notify(self, state: str) -> None:
        if self._notifier is not None:
            self._notifier.notify(state)
