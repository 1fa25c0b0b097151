"""Logging in 3.0.6's shape, through a queue so the heartbeat path never waits on disk or syslog.

Lines look like `Nov 26 07:16:53 server1 heartbeat: [1234]: info: text` (syslogmsgfmt), which is
what operators and Heartbeat's own CTS patterns grep for.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys

LOGGER = "heartbeat"
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRIT",
}
_FACILITIES = logging.handlers.SysLogHandler.facility_names


class HeartbeatFormatter(logging.Formatter):
    def __init__(self, node: str, with_time: bool = True) -> None:
        super().__init__()
        self.node = node
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, "info")
        text = f"heartbeat: [{record.process}]: {level}: {record.getMessage()}"
        if not self.with_time:
            return text
        stamp = self.formatTime(record, "%b %d %H:%M:%S")
        return f"{stamp} {self.node} {text}"


class _Listener(logging.handlers.QueueListener):
    pass


_listener: _Listener | None = None


def setup(
    node: str,
    logfile: str | None,
    debugfile: str | None,
    facility: str | None,
    debug: int = 0,
    stderr: bool = False,
) -> logging.Logger:
    """Route the `heartbeat` logger to the configured sinks via a background thread."""
    global _listener
    stop()
    handlers: list[logging.Handler] = []
    fmt = HeartbeatFormatter(node)
    for path, level in ((logfile, logging.INFO), (debugfile, logging.DEBUG)):
        if path and path != "/dev/null":
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            h = logging.handlers.WatchedFileHandler(path)
            h.setLevel(level)
            h.setFormatter(fmt)
            handlers.append(h)
    if facility and facility in _FACILITIES and os.path.exists("/dev/log"):
        try:
            h = logging.handlers.SysLogHandler("/dev/log", _FACILITIES[facility])
            h.setLevel(logging.INFO)
            h.setFormatter(HeartbeatFormatter(node, with_time=False))
            handlers.append(h)
        except OSError:
            pass
    if stderr:
        h = logging.StreamHandler(sys.stderr)
        h.setLevel(logging.DEBUG if debug else logging.INFO)
        h.setFormatter(fmt)
        handlers.append(h)
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [logging.handlers.QueueHandler(q)]
    logger.setLevel(logging.DEBUG if (debug or debugfile) else logging.INFO)
    logger.propagate = False
    _listener = _Listener(q, *handlers, respect_handler_level=True)
    _listener.start()
    return logger


def stop() -> None:
    """Flush and stop the writer thread (at exit, and before re-configuring on reload)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for h in _listener.handlers:
            h.close()
        _listener = None
