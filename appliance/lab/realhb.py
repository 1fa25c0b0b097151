"""Real Heartbeat 3.0.6 (Debian's `heartbeat` package) beside our daemon in the namespace lab.

    from appliance.lab import Lab
    from appliance.lab.realhb import MixedCluster
    lab = Lab(["server1", "server2"])
    c = MixedCluster(lab, ClusterConfig(...), real_nodes={"server1"}).setup()
    c.start("server1"); c.start("server2")        # real 3.0.6 on server1, ours on server2
    c.wait_holders(["server1"])
    c.cl_status("server1", "nodestatus", "server2")   # /usr/bin/cl_status on the real node
    c.hb_standby("server2")                            # our hb_standby tool on our node

A real node needs, beside what the Lab already gives every node (private /etc/ha.d copied from
the host with resource.d/IPaddr, harc, rc.d/*, shellfuncs; private /run, /var/lib/heartbeat,
/var/log; `brd +` on eth0):
  * /run/heartbeat and its ccm, crm, dopd subdirectories owned hacluster:haclient, mode 750,
    /run/crm likewise (what the init script's StartHA makes);
  * /run/resource-agents (OCF HA_RSCTMP, root, 1755) and /run/heartbeat/rsctmp (the old name);
  * ha.cf with `logfile /var/log/ha-log` (ClusterConfig writes it); the harc/ResourceManager
    lines land in the same file through HA_LOGFILE.
prepare_real_node() makes all of that and checks the package files are there; MixedCluster
calls it before every start of a real node (a crash may leave /run in any state).

The real `heartbeat` daemonizes (the parent returns once the master process is set up); `-k`
sends SIGTERM and waits until it is gone, after the resources are released.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from appliance.lab._proc import LabError, pid_alive
from appliance.lab.cluster import VIP, Cluster, ClusterConfig
from appliance.lab.netns import Lab
from appliance.lab.node import Node

REAL_HEARTBEAT = "/usr/libexec/heartbeat/heartbeat"
REAL_CL_STATUS = "/usr/bin/cl_status"
REAL_HB_STANDBY = "/usr/share/heartbeat/hb_standby"
REAL_HB_TAKEOVER = "/usr/share/heartbeat/hb_takeover"
REAL_API_TEST = "/usr/libexec/heartbeat/api_test"
REAL_NOARCH = "/usr/share/heartbeat"

# Files of the package a real node runs through (checked in each node's private /etc/ha.d).
_NEEDED_IN_HAD = ("harc", "shellfuncs", "rc.d/status", "rc.d/ip-request-resp",
                  "rc.d/ask_resources", "rc.d/hb_takeover", "rc.d/ip-request",
                  "resource.d/IPaddr", "resource.d/IPaddr2")

# Real 3.0.6 log lines worth waiting for (from heartbeat.c / ResourceManager / mach_down).
LOG_COMM_UP = "Comm_now_up(): updating status to active"
LOG_INITIAL_DONE = "Initial resource acquisition complete"
LOG_SHUTDOWN_DONE = "Heartbeat shutdown complete."


def real_available() -> bool:
    """True if Debian's heartbeat package (3.0.6) is installed."""
    return all(os.access(p, os.X_OK) for p in (REAL_HEARTBEAT, REAL_CL_STATUS))


def _ids(user: str, group: str) -> tuple[int, int]:
    return pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid


def _mkdir(path: str, mode: int, uid: int = 0, gid: int = 0) -> None:
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def prepare_real_node(node: Node) -> None:
    """Make node able to run the real 3.0.6 daemon (idempotent; see the module docstring)."""
    if not real_available():
        raise LabError(f"real Heartbeat not installed ({REAL_HEARTBEAT}, {REAL_CL_STATUS})")
    run_dir = node.host_path("/run")
    had = node.host_path("/etc/ha.d")
    varlib = node.host_path("/var/lib/heartbeat")
    varlog = node.host_path("/var/log")
    assert run_dir and had and varlib and varlog
    uid, gid = _ids("hacluster", "haclient")
    for sub in ("heartbeat", "heartbeat/ccm", "heartbeat/crm", "heartbeat/dopd", "crm"):
        _mkdir(os.path.join(run_dir, sub), 0o750, uid, gid)
    _mkdir(os.path.join(run_dir, "resource-agents"), 0o1755)
    _mkdir(os.path.join(run_dir, "heartbeat", "rsctmp"), 0o1755)
    _mkdir(os.path.join(run_dir, "lock"), 0o1777)
    os.makedirs(varlib, exist_ok=True)
    os.makedirs(varlog, exist_ok=True)
    missing = [f for f in _NEEDED_IN_HAD if not os.path.exists(os.path.join(had, f))]
    if missing:
        raise LabError(f"node {node.name}: /etc/ha.d lacks {missing} (copied from the host's "
                       "/etc/ha.d: is the heartbeat package installed?)")
    # Heartbeat's bcast sends to the interface's broadcast address: without `brd +` it sends
    # to 0.0.0.0 and hears nobody (lab-notes). The Lab sets it; check rather than trust.
    links = node._addr_json("eth0")
    if not any(a.get("broadcast") for link in links for a in link.get("addr_info", [])
               if a.get("family") == "inet" and a.get("local") == node.ip):
        raise LabError(f"node {node.name}: eth0 {node.ip} has no broadcast address")


@dataclass
class WireEvent:
    """One decoded heartbeat datagram from a capture (see wire_timeline)."""

    t: float                 # seconds since the first datagram of the capture
    ts: float                # pcap wall-clock timestamp
    ip: str                  # IP source address
    fields: list[tuple[str, str]]   # (name, value) in wire order; binaries as hex
    fmt: str                 # "netstring" | "classic" | "undecodable: ..."
    trailer: Optional[tuple[int, str]]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        for k, v in self.fields:
            if k == name:
                return v
        return default

    @property
    def type(self) -> str:
        return self.get("t") or "?"

    @property
    def src(self) -> str:
        return self.get("src") or self.ip

    def brief(self, skip: Iterable[str] = ("srcuuid", "destuuid", "ts", "ld", "ttl", "auth",
                                           "hg", "protocol")) -> str:
        skip = set(skip)
        body = " ".join(f"{k}={v}" for k, v in self.fields if k not in skip)
        return f"t={self.t:7.3f} {body}"


def wire_timeline(pcap_path: str, port: int = 694) -> list[WireEvent]:
    """Decode every UDP/port datagram of a capture with our codec (no auth check)."""
    from appliance.errors import DecodeError
    from appliance.wire.message import FT_BINARY, FT_STRING, decode_packet
    from appliance.wire.pcap import read_udp_datagrams

    out: list[WireEvent] = []
    grams = read_udp_datagrams(pcap_path, port)
    t0 = grams[0].ts if grams else 0.0
    for d in grams:
        if d.dport != port:
            continue
        try:
            pkt = decode_packet(d.payload)
        except DecodeError as exc:
            out.append(WireEvent(d.ts - t0, d.ts, d.src, [], f"undecodable: {exc}", None))
            continue
        fields = []
        for name, ftype, value in pkt.msg:
            if ftype == FT_STRING:
                fields.append((name, str(value)))
            elif ftype == FT_BINARY:
                fields.append((name, bytes(value).hex()))  # type: ignore[arg-type]
            else:
                fields.append((name, f"({ftype}){value!r}"))
        out.append(WireEvent(d.ts - t0, d.ts, d.src, fields, pkt.fmt, pkt.trailer))
    return out


def format_timeline(events: Iterable[WireEvent], keep_status: bool = False,
                    keep_ack: bool = False) -> str:
    """Readable text of a timeline; heartbeats (status without change) and ACKs dropped unless
    asked, but each node's state changes in status messages are kept."""
    lines = []
    last_st: dict[str, Optional[str]] = {}
    for ev in events:
        if ev.type == "status" and not keep_status:
            if last_st.get(ev.src) == ev.get("st"):
                continue
            last_st[ev.src] = ev.get("st")
        if ev.type == "NS_ackmsg" and not keep_ack:
            continue
        lines.append(ev.brief())
    return "\n".join(lines)


class MixedCluster(Cluster):
    """A Cluster whose `real_nodes` run Debian's Heartbeat 3.0.6, the others our daemon.

    Same configs (ClusterConfig writes ha.cf/authkeys/haresources for both kinds). start, stop,
    cl_status, tool, daemon_pids pick the real binaries for real nodes. Extra helpers:
    hb_standby, hb_takeover, wait_log, is_real, kind.
    """

    def __init__(self, lab: Lab, config: ClusterConfig | None = None,
                 real_nodes: Iterable[str] = (), binary: str | None = None) -> None:
        super().__init__(lab, config, binary)
        self.real_nodes = set(real_nodes)
        unknown = self.real_nodes - set(self.names)
        if unknown:
            raise ValueError(f"real_nodes not in the lab: {sorted(unknown)}")

    def is_real(self, name: str) -> bool:
        return name in self.real_nodes

    def kind(self, name: str) -> str:
        return "real" if self.is_real(name) else "ours"

    def setup(self) -> MixedCluster:
        super().setup()
        for name in self.real_nodes:
            prepare_real_node(self.lab.node(name))
        return self

    # ---- tools ------------------------------------------------------------------------------

    def tool(self, node: str, name: str) -> list[str]:
        if self.is_real(node):
            real = {"cl_status": REAL_CL_STATUS, "hb_standby": REAL_HB_STANDBY,
                    "hb_takeover": REAL_HB_TAKEOVER, "heartbeat": REAL_HEARTBEAT,
                    "api_test": REAL_API_TEST}
            if name not in real:
                raise ValueError(f"no real tool {name!r}")
            return [real[name]]
        return super().tool(node, name)

    def start(self, name: str, check: bool = True):
        if not self.is_real(name):
            return super().start(name, check)
        node = self.lab.node(name)
        prepare_real_node(node)
        res = node.run([REAL_HEARTBEAT], timeout=60, check=check)
        if res.returncode == 0:
            # The parent returns after forking; make sure the master process is there.
            t0 = time.monotonic()
            while not self.daemon_pids(name):
                if time.monotonic() - t0 > 10:
                    raise LabError(f"real heartbeat on {name} exited at start:\n"
                                   + self.log(name)[-2000:])
                time.sleep(0.05)
        return res

    def stop(self, name: str, check: bool = True, timeout: float = 120):
        """`heartbeat -k` (returns once the daemon is gone); TimeoutExpired after timeout.
        A 3.0.6 node delays its shutdown while it thinks a resource transition is under way
        on either side ("Shutdown delayed until current resource activity finishes")."""
        binary = REAL_HEARTBEAT if self.is_real(name) else self.binary
        return self.lab.node(name).run([binary, "-k"], timeout=timeout, check=check)

    def cl_status(self, name: str, *args: str, check: bool = False):
        return self.lab.node(name).run([*self.tool(name, "cl_status"), *args], timeout=30,
                                       check=check)

    def hb_standby(self, name: str, *args: str, check: bool = True):
        return self.lab.node(name).run([*self.tool(name, "hb_standby"), *args], timeout=30,
                                       check=check)

    def hb_takeover(self, name: str, *args: str, check: bool = True):
        return self.lab.node(name).run([*self.tool(name, "hb_takeover"), *args], timeout=30,
                                       check=check)

    def daemon_pids(self, name: str) -> list[int]:
        if not self.is_real(name):
            return super().daemon_pids(name)
        # Only the heartbeat processes themselves (master, FIFO reader, media children):
        # ResourceManager & co. also have "heartbeat" in their command lines.
        out = []
        for pid in self.lab.node(name).pids():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe == REAL_HEARTBEAT and pid_alive(pid):
                out.append(pid)
        return out

    # ---- logs -------------------------------------------------------------------------------

    def log(self, name: str) -> str:
        """The node's /var/log/ha-log. Bytes that are not UTF-8 are replaced: 3.0.6 dumps the
        fields of rejected messages, binary uuids included ("MSG[3] : [srcuuid=...]")."""
        path = self.lab.node(name).host_path("/var/log/ha-log")
        try:
            with open(path, "rb") as fh:   # type: ignore[arg-type]
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, name: str, pattern: str | re.Pattern, timeout: float = 30.0,
                 after: int = 0) -> re.Match:
        """Poll (bounded) node's ha-log until pattern (regex) matches past offset `after`."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        t0 = time.monotonic()
        text = ""
        while time.monotonic() - t0 < timeout:
            text = self.log(name)
            m = rx.search(text, after)
            if m:
                return m
            time.sleep(0.1)
        raise TimeoutError(f"{name}: no log line matching {rx.pattern!r} after {timeout:.0f}s; "
                           f"log tail:\n{text[after:][-3000:]}")

    def log_mark(self, name: str) -> int:
        """Offset of the end of node's ha-log now (for wait_log(after=...))."""
        return len(self.log(name))

    def wait_until(self, cond: Callable[[], bool], what: str, timeout: float = 30.0,
                   interval: float = 0.1) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if cond():
                return time.monotonic() - t0
            time.sleep(interval)
        raise TimeoutError(f"not reached after {timeout:.0f}s: {what}")

    def stop_all(self) -> None:
        for name in self.names:
            if self.daemon_pids(name):
                self.stop(name, check=False)


__all__ = [
    "LOG_COMM_UP",
    "LOG_INITIAL_DONE",
    "LOG_SHUTDOWN_DONE",
    "MixedCluster",
    "REAL_API_TEST",
    "REAL_CL_STATUS",
    "REAL_HB_STANDBY",
    "REAL_HB_TAKEOVER",
    "REAL_HEARTBEAT",
    "VIP",
    "WireEvent",
    "format_timeline",
    "prepare_real_node",
    "real_available",
    "wire_timeline",
]
