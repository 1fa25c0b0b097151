"""Lab topology: a switch namespace with bridge br0, one namespace per node, a client.

Nothing is ever configured in the root namespace: veth pairs are created inside the switch
namespace with their peer placed directly into the node namespace. Namespace names carry a
per-instance prefix ``hbl<pid>x<n>-`` so parallel and leftover runs never collide; stale
namespaces with that pattern are removed only when their creating pid is dead.
"""

from __future__ import annotations

import atexit
import grp
import itertools
import os
import pwd
import re
import shutil
import signal
import tempfile
from typing import Dict, List, Optional, Sequence, Set, Tuple

from ._proc import (
    LabError,
    kill_pids,
    netns_list,
    netns_pids,
    pid_alive,
    run,
    wait_gone,
)
from .capture import Capture
from .client import Client
from .node import Node

DEFAULT_NODES = ("server1", "server2", "server3")
PREFIX_RE = re.compile(r"^hbl(\d+)x(\d+)-")
PARTITION_TABLE = "hblab_part"
HB_PORT = 694
CLIENT_HOST = 250
_COUNTER = itertools.count()
# With ipv6_subnet: DAD on eth0 starts at once (no random delay of up to 1 s) and waits
# 200 ms for an answer instead of 1 s. It still runs: a duplicate is still detected.
FAST_DAD_SYSCTLS = (
    ("net.ipv6.conf.eth0.router_solicitation_delay", 0),
    ("net.ipv6.neigh.eth0.retrans_time_ms", 200),
)

# Host directories whose directory skeleton (owners, modes; no files) seeds each node's
# private copy. /etc/ha.d is copied whole (harc, rc.d, resource.d wrappers, shellfuncs).
_RUN_SUBDIRS = ("heartbeat", "crm", "resource-agents", "lock", "lighttpd", "user")


def _copy_skeleton(src: str, dst: str, max_depth: int) -> None:
    """Recreate the directories under src (not files) in dst with the same owner/mode."""
    if not os.path.isdir(src):
        return
    src = src.rstrip("/")
    for cur, dirs, _files in os.walk(src):
        rel = os.path.relpath(cur, src)
        depth = 0 if rel == "." else rel.count("/") + 1
        if depth >= max_depth:
            dirs[:] = []
        target = dst if rel == "." else os.path.join(dst, rel)
        os.makedirs(target, exist_ok=True)
        st = os.stat(cur)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)


def _ensure_dir(path: str, mode: int, user: Optional[str] = None,
                group: Optional[str] = None) -> None:
    """Create path (mode, owner) unless it already exists (then leave it as copied)."""
    path = path.rstrip("/")
    if os.path.isdir(path):
        return
    os.makedirs(path)
    os.chmod(path, mode)
    try:
        uid = pwd.getpwnam(user).pw_uid if user else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError:      # accounts not there (Heartbeat not installed): stay root
        return
    os.chown(path, uid, gid)


def cleanup_stale() -> List[str]:
    """Delete lab namespaces whose creating pid (from the name) is dead; return them."""
    removed = []
    for ns in netns_list():
        m = PREFIX_RE.match(ns)
        if not m or pid_alive(int(m.group(1))):
            continue
        pids = netns_pids(ns)
        kill_pids(pids, signal.SIGKILL)
        wait_gone(pids, timeout=5.0)
        run(["ip", "netns", "del", ns], check=False, timeout=10)
        removed.append(ns)
    return removed


class Lab:
    """A namespace lab; see the module docstring. Built in __init__, torn down by close()."""

    def __init__(
        self,
        nodes: Sequence[str] = DEFAULT_NODES,
        subnet: str = "192.168.56",
        first_host: int = 101,
        client: bool = True,
        workdir: Optional[str] = None,
        ipv6_subnet: Optional[str] = None,
    ) -> None:
        """ipv6_subnet (opt-in, e.g. "2001:db8:56") also gives every eth0 the address
        SUBNET::HOST/64 with the IPv4 host number as its last group (server1 2001:db8:56::101,
        client ::250), added nodad, and makes duplicate address detection quick
        (FAST_DAD_SYSCTLS) so IPv6 takeovers in tests do not wait 1-2 s for it."""
        names = list(nodes)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"node names must be unique and non-empty: {names}")
        for n in names:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", n) or n in ("switch", "client"):
                raise ValueError(f"bad node name {n!r}")
        if not re.fullmatch(r"\d{1,3}\.\d{1,3}\.\d{1,3}", subnet):
            raise ValueError(f"subnet must look like '192.168.56': {subnet!r}")
        if first_host < 1 or first_host + len(names) - 1 >= CLIENT_HOST or len(names) > 200:
            raise ValueError("node addresses must stay within .1 .. .249")
        if ipv6_subnet is not None and not re.fullmatch(r"[0-9a-f]{1,4}(:[0-9a-f]{1,4}){0,3}",
                                                        ipv6_subnet):
            raise ValueError(f"ipv6_subnet must look like '2001:db8:56': {ipv6_subnet!r}")
        self.subnet = subnet
        self.ipv6_subnet = ipv6_subnet
        self._pid = os.getpid()
        self.prefix = f"hbl{self._pid}x{next(_COUNTER)}-"
        self.switch_ns = self.prefix + "switch"
        self.nodes: Dict[str, Node] = {}
        self.client: Optional[Client] = None
        self._namespaces: List[str] = []
        self._captures: List[Capture] = []
        self._partitions: Set[Tuple[str, str]] = set()
        self._closed = False
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix=self.prefix, dir=os.environ.get("HBLAB_TMPDIR"))
        else:
            os.makedirs(workdir, exist_ok=True)
        self.workdir = os.path.abspath(workdir)
        os.chmod(self.workdir, 0o755)
        atexit.register(self.close)
        try:
            self._build(names, first_host, client)
        except BaseException:
            self.close()
            raise

    # ---- construction -------------------------------------------------------------------

    def _add_ns(self, ns: str) -> None:
        run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def ip6_of(self, host: int) -> Optional[str]:
        """The IPv6 address of host number `host` (None without ipv6_subnet)."""
        return f"{self.ipv6_subnet}::{host}" if self.ipv6_subnet else None

    def _ipv6(self, ns: str, ip6: Optional[str]) -> None:
        """Opt-in IPv6 on eth0: fast DAD, then our own address (nodad: usable at once)."""
        if ip6 is None:
            return
        for key, value in FAST_DAD_SYSCTLS:
            run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"])
        run(["ip", "-n", ns, "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"])

    def _veth(self, port: str, ns: str, mac: str, ip: str) -> None:
        """veth: `port` on br0 in the switch ns, its peer `eth0` in ns with ip/24 brd +."""
        sw = self.switch_ns
        run(["ip", "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
             "netns", ns])
        run(["ip", "-n", sw, "link", "set", port, "master", "br0"])
        run(["ip", "-n", sw, "link", "set", port, "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "address", mac])
        run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "brd", "+", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _prepare_root(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        os.chmod(root, 0o755)
        etc = os.path.join(root, "etc", "ha.d")
        if os.path.isdir("/etc/ha.d"):
            # The stock scripts, never a host cluster config.
            shutil.copytree("/etc/ha.d", etc, symlinks=True,
                            ignore=shutil.ignore_patterns("ha.cf", "haresources", "authkeys"))
        os.makedirs(os.path.join(etc, "resource.d"), exist_ok=True)
        rundir = os.path.join(root, "run")
        os.makedirs(rundir, exist_ok=True)
        os.chmod(rundir, 0o755)
        for sub in _RUN_SUBDIRS:
            _copy_skeleton(os.path.join("/run", sub), os.path.join(rundir, sub), max_depth=2)
        # Fallbacks for hosts where the package scripts never created them.
        _ensure_dir(os.path.join(rundir, "lock"), 0o1777)
        _ensure_dir(os.path.join(rundir, "resource-agents"), 0o1755)
        for sub in ("", "ccm", "crm", "dopd"):
            _ensure_dir(os.path.join(rundir, "heartbeat", sub), 0o750, "hacluster", "haclient")
        if not os.path.lexists(os.path.join(rundir, "shm")):
            os.symlink("/dev/shm", os.path.join(rundir, "shm"))
        varlib = os.path.join(root, "var", "lib", "heartbeat")
        os.makedirs(varlib, exist_ok=True)
        _copy_skeleton("/var/lib/heartbeat", varlib, max_depth=3)   # never files (hb_uuid)
        varlog = os.path.join(root, "var", "log")
        os.makedirs(varlog, exist_ok=True)
        _copy_skeleton("/var/log", varlog, max_depth=1)
        for mnt in ("/etc/ha.d", "/var/lib/heartbeat", "/var/log"):
            os.makedirs(mnt, exist_ok=True)   # mount points (exist on a Heartbeat host)

    def _build(self, names: List[str], first_host: int, client: bool) -> None:
        cleanup_stale()
        sw = self.switch_ns
        self._add_ns(sw)
        run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
             "forward_delay", "0", "mcast_snooping", "0"])
        run(["ip", "-n", sw, "link", "set", "br0", "up"])
        for i, name in enumerate(names):
            ns = self.prefix + name
            ip = f"{self.subnet}.{first_host + i}"
            mac = f"02:56:00:00:00:{i + 1:02x}"
            port = f"v{i}-{name}"[:15]
            ip6 = self.ip6_of(first_host + i)
            node = Node(name, ip, mac, ns, os.path.join(self.workdir, name), port, ip6=ip6)
            self.nodes[name] = node
            self._add_ns(ns)
            self._veth(port, ns, mac, ip)
            self._ipv6(ns, ip6)
            self._prepare_root(node.root)
            node._start_holder()
        for node in self.nodes.values():
            node._wait_holder()
        if client:
            ns = self.prefix + "client"
            ip = f"{self.subnet}.{CLIENT_HOST}"
            mac = f"02:56:00:00:00:{CLIENT_HOST:02x}"
            self._add_ns(ns)
            self._veth("v-client", ns, mac, ip)
            self._ipv6(ns, self.ip6_of(CLIENT_HOST))
            self.client = Client(ns, ip, mac, log_path=os.path.join(self.workdir, "client.log"))
            self.client.ip6 = self.ip6_of(CLIENT_HOST)

    # ---- API ----------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lab({self.prefix!r}, nodes={list(self.nodes)}, closed={self._closed})"

    @property
    def namespaces(self) -> List[str]:
        return list(self._namespaces)

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise KeyError(f"no node {name!r} in lab (have {list(self.nodes)})") from None

    def capture(self, path: str, bpf: str = "arp or udp port 694") -> Capture:
        """Start tcpdump -U -w path on br0 in the switch namespace (ready on return)."""
        cap = Capture(self.switch_ns, path, bpf)
        self._captures.append(cap)
        return cap

    def run_switch(self, argv: Sequence[str], timeout: float = 30, check: bool = True,
                   input: Optional[str] = None):
        """Run argv in the switch namespace (network only)."""
        return run(["ip", "netns", "exec", self.switch_ns] + list(argv), timeout=timeout,
                   check=check, input=input)

    def _apply_partitions(self) -> None:
        rules = []
        for a, b in sorted(self._partitions):
            pa, pb = self.node(a).port, self.node(b).port
            for i, o in ((pa, pb), (pb, pa)):
                for field in ("dport", "sport"):
                    rules.append(f'    iifname "{i}" oifname "{o}" ether type ip '
                                 f"udp {field} {HB_PORT} drop")
        script = f"table bridge {PARTITION_TABLE} {{}}\ndelete table bridge {PARTITION_TABLE}\n"
        if rules:
            script += (
                f"table bridge {PARTITION_TABLE} {{\n"
                f"  chain forward {{ type filter hook forward priority 0; policy accept;\n"
                + "\n".join(rules) + "\n  }\n}\n"
            )
        self.run_switch(["nft", "-f", "-"], input=script, timeout=10)

    def partition(self, a: str, b: str) -> None:
        """Drop UDP port 694 (either side) between nodes a and b, both directions, on the
        bridge. Cumulative; other traffic (ICMP, HTTP, ARP) still passes."""
        if a == b:
            raise ValueError("cannot partition a node from itself")
        self.node(a), self.node(b)
        self._partitions.add(tuple(sorted((a, b))))  # type: ignore[arg-type]
        self._apply_partitions()

    def heal(self) -> None:
        """Remove every partition."""
        self._partitions.clear()
        self._apply_partitions()

    # ---- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Idempotent full cleanup (see module docstring)."""
        if self._closed or os.getpid() != self._pid:   # never from a forked child
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: List[str] = []
        for cap in self._captures:
            try:
                cap.stop()
            except Exception as exc:  # keep cleaning
                errors.append(f"capture: {exc!r}")
        if self.client is not None:
            try:
                self.client.close()
            except Exception as exc:
                errors.append(f"client: {exc!r}")
        for _ in range(5):
            signalled: List[int] = []
            for node in self.nodes.values():
                signalled += node._shutdown()
            for ns in self._namespaces:
                if ns not in {n.ns for n in self.nodes.values()}:
                    pids = netns_pids(ns)
                    kill_pids(pids, signal.SIGKILL)
                    signalled += pids
            if not signalled:
                break
            left = wait_gone(signalled, timeout=5.0)
            if left:
                errors.append(f"processes still alive: {left}")
        for node in self.nodes.values():
            node._reap()
        for ns in reversed(self._namespaces):
            proc = run(["ip", "netns", "del", ns], check=False, timeout=10)
            if proc.returncode != 0 and ns in netns_list():
                errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        if os.environ.get("HBLAB_KEEP") != "1":
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                for node in self.nodes.values():
                    shutil.rmtree(node.root, ignore_errors=True)
        if errors:
            raise LabError("lab cleanup incomplete: " + "; ".join(errors))
