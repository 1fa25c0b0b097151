"""A Heartbeat cluster on top of the namespace lab: configs, start/stop, and outside checks.

Used by the end-to-end tests, the demo and the benchmark.  The daemon binary is ours from the
venv by default; HBA_HEARTBEAT points at another one (the frozen program, or Debian's
/usr/sbin/heartbeat for the reference implementation).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from appliance.lab.httpd import install_httpd
from appliance.lab.netns import Lab
from appliance.lab.node import Node

VIP = "192.168.56.200"


def default_heartbeat() -> str:
    return os.environ.get("HBA_HEARTBEAT") or os.path.join(os.path.dirname(sys.executable), "heartbeat")


@dataclass
class ClusterConfig:
    keepalive: str = "200ms"
    deadtime: str = "2"
    warntime: str = "1"
    initdead: str = "4"
    auto_failback: str = "on"
    media: list[str] = field(default_factory=lambda: ["bcast eth0"])
    auth: tuple[int, str, str] = (2, "sha1", "lab-secret-2")
    haresources: str = f"server1 {VIP} httpd\n"
    extra: list[str] = field(default_factory=list)

    def hacf(self, nodes: list[str]) -> str:
        lines = [
            "logfile /var/log/ha-log",
            "debugfile /var/log/ha-debug",
            f"keepalive {self.keepalive}",
            f"deadtime {self.deadtime}",
            f"warntime {self.warntime}",
            f"initdead {self.initdead}",
            "udpport 694",
            *self.media,
            f"auto_failback {self.auto_failback}",
            *self.extra,
            *(f"node {n}" for n in nodes),
        ]
        return "\n".join(lines) + "\n"

    def authkeys(self) -> str:
        idx, method, key = self.auth
        entry = f"{idx} crc" if method == "crc" else f"{idx} {method} {key}"
        return f"auth {idx}\n{entry}\n"


class Cluster:
    def __init__(self, lab: Lab, config: ClusterConfig | None = None, binary: str | None = None) -> None:
        self.lab = lab
        self.config = config or ClusterConfig()
        self.binary = binary or default_heartbeat()
        self.names = list(lab.nodes)

    def setup(self) -> Cluster:
        for node in self.lab.nodes.values():
            self.configure(node)
            install_httpd(node)
        return self

    def configure(self, node: Node, config: ClusterConfig | None = None) -> None:
        cfg = config or self.config
        node.write("/etc/ha.d/ha.cf", cfg.hacf(self.names))
        node.write("/etc/ha.d/authkeys", cfg.authkeys(), mode=0o600)
        node.write("/etc/ha.d/haresources", cfg.haresources)

    def tool(self, node: str, name: str) -> list[str]:
        """argv for one of our tools: the program answers to its name via a sibling link."""
        sibling = os.path.join(os.path.dirname(self.binary), name)
        return [sibling] if os.path.exists(sibling) else [self.binary, name]

    def start(self, name: str, check: bool = True):
        return self.lab.node(name).run([self.binary], timeout=60, check=check)

    def stop(self, name: str, check: bool = True):
        return self.lab.node(name).run([self.binary, "-k"], timeout=120, check=check)

    def cl_status(self, name: str, *args: str, check: bool = False):
        return self.lab.node(name).run([*self.tool(name, "cl_status"), *args], timeout=30, check=check)

    def holders(self, ip: str = VIP) -> list[str]:
        return [n for n, node in self.lab.nodes.items() if node.has_address(ip)]

    def wait_holders(self, expected: list[str], ip: str = VIP, timeout: float = 30.0) -> float:
        """Poll (bounded) until exactly `expected` hold the address; returns seconds waited."""
        t0 = time.monotonic()
        seen: list[str] = []
        while time.monotonic() - t0 < timeout:
            seen = self.holders(ip)
            if sorted(seen) == sorted(expected):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TimeoutError(f"holders of {ip}: expected {expected}, still {seen} after {timeout:.0f}s")

    def wait_status(self, name: str, node: str, state: str, timeout: float = 20.0) -> None:
        t0 = time.monotonic()
        out = ""
        while time.monotonic() - t0 < timeout:
            out = self.cl_status(name, "nodestatus", node).stdout.strip()
            if out == state:
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} sees {node} as {out!r}, expected {state!r}")

    def log(self, name: str) -> str:
        try:
            return self.lab.node(name).read("/var/log/ha-log")
        except OSError:
            return ""

    def daemon_pids(self, name: str) -> list[int]:
        node = self.lab.node(name)
        out = []
        for pid in node.pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"heartbeat" in cmd and b"lighttpd" not in cmd:
                out.append(pid)
        return out

    def stop_all(self) -> None:
        for name in self.names:
            if self.daemon_pids(name):
                self.stop(name, check=False)
