"""Where Heartbeat keeps things (spec §12.1), and the per-node identity files.

Every path can be moved with one environment variable (HA_DIR style) so unit tests and check
mode can run on a tree that is not /etc/ha.d; the daemon in production uses the defaults.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    etc: str = "/etc/ha.d"
    state: str = "/var/lib/heartbeat"
    run: str = "/var/run/heartbeat"
    pidfile: str = "/var/run/heartbeat.pid"

    @classmethod
    def from_env(cls, sysconfig: str | None = None) -> Paths:
        """Defaults, overridden by /etc/sysconfig/heartbeat's HA_DIR (when `sysconfig` names it:
        the daemon does, the quick status tools do not), then by the environment."""
        etc = cls.etc
        if sysconfig:
            from appliance.config.sysconfig import load_sysconfig

            etc = load_sysconfig(sysconfig).get("HA_DIR") or etc
        return cls(
            etc=os.environ.get("HA_DIR", etc),
            state=os.environ.get("HA_VARLIB", cls.state),
            run=os.environ.get("HA_VARRUN", cls.run),
            pidfile=os.environ.get("HA_PIDFILE", cls.pidfile),
        )

    @property
    def hacf(self) -> str:
        return os.path.join(self.etc, "ha.cf")

    @property
    def authkeys(self) -> str:
        return os.path.join(self.etc, "authkeys")

    @property
    def haresources(self) -> str:
        return os.path.join(self.etc, "haresources")

    @property
    def extension(self) -> str:
        return os.path.join(self.etc, "hb-appliance.cf")

    @property
    def resource_dirs(self) -> tuple[str, ...]:
        return (os.path.join(self.etc, "resource.d"), "/etc/init.d")

    @property
    def register_socket(self) -> str:
        """Heartbeat's client API socket (stock cl_status, ipfail, api_test)."""
        return os.path.join(self.run, "register")

    @property
    def control_socket(self) -> str:
        return os.path.join(self.run, "hba.sock")


def next_generation(state_dir: str, method: str = "file") -> tuple[int, bool]:
    """Read, increment and durably rewrite hb_generation (16 bytes: %15d + newline).

    Returns (generation, was_new).  A missing or unreadable file starts from time(NULL), as 3.0.6.
    """
    path = os.path.join(state_dir, "hb_generation")
    if method == "time":
        return int(time.time()), False
    fresh = False
    try:
        with open(path) as f:
            gen = int(f.read(64).strip())
    except (OSError, ValueError):
        gen = int(time.time())
        fresh = True
    gen += 1
    os.makedirs(state_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{gen:15d}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return gen, fresh


def node_uuid(state_dir: str) -> tuple[bytes, bool]:
    """16 random bytes kept in hb_uuid; created on first start. Never copy it between nodes."""
    path = os.path.join(state_dir, "hb_uuid")
    try:
        with open(path, "rb") as f:
            data = f.read(16)
        if len(data) == 16:
            return data, False
    except OSError:
        pass
    data = os.urandom(16)
    os.makedirs(state_dir, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return data, True
