"""Implementation drivers of the benchmark (appliance.lab.bench): the small interface the
bench needs over ours, Debian's Heartbeat 3.0.6 and keepalived on a namespace lab, plus the
per-node helpers around a step (address monitor, state clean-up, lab reset)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from appliance.lab.bench_host import log
from appliance.lab.bench_results import Timers, parse_addr_monitor

VIP = "192.168.56.200"
PREFERRED = "server1"
# Heartbeat 3.0.6 (and ours, like it) advertises deadtime + 2 s during its first 5 s: a fault
# right after a (re)start would measure that, not the steady state. No fault (and no idle
# window) before every daemon has run this long.
MIN_UPTIME = 6.0


# =============================================================================== drivers

class StepFailed(Exception):
    """A measured step failed; already recorded in the results."""


class NotSupported(Exception):
    pass


class Driver:
    """One implementation on a lab: the small interface the bench needs."""

    key = ""

    def __init__(self, lab, timers: Timers) -> None:
        self.lab = lab
        self.timers = timers
        self.names = list(lab.nodes)
        self.c: Any = None
        self.started_at: Dict[str, float] = {}

    def setup(self) -> None:
        self.c.setup()

    def start(self, name: str) -> None:
        self.c.start(name)
        self.started_at[name] = time.monotonic()

    def stop(self, name: str) -> None:
        self.c.stop(name)

    def daemon_pids(self, name: str) -> List[int]:
        return self.c.daemon_pids(name)

    def footprint_pids(self, name: str) -> List[int]:
        """Every process the daemon runs on the node: ours adds its privilege-separation helper
        (named hba-privsep, so daemon_pids does not see it)."""
        pids = list(self.daemon_pids(name))
        try:
            for pid in self.lab.node(name).pids():
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if fh.read().startswith(b"hba-privsep") and pid not in pids:
                        pids.append(pid)
        except OSError:
            pass
        return pids

    def holders(self) -> List[str]:
        return self.c.holders()

    def decision_time(self, name: str) -> Optional[float]:
        return None

    def log(self, name: str) -> str:
        return self.c.log(name)

    def dead_interval(self) -> float:
        return self.timers.deadtime_ms / 1000.0

    def startup_budget(self) -> float:
        return self.timers.initdead_ms / 1000.0 + 60.0

    def standby(self, name: str) -> None:
        raise NotSupported

    def takeover(self, name: str) -> None:
        raise NotSupported

    def cl_status_argv(self) -> Optional[List[str]]:
        return None

    def stop_all(self, timeout: float = 40.0) -> None:
        """Stop every running daemon (bounded per node); the caller kills what is left."""
        for name in self.names:
            if not self.daemon_pids(name):
                continue
            try:
                self.stop_bounded(name, timeout)
            except Exception as exc:  # noqa: BLE001 - cleanup keeps going
                log(f"    (stop {name}: {exc!r:.200})")

    def stop_bounded(self, name: str, timeout: float) -> None:
        self.stop(name)


class HeartbeatDriver(Driver):
    """Ours (Cluster) or Debian's 3.0.6 (MixedCluster with every node real)."""

    def __init__(self, lab, timers: Timers, real: bool, binary: Optional[str] = None) -> None:
        super().__init__(lab, timers)
        from appliance.lab.cluster import Cluster, ClusterConfig
        from appliance.lab.realhb import MixedCluster

        self.key = "hb306" if real else "ours"
        self.real = real
        cfg = ClusterConfig(auto_failback="on", haresources=f"{PREFERRED} {VIP} httpd\n",
                            **timers.hacf_values())
        if real:
            self.c = MixedCluster(lab, cfg, real_nodes=set(self.names))
        else:
            self.c = Cluster(lab, cfg, binary=binary)

    def stop_bounded(self, name: str, timeout: float) -> None:
        if self.real:
            from appliance.lab.realhb import REAL_HEARTBEAT
            argv = [REAL_HEARTBEAT, "-k"]
        else:
            argv = [self.c.binary, "-k"]
        self.lab.node(name).run(argv, timeout=timeout, check=False)

    def startup_budget(self) -> float:
        # 3.0.6 waits RQSTDELAY (10 s) when nodes start together.
        return self.timers.initdead_ms / 1000.0 + (75.0 if self.real else 60.0)

    def standby(self, name: str) -> None:
        node = self.lab.node(name)
        if self.real:
            self.c.hb_standby(name)
        else:
            node.run(self.c.tool(name, "hb_standby"), timeout=30)

    def takeover(self, name: str) -> None:
        node = self.lab.node(name)
        if self.real:
            self.c.hb_takeover(name)
        else:
            node.run(self.c.tool(name, "hb_takeover"), timeout=30)

    def decision_time(self, name: str) -> Optional[float]:
        """Ours: when the node decided to acquire or release the group (wall clock, from
        `cl_status --json`); 3.0.6 logs it to the second only."""
        if self.real:
            return None
        try:
            st = json.loads(self.c.cl_status(name, "--json", check=True).stdout)
            return float(st["groups"][0]["decided_at"])
        except Exception:  # noqa: BLE001 - diagnostics only
            return None

    def cl_status_argv(self) -> Optional[List[str]]:
        if self.real:
            from appliance.lab.realhb import REAL_CL_STATUS
            return [REAL_CL_STATUS, "hbstatus"]
        return self.c.tool(PREFERRED, "cl_status") + ["hbstatus"]


class KeepalivedDriver(Driver):
    key = "keepalived"

    def __init__(self, lab, timers: Timers) -> None:
        super().__init__(lab, timers)
        from appliance.lab.keepalived import KeepalivedCluster

        self.c = KeepalivedCluster(lab, advert_int=timers.keepalive_ms / 1000.0)

    def dead_interval(self) -> float:
        return self.c.dead_interval()

    def startup_budget(self) -> float:
        return 4 * self.timers.keepalive_ms / 1000.0 + 30.0

    def stop_bounded(self, name: str, timeout: float) -> None:
        self.c.stop(name, check=False, timeout=min(timeout, 15.0))


def make_driver(impl: str, lab, timers: Timers) -> Driver:
    if impl == "ours":
        return HeartbeatDriver(lab, timers, real=False)
    if impl == "hb306":
        return HeartbeatDriver(lab, timers, real=True)
    if impl == "keepalived":
        return KeepalivedDriver(lab, timers)
    raise ValueError(f"unknown implementation {impl!r}")


def impl_available(impl: str) -> Tuple[bool, str]:
    if impl == "hb306":
        from appliance.lab.realhb import REAL_HEARTBEAT, real_available
        return real_available(), f"{REAL_HEARTBEAT} not installed"
    if impl == "keepalived":
        from appliance.lab.keepalived import KEEPALIVED, keepalived_available
        return keepalived_available(), f"{KEEPALIVED} not installed"
    from appliance.lab.cluster import default_heartbeat
    b = default_heartbeat()
    return os.access(b, os.X_OK), f"{b} missing (run scripts/setup)"


# =============================================================================== lab helpers

class AddrMonitor:
    """`ip -n NS -tshort monitor address` in each node; events converted to monotonic time."""

    def __init__(self, lab, names: Sequence[str], directory: str) -> None:
        self.files: Dict[str, str] = {}
        self.procs: Dict[str, subprocess.Popen] = {}
        self.offset = time.time() - time.monotonic()
        for name in names:
            path = os.path.join(directory, f"addrmon-{name}.txt")
            self.files[name] = path
            with open(path, "wb") as fh:
                self.procs[name] = subprocess.Popen(
                    ["ip", "-n", lab.node(name).ns, "-tshort", "monitor", "address"],
                    stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                    start_new_session=True)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.terminate()
                except OSError:
                    pass
        for p in self.procs.values():
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass

    def first_add(self, name: str, addr: str, after: float) -> Optional[float]:
        try:
            with open(self.files[name], errors="replace") as fh:
                text = fh.read()
        except (OSError, KeyError):
            return None
        for wall, added, _dev, a in parse_addr_monitor(text):
            mono = wall - self.offset
            if added and a == addr and mono >= after:
                return mono
        return None


def clear_node_state(node, full: bool = True) -> None:
    """full (between scenarios): no leftover state files, pid files, sockets or logs of a
    previous implementation. Not full (after a crash, like a reboot): only /run is cleared;
    /var/lib/heartbeat (node uuid, generation) and the logs stay. Directories are kept."""
    privates = ["/run/heartbeat", "/run/resource-agents", "/run/keepalived", "/run/crm"]
    if full:
        privates.append("/var/lib/heartbeat")
    for private in privates:
        hp = node.host_path(private)
        if not hp or not os.path.isdir(hp):
            continue
        for cur, _dirs, files in os.walk(hp):
            for f in files:
                try:
                    os.unlink(os.path.join(cur, f))
                except OSError:
                    pass
    files = ["/run/heartbeat.pid", "/run/httpd.pid"]
    if full:
        files += ["/var/log/ha-log", "/var/log/ha-debug", "/var/log/keepalived.log"]
    for f in files:
        hp = node.host_path(f)
        if hp and os.path.lexists(hp):
            try:
                os.unlink(hp)
            except OSError:
                pass


def reset_lab(lab) -> None:
    for node in lab.nodes.values():
        try:
            node.kill_all()
        except Exception as exc:  # noqa: BLE001 - keep going, Lab.close kills the rest
            log(f"    (kill_all {node.name}: {exc!r:.200})")
        try:
            node.link_up()
        except Exception:  # noqa: BLE001
            pass
        clear_node_state(node)
