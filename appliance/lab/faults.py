"""Fault-injection helpers for the end-to-end fault suite (tests/e2e/test_faults.py).

Everything here observes or disturbs a lab cluster from the outside; nothing touches the
daemon's code:

* :class:`AddrProbe` - one rtnetlink socket per node namespace (opened with setns(2) in the
  calling thread only), so "who holds the floating IP" costs one netlink dump per node, not
  one `ip` process per node.
* :func:`service_pids` - lighttpd (or any comm) processes per node, from /proc.
* :class:`HolderMonitor` - a thread sampling the holders every ~50 ms (and the services every
  ~200 ms) while the client polls the address; :class:`MonitorReport` turns the samples into
  episodes with zero or several holders, and the time to one holder after a fault.
* :class:`FifoWatchdog` - the reader end of a FIFO standing in for /dev/watchdog.
* :class:`NotifySocket` - a systemd NOTIFY_SOCKET stand-in.
* :class:`UdpRelay` - a UDP relay in the switch namespace that duplicates, reorders and delays
  heartbeats (the kernel here has no netem); run with `python -m appliance.lab.faults relay`.
* heartbeat-gap analysis of a bridge capture (:func:`heartbeat_gaps`) and gratuitous-ARP
  lookups (:func:`garps`).

FifoWatchdog and NotifySocket live in appliance.lab.watchers, UdpRelay in appliance.lab.relay;
all three are re-exported here.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

from ._proc import LabError, pid_alive
from .capture import ArpFrame, Capture, is_gratuitous, parse_arp_frames
from .relay import UdpRelay, _relay_main
from .watchers import FifoWatchdog, NotifySocket

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster

CLONE_NEWNET = 0x40000000
NETNS_DIRS = ("/run/netns", "/var/run/netns")

# rtnetlink (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h)
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_RTM_GETADDR = 22
_RTM_NEWADDR = 20
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_HDR = struct.Struct("=IHHII")
_IFADDR = struct.Struct("=BBBBI")
_RTA = struct.Struct("=HH")

_libc = ctypes.CDLL(None, use_errno=True)

__all__ = [
    "AddrProbe", "Episode", "FifoWatchdog", "HolderMonitor", "MonitorReport", "NotifySocket",
    "UdpRelay", "cluster_namespaces", "dead_lines", "garps", "heartbeat_gaps", "log_count",
    "log_debug", "netns_inode", "service_pids", "socket_in_netns", "stress", "wait_log",
    "wait_until",
]


def netns_path(ns: str) -> str:
    for d in NETNS_DIRS:
        p = os.path.join(d, ns)
        if os.path.exists(p):
            return p
    raise LabError(f"network namespace {ns!r} not found under {NETNS_DIRS}")


def netns_inode(ns: str) -> int:
    return os.stat(netns_path(ns)).st_ino


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in_netns(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside network namespace `ns` (only this thread switches, briefly)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(netns_path(ns), os.O_RDONLY)
        try:
            _setns(target)
            try:
                return socket.socket(family, kind, proto)
            finally:
                _setns(own)
        finally:
            os.close(target)
    finally:
        os.close(own)


# ---------------------------------------------------------------------------- addresses

class AddrProbe:
    """IPv4 addresses per node via one rtnetlink socket per node namespace."""

    def __init__(self, namespaces: Dict[str, str]) -> None:
        self._socks: Dict[str, socket.socket] = {}
        self._seq = 0
        self._lock = threading.Lock()
        try:
            for name, ns in namespaces.items():
                s = socket_in_netns(ns, socket.AF_NETLINK, socket.SOCK_RAW, 0)
                s.bind((0, 0))
                s.settimeout(2.0)
                self._socks[name] = s
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for s in self._socks.values():
            s.close()
        self._socks.clear()

    def addresses(self, name: str) -> Optional[List[Tuple[str, str]]]:
        """[(address, label)] of every IPv4 address in the node, or None if it cannot tell."""
        with self._lock:
            s = self._socks.get(name)
            if s is None:
                return None
            self._seq += 1
            seq = self._seq
            req = _HDR.pack(_HDR.size + _IFADDR.size, _RTM_GETADDR, _NLM_F_REQUEST | _NLM_F_DUMP,
                            seq, 0) + _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
            out: List[Tuple[str, str]] = []
            try:
                s.send(req)
                for _ in range(1000):
                    data = s.recv(65536)
                    off = 0
                    while off + _HDR.size <= len(data):
                        length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, off)
                        if length < _HDR.size:
                            return None
                        if mseq == seq:
                            if mtype == _NLMSG_DONE:
                                return out
                            if mtype == _NLMSG_ERROR:
                                return None
                            if mtype == _RTM_NEWADDR:
                                out.extend(_parse_addr(data[off + _HDR.size:off + length]))
                        off += (length + 3) & ~3
            except OSError:
                return None
            return None

    def holders(self, ip: str) -> Optional[List[str]]:
        """Nodes holding `ip`; None when some node could not be read."""
        held = []
        for name in self._socks:
            addrs = self.addresses(name)
            if addrs is None:
                return None
            if any(a == ip for a, _ in addrs):
                held.append(name)
        return held


def _parse_addr(payload: bytes) -> List[Tuple[str, str]]:
    if len(payload) < _IFADDR.size:
        return []
    off = _IFADDR.size
    local = address = label = None
    while off + _RTA.size <= len(payload):
        rlen, rtype = _RTA.unpack_from(payload, off)
        if rlen < _RTA.size:
            break
        val = payload[off + _RTA.size:off + rlen]
        if rtype == _IFA_LOCAL and len(val) == 4:
            local = socket.inet_ntoa(val)
        elif rtype == _IFA_ADDRESS and len(val) == 4:
            address = socket.inet_ntoa(val)
        elif rtype == 3:   # IFA_LABEL
            label = val.split(b"\0", 1)[0].decode(errors="replace")
        off += (rlen + 3) & ~3
    ip = local or address
    return [(ip, label or "")] if ip else []


# ---------------------------------------------------------------------------- processes

def service_pids(namespaces: Dict[str, str], comm: str = "lighttpd") -> Dict[str, List[int]]:
    """{node: [pids whose comm is `comm`]} for the given node namespaces, from /proc."""
    by_inode = {}
    for name, ns in namespaces.items():
        try:
            by_inode[f"net:[{netns_inode(ns)}]"] = name
        except LabError:
            continue
    out: Dict[str, List[int]] = {name: [] for name in namespaces}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        name = by_inode.get(link)
        if name is None:
            continue
        try:
            with open(f"/proc/{entry}/comm") as fh:
                if fh.read().strip() != comm:
                    continue
        except OSError:
            continue
        pid = int(entry)
        if pid_alive(pid):
            out[name].append(pid)
    return out


def cluster_namespaces(c: Cluster) -> Dict[str, str]:
    return {name: node.ns for name, node in c.lab.nodes.items()}


# ---------------------------------------------------------------------------- monitor

@dataclass(frozen=True)
class Episode:
    kind: str                  # "zero" | "multi" | "one"
    start: float               # monotonic time of the first sample in the episode
    end: float                 # monotonic time of the first sample after it (or last sample)
    holders: Tuple[str, ...]   # for "multi"/"one": the holders seen (union over the episode)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(repr=False)
class MonitorReport:
    samples: List[Tuple[float, Tuple[str, ...]]] = field(default_factory=list)
    services: List[Tuple[float, Dict[str, int]]] = field(default_factory=list)
    client: List[Tuple[float, Optional[str]]] = field(default_factory=list)
    marks: List[Tuple[float, str]] = field(default_factory=list)
    unreadable: int = 0

    def __repr__(self) -> str:
        return f"MonitorReport({self.summary()})"

    # ---- holders
    def episodes(self, since: float = 0.0, until: float = float("inf")) -> List[Episode]:
        """Runs of samples with the same situation: nobody, one given node, several nodes."""
        eps: List[Episode] = []
        cur_key = None
        cur_start = last_t = 0.0
        cur_set: set = set()
        for t, holders in self.samples:
            if t < since or t > until:
                continue
            if not holders:
                key: Tuple[str, ...] = ("zero",)
            elif len(holders) == 1:
                key = ("one", holders[0])
            else:
                key = ("multi",)
            if key != cur_key:
                if cur_key is not None:
                    eps.append(Episode(cur_key[0], cur_start, t, tuple(sorted(cur_set))))
                cur_key, cur_start, cur_set = key, t, set()
            cur_set |= set(holders)
            last_t = t
        if cur_key is not None:
            eps.append(Episode(cur_key[0], cur_start, last_t, tuple(sorted(cur_set))))
        return eps

    def zero(self, since: float = 0.0, until: float = float("inf")) -> List[Episode]:
        return [e for e in self.episodes(since, until) if e.kind == "zero"]

    def multi(self, since: float = 0.0, until: float = float("inf")) -> List[Episode]:
        return [e for e in self.episodes(since, until) if e.kind == "multi"]

    def settled_at(self, since: float = 0.0) -> Optional[Tuple[float, str]]:
        """(time, holder) from which exactly one node holds the address up to the last sample."""
        eps = self.episodes(since)
        if not eps or eps[-1].kind != "one" or len(eps[-1].holders) != 1:
            return None
        return eps[-1].start, eps[-1].holders[0]

    def time_to_one(self, since: float) -> Optional[float]:
        s = self.settled_at(since)
        return None if s is None else max(0.0, s[0] - since)

    def holders_at(self, t: float) -> Optional[Tuple[str, ...]]:
        best = None
        for st, holders in self.samples:
            if st > t:
                break
            best = holders
        return best

    # ---- services
    def service_multi(self, since: float = 0.0) -> List[Tuple[float, Dict[str, int]]]:
        """Samples where lighttpd ran on more than one node, or twice on one node."""
        return [(t, s) for t, s in self.services
                if t >= since and (sum(1 for v in s.values() if v) > 1 or any(v > 1 for v in s.values()))]

    # ---- client
    def client_answers(self, since: float = 0.0) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for t, a in self.client:
            if t >= since:
                key = a if a is not None else "(none)"
                out[key] = out.get(key, 0) + 1
        return out

    def client_longest_gap(self, since: float = 0.0) -> float:
        """Longest stretch without an answer seen by the client (seconds)."""
        longest = 0.0
        gap_start = None
        last = None
        for t, a in self.client:
            if t < since:
                continue
            last = t
            if a is None:
                gap_start = t if gap_start is None else gap_start
            elif gap_start is not None:
                longest = max(longest, t - gap_start)
                gap_start = None
        if gap_start is not None and last is not None:
            longest = max(longest, last - gap_start)
        return longest

    def client_flaps(self, since: float = 0.0) -> int:
        """How often the answering node changed between two answered requests."""
        prev = None
        flaps = 0
        for t, a in self.client:
            if t < since or a is None:
                continue
            if prev is not None and a != prev:
                flaps += 1
            prev = a
        return flaps

    def mark_time(self, label: str) -> float:
        for t, lab in self.marks:
            if lab == label:
                return t
        raise KeyError(label)

    def summary(self, since: float = 0.0) -> str:
        eps = self.episodes(since)
        z = [e for e in eps if e.kind == "zero"]
        m = [e for e in eps if e.kind == "multi"]
        parts = [
            f"samples={len(self.samples)} unreadable={self.unreadable}",
            f"zero-holder episodes={len(z)} (longest {max((e.duration for e in z), default=0):.2f}s)",
            f"multi-holder episodes={len(m)} (longest {max((e.duration for e in m), default=0):.2f}s"
            f"{', ' + '/'.join(m[0].holders) if m else ''})",
            f"client={self.client_answers(since)} longest-no-answer={self.client_longest_gap(since):.2f}s"
            f" flaps={self.client_flaps(since)}",
            f"service-multi samples={len(self.service_multi(since))}",
        ]
        return "; ".join(parts)

    def timeline(self, since: float = 0.0) -> str:
        base = since or (self.samples[0][0] if self.samples else 0.0)
        lines = [f"  {t - base:+8.2f}s mark {lab}" for t, lab in self.marks]
        for e in self.episodes(since):
            lines.append(f"  {e.start - base:+8.2f}s {e.kind:5s} {'/'.join(e.holders) or '-'}"
                         f" for {e.duration:.2f}s")
        return "\n".join(sorted(lines, key=lambda s: float(s.split("s", 1)[0])))


class HolderMonitor:
    """Samples the holders of `ip` on every node every `interval` s in a thread.

    With `client=True` the lab client polls http://ip/ meanwhile (its answers are merged into
    the report). Use as a context manager or start()/stop(); stop() returns the report.
    """

    def __init__(self, c: Cluster, ip: str, interval: float = 0.05, service_interval: float = 0.2,
                 client: bool = True, comm: str = "lighttpd") -> None:
        self.c = c
        self.ip = ip
        self.interval = interval
        self.service_interval = service_interval
        self.comm = comm
        self.use_client = client and c.lab.client is not None
        self.namespaces = cluster_namespaces(c)
        self.report = MonitorReport()
        self._probe: Optional[AddrProbe] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._client_polling = False

    def __enter__(self) -> HolderMonitor:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> HolderMonitor:
        self._probe = AddrProbe(self.namespaces)
        if self.use_client:
            assert self.c.lab.client is not None
            self.c.lab.client.start_polling(self.ip, interval=0.05, timeout=0.25)
            self._client_polling = True
        self._thread = threading.Thread(target=self._run, name="holder-monitor", daemon=True)
        self._thread.start()
        # One sample is in before start() returns.
        for _ in range(200):
            if self.report.samples or not self._thread.is_alive():
                break
            time.sleep(0.01)
        return self

    def mark(self, label: str) -> float:
        t = time.monotonic()
        self.report.marks.append((t, label))
        return t

    def current(self) -> Optional[Tuple[str, ...]]:
        return self.report.samples[-1][1] if self.report.samples else None

    def _run(self) -> None:
        assert self._probe is not None
        next_svc = 0.0
        while not self._stop.is_set():
            t = time.monotonic()
            holders = self._probe.holders(self.ip)
            if holders is None:
                self.report.unreadable += 1
            else:
                self.report.samples.append((t, tuple(holders)))
            if t >= next_svc:
                try:
                    svc = service_pids(self.namespaces, self.comm)
                    self.report.services.append((t, {n: len(p) for n, p in svc.items()}))
                except OSError:
                    pass
                next_svc = t + self.service_interval
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self) -> MonitorReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._client_polling:
            assert self.c.lab.client is not None
            try:
                self.report.client = self.c.lab.client.stop_polling()
            finally:
                self._client_polling = False
        if self._probe is not None:
            self._probe.close()
            self._probe = None
        return self.report


# ---------------------------------------------------------------------------- waiting

def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll pred() (bounded) until truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 10):
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"{what}: not true after {timeout:.1f}s (last {last!r})")


def wait_log(c: Cluster, node: str, text: str, timeout: float = 20.0, after: int = 0) -> int:
    """Wait until `text` appears in node's ha-log (after byte offset `after`); its offset."""
    def find():
        i = c.log(node).find(text, after)
        return i + 1 if i >= 0 else 0
    return wait_until(find, timeout, 0.1, f"{node} ha-log contains {text!r}") - 1


def log_count(c: Cluster, text: str, nodes: Optional[Iterable[str]] = None) -> Dict[str, int]:
    return {n: c.log(n).count(text) for n in (nodes or c.names)}


def log_debug(c: Cluster, name: str) -> str:
    try:
        return c.lab.node(name).read("/var/log/ha-debug")
    except OSError:
        return ""


def dead_lines(c: Cluster) -> Dict[str, List[str]]:
    """Per node, the `is dead` lines of its ha-log."""
    return {n: [ln for ln in c.log(n).splitlines() if "is dead" in ln] for n in c.names}


# ---------------------------------------------------------------------------- ARP / captures

def garps(cap: Capture, ip: str, mac: Optional[str] = None, after: float = 0.0) -> List[ArpFrame]:
    """Gratuitous ARP frames for `ip` (from `mac` if given) with monotonic time >= after.
    The capture must have been stopped (or flushed) first."""
    out = []
    for f in parse_arp_frames(cap.path):
        if not is_gratuitous(f) or f.sender_ip != ip:
            continue
        if mac is not None and f.sender_mac != mac.lower():
            continue
        if cap.to_monotonic(f.time) >= after:
            out.append(f)
    return out


def heartbeat_gaps(cap: Capture, since: float = 0.0, until: float = float("inf")) -> Dict[str, float]:
    """Per source node, the longest interval (s) between two of its heartbeat packets seen on
    the bridge (any message type) within [since, until] (monotonic times)."""
    from appliance.wire.message import decode_packet
    from appliance.wire.pcap import read_udp_datagrams

    last: Dict[str, float] = {}
    first: Dict[str, float] = {}
    gaps: Dict[str, float] = {}
    for d in read_udp_datagrams(cap.path):
        t = cap.to_monotonic(d.ts)
        if t < since or t > until:
            continue
        try:
            src = decode_packet(d.payload).msg.get("src")
        except ValueError:
            continue
        if not src:
            continue
        if src in last:
            gaps[src] = max(gaps.get(src, 0.0), t - last[src])
        else:
            first[src] = t
            gaps.setdefault(src, 0.0)
        last[src] = t
    for src in list(gaps):   # silence at the window's edges counts too
        if until != float("inf"):
            gaps[src] = max(gaps[src], until - last[src])
        gaps[src] = max(gaps[src], first[src] - since) if since else gaps[src]
    return gaps


# ---------------------------------------------------------------------------- stress

def stress(c: Cluster, node: str, seconds: int, args: Sequence[str] = ("--cpu", "2", "--io", "1"),
           ) -> subprocess.Popen:
    """stress-ng inside `node` for `seconds` (its own --timeout bounds it)."""
    argv = ["stress-ng", *args, "--timeout", f"{int(seconds)}s", "--quiet"]
    return c.lab.node(node).popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _main(argv: List[str]) -> int:
    if argv and argv[0] == "relay":
        return _relay_main(argv[1:])
    print("usage: python -m appliance.lab.faults relay --listen IP --to BCAST [...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
