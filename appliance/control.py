"""The local control socket between the tools (cl_status, hb_standby, hb_takeover) and the daemon.

One JSON object per line each way.  Kept free of asyncio and pyroute2 imports on the client
side so the tools start fast.
"""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_LINE = 1 << 20


class NotRunning(Exception):
    """Nothing answers on the control socket: the daemon is stopped."""


def request(path: str, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(path)
        except OSError as exc:
            raise NotRunning(str(exc)) from exc
        s.sendall(json.dumps(payload).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < MAX_LINE:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    if not buf:
        raise NotRunning("no answer")
    return json.loads(buf)
