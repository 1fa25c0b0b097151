"""scripts/bench: failover, footprint and scale of our daemon beside Heartbeat 3.0.6 and keepalived.

One run, one namespace lab at a time, three implementations taking turns on the same lab:

  ours        hb-appliance (.venv/bin/heartbeat, or HBA_HEARTBEAT)
  hb306       Debian's Heartbeat 3.0.6 (/usr/libexec/heartbeat/heartbeat), every node real
  keepalived  Debian's keepalived 2.2.7, VRRPv3, same floating IP; lighttpd runs on every node
              all the time (keepalived moves only the address)

Client-side measurements: the lab client sends a request to http://192.168.56.200/ every 25 ms
without waiting for earlier ones (each with a 250 ms timeout); an outage is the longest run of
unanswered samples around the fault (from the first unanswered request sent to the first answer
received), so its resolution is the 25 ms interval. ARP (and heartbeat/VRRP traffic) is captured
on the switch; `ip monitor address` runs in every node to timestamp the address coming up.

It is a benchmark, never a test: the numbers are what this machine gave in this run; only
ratios measured in the same run mean something. Every wait is bounded; a failed step is
recorded (e.g. "timeout") and the run goes on. Output: one Markdown table per metric on stdout
(median and min..max over repetitions, ratio ours / each peer) and a JSON file with every sample.

    scripts/bench --quick            # 1 repetition, 2 nodes, 200ms/1s, scale 8 nodes 20 s
    scripts/bench                    # 3 repetitions, 2 and 3 nodes, 3 timer settings, scale 8/16/32
    scripts/bench --help
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

Sample = Tuple[float, Optional[str]]

VIP = "192.168.56.200"
PREFERRED = "server1"
IMPLS = ("ours", "hb306", "keepalived")
IMPL_LABEL = {"ours": "ours", "hb306": "Heartbeat 3.0.6", "keepalived": "keepalived 2.2.7"}
PEERS = ("hb306", "keepalived")
INSTALLED = "installed (ours: source install, .venv/bin)"
POLL_INTERVAL = 0.025
POLL_TIMEOUT = 0.25
CAPTURE_BPF = "arp or udp port 694 or ip proto 112"
# Heartbeat 3.0.6 (and ours, like it) advertises deadtime + 2 s during its first 5 s: a fault
# right after a (re)start would measure that, not the steady state. No fault (and no idle
# window) before every daemon has run this long.
MIN_UPTIME = 6.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# =============================================================================== pure parts

@dataclass(frozen=True)
class Timers:
    """A timer setting: Heartbeat keepalive/deadtime; keepalived advert_int = keepalive."""

    keepalive_ms: int
    deadtime_ms: int

    @property
    def key(self) -> str:
        return f"{fmt_duration(self.keepalive_ms)}/{fmt_duration(self.deadtime_ms)}"

    @property
    def slow(self) -> bool:
        return self.deadtime_ms >= 5000

    @property
    def warntime_ms(self) -> int:
        return self.deadtime_ms // 2

    @property
    def initdead_ms(self) -> int:
        return max(2 * self.deadtime_ms, 4000)

    def hacf_values(self) -> Dict[str, str]:
        return {"keepalive": hacf_time(self.keepalive_ms), "deadtime": hacf_time(self.deadtime_ms),
                "warntime": hacf_time(self.warntime_ms), "initdead": hacf_time(self.initdead_ms)}


def fmt_duration(ms: int) -> str:
    """200 -> '200ms', 1000 -> '1s', 15000 -> '15s'."""
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def hacf_time(ms: int) -> str:
    """ha.cf spelling: whole seconds bare ('15'), else milliseconds ('200ms')."""
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


def parse_timers(text: str) -> Timers:
    """'200ms/1s', '2/15', '100ms/500ms' -> Timers."""
    try:
        ka, dt = text.split("/")
        return Timers(_to_ms(ka), _to_ms(dt))
    except ValueError:
        raise ValueError(f"timers must look like KEEPALIVE/DEADTIME (e.g. 200ms/1s): {text!r}") from None


def _to_ms(tok: str) -> int:
    tok = tok.strip().lower()
    if tok.endswith("ms"):
        return int(float(tok[:-2]))
    if tok.endswith("s"):
        tok = tok[:-1]
    return int(round(float(tok) * 1000))


@dataclass
class Gap:
    """A run of unanswered client samples: from the first unanswered request sent to the
    first answered one (recovered) or to the last unanswered one (not recovered)."""

    start: float
    end: float
    recovered: bool
    count: int

    @property
    def duration(self) -> float:
        return self.end - self.start


def unanswered_runs(samples: Sequence[Sample]) -> List[Gap]:
    runs: List[Gap] = []
    start: Optional[float] = None
    last = 0.0
    count = 0
    for t, answer in samples:
        if answer is None:
            if start is None:
                start, count = t, 0
            last = t
            count += 1
        elif start is not None:
            runs.append(Gap(start, t, True, count))
            start = None
    if start is not None:
        runs.append(Gap(start, last, False, count))
    return runs


def outage(samples: Sequence[Sample], t_fault: float, before: float = 0.5) -> Gap:
    """The longest run of unanswered samples around the fault: runs that end after
    t_fault - before (an earlier hiccup is not the fault's). No such run -> a zero Gap."""
    runs = [g for g in unanswered_runs(samples) if g.end >= t_fault - before]
    if not runs:
        return Gap(t_fault, t_fault, True, 0)
    return max(runs, key=lambda g: (g.duration, not g.recovered))


def first_answer(samples: Sequence[Sample], after: float,
                 accept: Callable[[Optional[str]], bool]) -> Optional[Sample]:
    for t, answer in samples:
        if t >= after and accept(answer):
            return (t, answer)
    return None


def run_length(samples: Sequence[Sample], t0: float) -> List[list]:
    """Compact but complete record of a poll: [[t - t0 of the first sample, answer, count]...]."""
    out: List[list] = []
    for t, answer in samples:
        if out and out[-1][1] == answer:
            out[-1][2] += 1
        else:
            out.append([round(t - t0, 4), answer, 1])
    return out


_MON_RE = re.compile(r"^\[(?P<ts>[0-9T:.\-]+)\]\s+(?P<del>Deleted\s+)?\d+:\s+(?P<dev>\S+)\s+inet\s+"
                     r"(?P<addr>[0-9.]+)/(?P<plen>\d+)")


def parse_addr_monitor(text: str) -> List[Tuple[float, bool, str, str]]:
    """Lines of `ip -tshort monitor address` -> (wall time, added?, device, IPv4 address)."""
    out = []
    for line in text.splitlines():
        m = _MON_RE.match(line)
        if not m:
            continue
        try:
            wall = datetime.fromisoformat(m["ts"]).timestamp()
        except ValueError:
            continue
        out.append((wall, not m["del"], m["dev"], m["addr"]))
    return out


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def summarize(values: Iterable[Any]) -> Dict[str, Any]:
    """median, min, max over the numeric values; n = their count, failed = the others."""
    vals = list(values)
    nums = [float(v) for v in vals if is_number(v)]
    out: Dict[str, Any] = {"n": len(nums), "failed": len(vals) - len(nums)}
    if nums:
        out.update(median=statistics.median(nums), min=min(nums), max=max(nums))
    return out


def fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3f}"


def fmt_cell(s: Optional[Dict[str, Any]]) -> str:
    if not s or (s.get("n", 0) == 0 and s.get("failed", 0) == 0):
        return "n/a"
    total = s["n"] + s["failed"]
    if s["n"] == 0:
        return f"failed ({s['failed']}/{total})"
    cell = fmt_num(s["median"])
    if s["n"] > 1:
        cell += f" ({fmt_num(s['min'])}..{fmt_num(s['max'])})"
    if s["failed"]:
        cell += f" [{s['failed']}/{total} failed]"
    return cell


def ratio(ours: Optional[Dict[str, Any]], peer: Optional[Dict[str, Any]]) -> Optional[float]:
    if not ours or not peer or "median" not in ours or "median" not in peer:
        return None
    if peer["median"] <= 0 or ours["median"] < 0:
        return None
    return ours["median"] / peer["median"]


def fmt_ratio(r: Optional[float]) -> str:
    return "n/a" if r is None else f"{r:.2f}×"


def markdown_table(title: str, unit: str, rows: Sequence[Tuple[str, Dict[str, Dict[str, Any]]]],
                   impls: Sequence[str] = IMPLS, peers: Sequence[str] = PEERS,
                   note: str = "") -> str:
    """One metric: a row per setting, a column per implementation (median (min..max)), then
    ours / each peer (ratio of the medians)."""
    head = ["setting"] + [IMPL_LABEL.get(i, i) for i in impls]
    peers = [p for p in peers if p in impls and p != "ours"] if "ours" in impls else []
    head += [f"ours / {IMPL_LABEL.get(p, p)}" for p in peers]
    lines = [f"### {title} ({unit})", ""]
    if note:
        lines += [note, ""]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")
    for setting, by_impl in rows:
        cells = [setting] + [fmt_cell(by_impl.get(i)) for i in impls]
        cells += [fmt_ratio(ratio(by_impl.get("ours"), by_impl.get(p))) for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    note: str = ""
    shared_peers: bool = False   # peers measured once; rows without them use the first row's
    ratios: bool = True          # False: no ours / peer columns (values around zero)


METRICS: Tuple[Metric, ...] = (
    Metric("startup_first_page", "Start-up to first page", "s",
           "All daemons started one after the other (keepalived: lighttpd already running on "
           "every node); time from the first start command to the first answer at the floating IP."),
    Metric("graceful_stop_outage", "Outage on graceful stop of the active node", "ms",
           "`heartbeat -k` on the holder (keepalived: SIGTERM, priority-0 advert)."),
    Metric("tutorial_step2_outage", "Tutorial step 2: stop server2 while server3 is up", "ms",
           "3 nodes; server1 already stopped, server2 serving; outage when server2 stops."),
    Metric("crash_outage", "Outage on crash of the active node", "ms",
           "SIGKILL of every process of the node (lighttpd too) and its floating address deleted."),
    Metric("crash_overhead", "Crash: takeover overhead beyond the dead interval", "ms",
           "Outage minus deadtime (keepalived: minus its master-down interval, "
           "3 × advert_int + skew). Can be negative by up to one keepalive: the dead interval "
           "runs from the last heartbeat heard, the outage from the first unanswered request."),
    Metric("linkcut_outage", "Outage on link cut of the active node", "ms",
           "`ip link set eth0 down` in the holder."),
    Metric("linkcut_overhead", "Link cut: takeover overhead beyond the dead interval", "ms",
           "Outage minus deadtime (keepalived: minus its master-down interval)."),
    Metric("failback_outage", "Failback outage when the preferred node returns", "ms",
           "auto_failback on (keepalived: preempt); daemon on server1 started again after a "
           "stop, crash or link cut."),
    Metric("standby_switch", "hb_standby switchover time", "ms",
           "From `hb_standby` on the holder to the first page from another node "
           "(ours: our hb_standby; 3.0.6: /usr/share/heartbeat/hb_standby; keepalived: n/a)."),
    Metric("standby_outage", "Outage during hb_standby switchover", "ms"),
    Metric("takeover_switch", "hb_takeover (back to server1) switchover time", "ms"),
    Metric("fault_to_addr_up", "Fault → floating address up on the new holder", "ms",
           "From `ip -tshort monitor address` in the new holder's namespace."),
    Metric("fault_to_garp", "Fault → first gratuitous ARP on the wire", "ms",
           "First ARP with sender IP = target IP = the floating IP from the new holder's MAC, "
           "captured on the switch."),
    Metric("addr_up_to_garp", "Address up → first gratuitous ARP (decision → GARP)", "ms",
           "Capture time of the GARP minus the `ip monitor` time stamp, which is taken in user "
           "space when the event is read: ±1 ms, and slightly negative when the GARP left before "
           "`ip` got to print the event. No ratios: the values are too close to zero.",
           ratios=False),
    Metric("decision_to_garp", "Decision → address up and first gratuitous ARP (ours)", "ms",
           "From the new holder's acquire decision (`decided_at` in `cl_status --json`, wall "
           "clock) to the later of the address event and the first GARP. Ours only: 3.0.6 logs "
           "to the second and keepalived has no such record.", ratios=False),
    Metric("rss_per_node", "RSS per node (all processes of the daemon)", "MB",
           "Sum of VmRSS over the daemon's processes on a node (ours: the daemon and its "
           "privilege-separation helper; 3.0.6: its heartbeat processes; keepalived: parent + VRRP "
           "child); lighttpd excluded. Shared pages count once per process."),
    Metric("pss_per_node", "PSS per node (all processes of the daemon)", "MB",
           "Same processes, proportional set size (/proc/PID/smaps_rollup): pages shared between "
           "them counted once, the fairer figure for multi-process daemons."),
    Metric("idle_cpu", "Idle CPU per node", "CPU ms/min",
           "utime+stime of the daemon's processes over an idle window, scaled to one minute."),
    Metric("idle_cpu_precise", "Idle CPU per node, ns resolution (schedstat)", "CPU ms/min",
           "Same window from /proc/PID/task/*/schedstat (ns): readable where utime+stime (10 ms "
           "ticks) rounds a very idle daemon to 0. Threads that exit in the window are missed."),
    Metric("cli_version", "Start-up time of `heartbeat --version`", "ms",
           "Median of 10 runs in the root namespace (3.0.6: heartbeat -V; keepalived: "
           "keepalived --version).", shared_peers=True),
    Metric("cli_cl_status", "Start-up time of `cl_status hbstatus`", "ms",
           "Median of 10 runs inside a node with the daemon running (includes nsenter; see the "
           "`nsenter true` row).", shared_peers=True),
    Metric("scale_start", "Scale: start-up until every node is heard", "s",
           "From the first start command (the daemons are started one after the other) until "
           "heartbeats from every node were captured within the last 2 s."),
    Metric("scale_cpu", "Scale: CPU per node", "CPU ms/min",
           "keepalive 200ms unless --scale-keepalive (then in the setting); idle cluster over a "
           "bounded window."),
    Metric("scale_pps", "Scale: heartbeat packets per second on the switch", "pkt/s"),
    Metric("scale_false_deaths", "Scale: false deaths (\"is dead\" in the logs) in the window", "count"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


class Results:
    """Every sample of the run, in order; tables are built from them."""

    def __init__(self) -> None:
        self.samples: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []

    def add(self, metric: str, impl: str, setting: str, value: Optional[float], rep: int = 0,
            error: Optional[str] = None, **detail: Any) -> None:
        if metric not in METRIC_BY_KEY:
            raise KeyError(f"unknown metric {metric!r}")
        rec: Dict[str, Any] = {"metric": metric, "impl": impl, "setting": setting, "rep": rep,
                               "value": value if error is None else None,
                               "unit": METRIC_BY_KEY[metric].unit}
        if error is not None:
            rec["error"] = error
        if detail:
            rec["detail"] = detail
        self.samples.append(rec)

    def fail(self, metric: str, impl: str, setting: str, error: str, rep: int = 0,
             **detail: Any) -> None:
        self.add(metric, impl, setting, None, rep, error=error, **detail)

    def event(self, **kw: Any) -> None:
        self.events.append(kw)

    def rows(self, metric: str) -> List[Tuple[str, Dict[str, Dict[str, Any]]]]:
        settings: List[str] = []
        values: Dict[Tuple[str, str], List[Any]] = {}
        for s in self.samples:
            if s["metric"] != metric:
                continue
            if s["setting"] not in settings:
                settings.append(s["setting"])
            values.setdefault((s["setting"], s["impl"]), []).append(s["value"])
        rows = []
        for setting in settings:
            by_impl = {impl: summarize(vals) for (st, impl), vals in values.items() if st == setting}
            rows.append((setting, by_impl))
        if METRIC_BY_KEY[metric].shared_peers and rows:
            # Peers are measured once (first row); the frozen program's row is compared with
            # the same peer runs.
            first = rows[0][1]
            for setting, by_impl in rows[1:]:
                if not setting.startswith("frozen"):
                    continue
                for p in PEERS:
                    if p not in by_impl and p in first:
                        by_impl[p] = first[p]
        return rows

    def tables(self, impls: Sequence[str] = IMPLS) -> str:
        out = []
        for m in METRICS:
            rows = self.rows(m.key)
            if rows:
                out.append(markdown_table(m.title, m.unit, rows, impls,
                                          peers=PEERS if m.ratios else (), note=m.note))
        return "\n".join(out)


# =============================================================================== /proc

def proc_cpu_ticks(pid: int) -> Optional[int]:
    """utime + stime of pid in clock ticks (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # rest[0] is field 3 (state); utime, stime are fields 14, 15.
    return int(rest[11]) + int(rest[12])


def proc_rss_kb(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def proc_pss_kb(pid: int) -> Optional[int]:
    """Proportional set size: shared pages divided among the processes that map them, so a
    sum over several processes (3.0.6's four, our daemon + helper) counts them once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def proc_sched_ns(pid: int) -> Optional[int]:
    """CPU time in ns of every thread of pid (/proc/PID/task/*/schedstat, first field)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_ms_per_min(ticks0: Dict[int, Optional[int]], ticks1: Dict[int, Optional[int]],
                   elapsed: float, clk_tck: int = CLK_TCK) -> float:
    """CPU milliseconds per minute over pids present at both ends of the window."""
    used = sum(ticks1[p] - ticks0[p] for p in ticks0
               if ticks0[p] is not None and ticks1.get(p) is not None)   # type: ignore[operator]
    return used / clk_tck * 1000.0 / elapsed * 60.0


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

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


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


class Overload(Exception):
    """The machine is overloaded (process storm / runaway load): abort the current run."""


def proc_count() -> int:
    try:
        return sum(1 for d in os.listdir("/proc") if d.isdigit())
    except OSError:
        return 0


def runnable_now() -> int:
    """Runnable tasks right now (/proc/loadavg 4th field): unlike the load average it does
    not lag minutes behind."""
    try:
        with open("/proc/loadavg") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0


class OverloadGuard:
    """Aborts a scale run before it can take the shared machine down: more processes than
    the lab can explain (resource scripts of a death storm), or far more runnable tasks than
    the lab's daemons, three checks in a row."""

    def __init__(self, size: int) -> None:
        self.base = proc_count()
        self.proc_limit = self.base + 15 * size + 300
        self.run_limit = max(64, 4 * size)
        self.strikes = 0

    def check(self) -> Optional[str]:
        n = proc_count()
        if n > self.proc_limit:
            return f"{n} processes on the machine (started with {self.base}; limit {self.proc_limit})"
        r = runnable_now()
        self.strikes = self.strikes + 1 if r > self.run_limit else 0
        if self.strikes >= 3:
            return f"{r} runnable tasks, 3 checks in a row (limit {self.run_limit})"
        return None

    def check_raise(self) -> None:
        why = self.check()
        if why:
            raise Overload(why)


def guarded_sleep(seconds: float, guard: OverloadGuard, step: float = 0.5) -> None:
    end = time.monotonic() + seconds
    for _ in range(int(seconds / step) + 4):
        left = end - time.monotonic()
        if left <= 0:
            return
        guard.check_raise()
        time.sleep(min(step, left))


def kill_lab_processes(lab, rounds: int = 5) -> int:
    """SIGKILL every process in the lab's namespaces, found by one pass over /proc per round
    (`ip netns pids` passes over /proc once per namespace: too slow in a process storm, which
    keeps forking meanwhile). Only namespaces this lab created are matched; the processes that
    hold each node's namespaces are spared (Lab.close needs them). Returns how many."""
    spared = {getattr(node, "holder_pid", None) for node in lab.nodes.values()}
    inodes = set()
    for ns in lab.namespaces:
        try:
            inodes.add(os.stat(f"/var/run/netns/{ns}").st_ino)
        except OSError:
            pass
    killed = 0
    for _ in range(rounds):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid() or int(entry) in spared:
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
            except OSError:
                pass
        killed += found
        if not found:
            break
        time.sleep(0.2)
    return killed


def udp_sources(path: str, cap) -> List[Tuple[float, str]]:
    """(monotonic time, IPv4 source) of every IPv4/UDP frame of a capture (a growing file is
    fine: the unfinished last record is skipped)."""
    from appliance.lab.capture import read_pcap
    out = []
    try:
        packets = read_pcap(path)
    except (OSError, ValueError):
        return out
    for pkt in packets:
        d = pkt.data
        if pkt.linktype != 1 or len(d) < 34 or d[12:14] != b"\x08\x00" or d[23] != 17:
            continue
        out.append((cap.to_monotonic(pkt.time), ".".join(str(b) for b in d[26:30])))
    return out


def force_cleanup(lab) -> List[str]:
    """When Lab.close() failed (e.g. `ip netns pids` timed out on an overloaded box): kill
    every process of THIS lab's namespaces, delete them, remove its work dir. Returns what is
    still left."""
    left: List[str] = []
    for _ in range(5):
        left = []
        for ns in lab.namespaces:
            try:
                res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                     timeout=120)
            except subprocess.TimeoutExpired:
                left.append(ns)
                continue
            if res.returncode != 0:
                continue        # gone already
            pids = [int(x) for x in res.stdout.split() if x.isdigit()]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            left.append(ns)
        time.sleep(1.0)
        for ns in list(left):
            try:
                res = subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=120)
                if res.returncode == 0:
                    left.remove(ns)
            except subprocess.TimeoutExpired:
                pass
        if not left:
            break
    shutil.rmtree(lab.workdir, ignore_errors=True)
    return left


class managed_lab:
    """`with managed_lab(names) as lab`: a Lab whose failed close() is followed by
    force_cleanup (the Lab marks itself closed before it starts, so it never retries)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.lab = None

    def __enter__(self):
        from appliance.lab.netns import Lab
        self.lab = Lab(self.names)
        return self.lab

    def __exit__(self, *exc) -> None:
        lab = self.lab
        if lab is None:
            return
        try:
            lab.close()
        except Exception as err:  # noqa: BLE001
            log(f"    lab close failed ({err!r:.200}); forcing the cleanup")
            left = force_cleanup(lab)
            if left:
                log(f"    namespaces still left: {left}")


def timed_runs(argv_fn: Callable[[], Any], n: int = 10) -> Tuple[List[float], Optional[str]]:
    """Run n times; wall times in ms. Returns (times, error of the first failing run)."""
    times: List[float] = []
    err = None
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            res = argv_fn()
        except Exception as exc:  # noqa: BLE001
            return times, f"{exc!r:.300}"
        times.append((time.perf_counter() - t0) * 1000.0)
        rc = getattr(res, "returncode", 0)
        if rc not in (0,) and err is None:
            err = f"rc={rc}: {(res.stdout or '')[-200:]}{(res.stderr or '')[-200:]}".strip()
    return times, err


# =============================================================================== the bench

@dataclass
class Plan:
    mode: str
    impls: List[str]
    node_counts: List[int]
    timers: List[Timers]
    reps: int
    slow_reps: int
    idle_seconds: float
    settle: float
    scale_sizes: List[int]
    scale_seconds: float
    scale_media: List[str]
    scale_impls: List[str]
    scale_deadtime_ms: int
    scale_real_max: int
    parts: List[str]
    artifacts: Optional[str]
    json_path: str
    poll_timeout: float = POLL_TIMEOUT
    scale_keepalive_ms: int = 200

    def reps_for(self, timers: Timers) -> int:
        return self.slow_reps if timers.slow else self.reps


@dataclass
class StepOutcome:
    t_fault: float
    samples: List[Sample]
    gap: Gap
    answer: Optional[str]
    t_answer: Optional[float]
    addr_up: Optional[float] = None
    garp: Optional[float] = None
    decided: Optional[float] = None     # ours: the new holder's acquire decision
    holders_after: List[str] = field(default_factory=list)
    detail: Dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, plan: Plan, results: Results) -> None:
        self.plan = plan
        self.r = results
        self.cl_status_done: set = set()
        self.workdir = plan.artifacts or tempfile.mkdtemp(prefix="hb-bench-")
        os.makedirs(self.workdir, exist_ok=True)
        self._step_no = 0

    # ---- client helpers -----------------------------------------------------------------

    @staticmethod
    def wait_answer(lab, accept: Callable[[Optional[str]], bool], timeout: float,
                    interval: float = 0.05) -> Tuple[Optional[str], float]:
        """Probe the VIP until accept(answer); (answer, monotonic time). TimeoutError."""
        deadline = time.monotonic() + max(0.1, timeout)
        last: List[Optional[str]] = []
        for _ in range(int(timeout / interval) + 1000):
            t = time.monotonic()
            if t >= deadline:
                break
            a = lab.client.get(VIP, timeout=POLL_TIMEOUT)
            if accept(a):
                return a, t
            last = (last + [a])[-4:]
            time.sleep(interval)
        raise TimeoutError(f"no acceptable answer within {timeout:.0f}s (last answers {last})")

    # ---- one measured step ----------------------------------------------------------------

    def step(self, drv: Driver, kind: str, victim: str, action: Callable[[], Any],
             accept: Callable[[Optional[str]], bool], timeout: float) -> StepOutcome:
        """Poll the VIP, capture, monitor addresses; run action; wait (bounded) for an
        accepted answer; analyse. Raises TimeoutError / the action's error after cleanup."""
        lab = drv.lab
        self._step_no += 1
        d = os.path.join(self.workdir, f"step{self._step_no:03d}-{drv.key}-{kind}")
        os.makedirs(d, exist_ok=True)
        mon = AddrMonitor(lab, drv.names, d)
        cap = None
        polling = False
        samples: List[Sample] = []
        error: Optional[BaseException] = None
        t_fault = time.monotonic()
        try:
            holders_before = drv.holders()
        except Exception:  # noqa: BLE001
            holders_before = []
        try:
            cap = lab.capture(os.path.join(d, "switch.pcap"), CAPTURE_BPF)
            lab.client.start_polling(VIP, interval=POLL_INTERVAL, timeout=self.plan.poll_timeout,
                                     max_seconds=min(590.0, timeout + 60.0))
            polling = True
            time.sleep(0.4)
            t_fault = time.monotonic()
            action()
            remaining = timeout - (time.monotonic() - t_fault)
            self.wait_answer(lab, accept, remaining)
            time.sleep(1.0)      # tail: recovery settles, first GARPs are captured
        except BaseException as exc:  # noqa: BLE001 - analysed below, re-raised
            error = exc
        finally:
            if polling:
                try:
                    samples = lab.client.stop_polling()
                except Exception as exc:  # noqa: BLE001
                    log(f"    (stop_polling: {exc!r:.200})")
            if cap is not None:
                cap.stop()
            mon.stop()
        gap = outage(samples, t_fault)
        fa = first_answer(samples, t_fault, accept)
        out = StepOutcome(t_fault, samples, gap, fa[1] if fa else None, fa[0] if fa else None)
        out.detail = {"kind": kind, "victim": victim, "artifacts": d,
                      "gap_start_ms": round((gap.start - t_fault) * 1000, 1),
                      "gap_end_ms": round((gap.end - t_fault) * 1000, 1),
                      "gap_recovered": gap.recovered, "gap_samples": gap.count,
                      "answer": out.answer,
                      "answer_ms": None if fa is None else round((fa[0] - t_fault) * 1000, 1),
                      "poll": run_length(samples, t_fault)}
        new = out.answer
        if new and new in lab.nodes:
            up = mon.first_add(new, VIP, t_fault - 0.05)
            out.addr_up = None if up is None else up - t_fault
            if cap is not None and os.path.exists(cap.path):
                try:
                    from appliance.lab.capture import is_gratuitous, parse_arp_frames
                    mac = lab.node(new).mac.lower()
                    after = (up - 0.01) if up is not None else t_fault
                    for f in parse_arp_frames(cap.path):
                        t = cap.to_monotonic(f.time)
                        if (is_gratuitous(f) and f.sender_ip == VIP and f.src_mac.lower() == mac
                                and t >= after):
                            out.garp = t - t_fault
                            break
                except Exception as exc:  # noqa: BLE001 - diagnostics only
                    out.detail["garp_error"] = repr(exc)
        try:
            out.holders_after = drv.holders()
        except Exception:  # noqa: BLE001
            pass
        if new and new in lab.nodes and out.addr_up is not None:
            wall = drv.decision_time(new)
            if wall is not None:        # same kernel clock: wall -> monotonic by the current offset
                decided = wall - (time.time() - time.monotonic()) - t_fault
                if -1.0 < decided <= out.addr_up + 0.001:   # this step's decision, not an older one
                    out.decided = decided
        out.detail.update(decided_ms=_ms(out.decided))
        out.detail.update(addr_up_ms=_ms(out.addr_up), garp_ms=_ms(out.garp),
                          holders_before=holders_before, holders_after=out.holders_after)
        out.detail["new_holder_already_held"] = bool(new and new in holders_before)
        if error is not None:
            out.detail["error"] = f"{error!r:.500}"
            raise _StepError(out, error)
        return out

    # ---- scenario pieces ------------------------------------------------------------------

    def record_step(self, metric: str, drv: Driver, setting: str, rep: int, out: StepOutcome,
                    value: Optional[float], garp_kind: Optional[str] = None,
                    overhead_metric: Optional[str] = None) -> None:
        self.r.add(metric, drv.key, setting, value, rep, **out.detail)
        if overhead_metric and value is not None:
            dead = drv.dead_interval() * 1000.0
            self.r.add(overhead_metric, drv.key, setting, value - dead, rep,
                       dead_interval_ms=round(dead, 1))
        if garp_kind:
            s = f"{setting}, {garp_kind}"
            why = ("the new holder already held the address before the fault"
                   if out.detail.get("new_holder_already_held") else None)
            if out.addr_up is not None:
                self.r.add("fault_to_addr_up", drv.key, s, out.addr_up * 1000.0, rep)
            else:
                self.r.fail("fault_to_addr_up", drv.key, s, why or "no address event seen", rep)
            if out.garp is not None:
                self.r.add("fault_to_garp", drv.key, s, out.garp * 1000.0, rep)
            else:
                self.r.fail("fault_to_garp", drv.key, s, why or "no GARP from the new holder", rep)
            if out.garp is not None and out.addr_up is not None:
                self.r.add("addr_up_to_garp", drv.key, s, (out.garp - out.addr_up) * 1000.0, rep)
            if out.decided is not None and out.addr_up is not None and out.garp is not None:
                self.r.add("decision_to_garp", drv.key, s,
                           (max(out.addr_up, out.garp) - out.decided) * 1000.0, rep)

    def measured(self, drv: Driver, setting: str, rep: int, metric: str, kind: str, victim: str,
                 action: Callable[[], Any], accept: Callable[[Optional[str]], bool],
                 timeout: float, value_fn: Callable[[StepOutcome], Optional[float]],
                 garp_kind: Optional[str] = None, overhead_metric: Optional[str] = None,
                 extra: Optional[Callable[[StepOutcome], None]] = None) -> StepOutcome:
        log(f"  {drv.key:10s} {setting}: {kind} ({victim})")
        try:
            out = self.step(drv, kind, victim, action, accept, timeout)
        except _StepError as se:
            if isinstance(se.error, KeyboardInterrupt):
                raise se.error from None
            err = "timeout" if isinstance(se.error, TimeoutError) else f"{se.error!r:.300}"
            self.r.fail(metric, drv.key, setting, err, rep, **se.out.detail)
            if overhead_metric:
                self.r.fail(overhead_metric, drv.key, setting, err, rep)
            log(f"    FAILED: {err}")
            raise StepFailed(err) from None
        if not out.gap.recovered:
            self.r.fail(metric, drv.key, setting, "no answer until the end of the window", rep,
                        **out.detail)
            raise StepFailed("not recovered")
        value = value_fn(out)
        self.record_step(metric, drv, setting, rep, out, value, garp_kind, overhead_metric)
        if extra:
            extra(out)
        log(f"    -> {metric} = {fmt_num(value) if value is not None else 'n/a'} ms; "
            f"answer {out.answer}; holders {out.holders_after}; addr_up {_ms(out.addr_up)} ms; "
            f"GARP {_ms(out.garp)} ms")
        return out

    def baseline(self, drv: Driver, force: bool = False) -> bool:
        """server1 serving and every daemon running; otherwise restart everything (bounded)."""
        lab = drv.lab
        if not force:
            try:
                ok = all(drv.daemon_pids(n) for n in drv.names) and \
                    lab.client.get(VIP, timeout=POLL_TIMEOUT) == PREFERRED
            except Exception:  # noqa: BLE001
                ok = False
            if ok:
                self.settle(drv)
                return True
        log(f"  {drv.key}: restoring the baseline (restart every node)")
        try:
            drv.stop_all()
            reset_lab(lab)
            drv.setup()
            for n in drv.names:
                drv.start(n)
            self.wait_answer(lab, lambda a: a == PREFERRED, drv.startup_budget())
        except Exception as exc:  # noqa: BLE001
            log(f"    baseline failed: {exc!r:.300}")
            self.r.event(what="baseline failed", impl=drv.key, error=f"{exc!r:.500}")
            return False
        self.settle(drv)
        return True

    def settle(self, drv: Driver) -> None:
        """plan.settle, and at least MIN_UPTIME since the last daemon start."""
        last = max(drv.started_at.values(), default=0.0)
        time.sleep(max(self.plan.settle, MIN_UPTIME - (time.monotonic() - last)))

    def startup(self, drv: Driver, setting: str, rep: int) -> bool:
        lab = drv.lab
        log(f"  {drv.key:10s} {setting}: start-up")
        t0 = time.monotonic()
        try:
            for n in drv.names:
                drv.start(n)
            t_started = time.monotonic()
            _a, t_first = self.wait_answer(lab, lambda a: a is not None, drv.startup_budget(),
                                           interval=POLL_INTERVAL)
            first = _a
            _b, t_pref = self.wait_answer(lab, lambda a: a == PREFERRED, drv.startup_budget())
        except Exception as exc:  # noqa: BLE001
            err = "timeout" if isinstance(exc, TimeoutError) else f"{exc!r:.300}"
            self.r.fail("startup_first_page", drv.key, setting, err, rep,
                        logs={n: drv.log(n)[-1500:] for n in drv.names})
            log(f"    FAILED: {err}")
            return False
        self.r.add("startup_first_page", drv.key, setting, t_first - t0, rep,
                   start_commands_s=round(t_started - t0, 3), first_answer=first,
                   preferred_s=round(t_pref - t0, 3))
        log(f"    -> first page after {t_first - t0:.2f} s ({first}); {PREFERRED} after "
            f"{t_pref - t0:.2f} s")
        return True

    def idle(self, drv: Driver, setting: str, rep: int) -> None:
        log(f"  {drv.key:10s} {setting}: idle window {self.plan.idle_seconds:.0f} s")
        time.sleep(2.0)
        pids = {n: drv.footprint_pids(n) for n in drv.names}
        t0 = time.monotonic()
        ticks0 = {n: {p: proc_cpu_ticks(p) for p in ps} for n, ps in pids.items()}
        ns0 = {n: {p: proc_sched_ns(p) for p in ps} for n, ps in pids.items()}
        time.sleep(self.plan.idle_seconds)
        ticks1 = {n: {p: proc_cpu_ticks(p) for p in ps} for n, ps in pids.items()}
        ns1 = {n: {p: proc_sched_ns(p) for p in ps} for n, ps in pids.items()}
        elapsed = time.monotonic() - t0
        for n in drv.names:
            if not pids[n]:
                self.r.fail("rss_per_node", drv.key, setting, "daemon not running", rep, node=n)
                self.r.fail("idle_cpu", drv.key, setting, "daemon not running", rep, node=n)
                continue
            rss = [proc_rss_kb(p) for p in pids[n]]
            gone = [p for p in pids[n] if ticks1[n].get(p) is None]
            self.r.add("rss_per_node", drv.key, setting,
                       sum(x for x in rss if x) / 1024.0, rep, node=n, processes=len(pids[n]),
                       rss_kb=rss)
            pss = [proc_pss_kb(p) for p in pids[n]]
            self.r.add("pss_per_node", drv.key, setting, sum(x for x in pss if x) / 1024.0, rep,
                       node=n, processes=len(pids[n]), pss_kb=pss)
            if gone:
                self.r.fail("idle_cpu", drv.key, setting, f"processes exited in the window: {gone}",
                            rep, node=n)
            else:
                self.r.add("idle_cpu", drv.key, setting,
                           cpu_ms_per_min(ticks0[n], ticks1[n], elapsed), rep, node=n,
                           window_s=round(elapsed, 2), processes=len(pids[n]))
                self.r.add("idle_cpu_precise", drv.key, setting,
                           cpu_ms_per_min(ns0[n], ns1[n], elapsed, clk_tck=1_000_000_000), rep,
                           node=n, window_s=round(elapsed, 2))
        vals = [s["value"] for s in self.r.samples[-3 * len(drv.names):]
                if s["metric"] == "idle_cpu_precise" and s["value"] is not None]
        log(f"    -> idle CPU ms/min per node: {[fmt_num(v) for v in vals]}")

    def cl_status_timing(self, drv: Driver) -> None:
        argv = drv.cl_status_argv()
        if argv is None or drv.key in self.cl_status_done:
            return
        self.cl_status_done.add(drv.key)
        node = drv.lab.node(PREFERRED)
        log(f"  {drv.key:10s}: cl_status hbstatus x10")
        times, err = timed_runs(lambda: node.run(argv, timeout=30, check=False))
        self._cli_record("cli_cl_status", drv.key, INSTALLED, times, err, argv=argv)
        if drv.key == "ours":
            base, berr = timed_runs(lambda: node.run(["true"], timeout=30, check=False))
            self._cli_record("cli_cl_status", "ours", "`nsenter ... true` alone (baseline)",
                             base, berr, argv=["true"])
            frozen = os.environ.get("HBA_FROZEN")
            if frozen:
                link_dir = tempfile.mkdtemp(prefix="hb-bench-frozen-", dir=self.workdir)
                link = os.path.join(link_dir, "cl_status")
                try:
                    os.symlink(os.path.abspath(frozen), link)
                    ftimes, ferr = timed_runs(lambda: node.run([link, "hbstatus"], timeout=30,
                                                               check=False))
                except OSError as exc:
                    ftimes, ferr = [], repr(exc)
                self._cli_record("cli_cl_status", "ours", f"frozen program ({frozen})", ftimes,
                                 ferr, argv=[link, "hbstatus"])

    def _cli_record(self, metric: str, impl: str, setting: str, times: List[float],
                    err: Optional[str], **detail: Any) -> None:
        if not times:
            self.r.fail(metric, impl, setting, err or "no run", **detail)
            return
        self.r.add(metric, impl, setting, statistics.median(times), runs_ms=[round(t, 2) for t in times],
                   error_seen=err, **detail)

    def cli_version(self) -> None:
        log("CLI: --version x10")
        from appliance.lab.cluster import default_heartbeat
        from appliance.lab.keepalived import KEEPALIVED
        from appliance.lab.realhb import REAL_HEARTBEAT
        cands = [("ours", INSTALLED, [default_heartbeat(), "--version"])]
        frozen = os.environ.get("HBA_FROZEN")
        if frozen:
            cands.append(("ours", f"frozen program ({frozen})", [frozen, "--version"]))
        if "hb306" in self.plan.impls:
            cands.append(("hb306", INSTALLED, [REAL_HEARTBEAT, "-V"]))
        if "keepalived" in self.plan.impls:
            cands.append(("keepalived", INSTALLED, [KEEPALIVED, "--version"]))
        for impl, setting, argv in cands:
            times, err = timed_runs(lambda argv=argv: subprocess.run(
                argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL))
            self._cli_record("cli_version", impl, setting, times, err, argv=argv)

    # ---- chains of faults ---------------------------------------------------------------

    def chain_graceful(self, drv: Driver, setting: str, rep: int) -> None:
        others = [n for n in drv.names if n != PREFERRED]
        not_s1 = lambda a: a is not None and a != PREFERRED  # noqa: E731
        dead_budget = drv.dead_interval() + 45.0
        self.measured(drv, setting, rep, "graceful_stop_outage", "stop", PREFERRED,
                      lambda: drv.stop(PREFERRED), not_s1, dead_budget,
                      lambda o: o.gap.duration * 1000.0, garp_kind="stop")
        stopped = [PREFERRED]
        if len(drv.names) >= 3:
            second = others[0]
            stopped.append(second)
            self.measured(drv, setting, rep, "tutorial_step2_outage", "step2", second,
                          lambda: drv.stop(second),
                          lambda a: a is not None and a not in stopped, dead_budget,
                          lambda o: o.gap.duration * 1000.0, garp_kind="step 2 stop")
        self.failback(drv, setting, rep, lambda: drv.start(PREFERRED))
        for n in stopped[1:]:
            drv.start(n)

    def failback(self, drv: Driver, setting: str, rep: int, action: Callable[[], Any]) -> None:
        self.measured(drv, setting, rep, "failback_outage", "failback", PREFERRED, action,
                      lambda a: a == PREFERRED, drv.startup_budget(),
                      lambda o: o.gap.duration * 1000.0)

    def chain_crash(self, drv: Driver, setting: str, rep: int) -> None:
        node = drv.lab.node(PREFERRED)
        not_s1 = lambda a: a is not None and a != PREFERRED  # noqa: E731
        self.measured(drv, setting, rep, "crash_outage", "crash", PREFERRED, node.kill_all, not_s1,
                      drv.dead_interval() + 45.0, lambda o: o.gap.duration * 1000.0,
                      garp_kind="crash", overhead_metric="crash_overhead")
        clear_node_state(node, full=False)
        self.failback(drv, setting, rep, lambda: drv.start(PREFERRED))

    def chain_link(self, drv: Driver, setting: str, rep: int) -> None:
        node = drv.lab.node(PREFERRED)
        not_s1 = lambda a: a is not None and a != PREFERRED  # noqa: E731
        try:
            self.measured(drv, setting, rep, "linkcut_outage", "linkcut", PREFERRED, node.link_down,
                          not_s1, drv.dead_interval() + 45.0, lambda o: o.gap.duration * 1000.0,
                          garp_kind="link cut", overhead_metric="linkcut_overhead")
        finally:
            # Same return path for every implementation: the cut node is crashed while cut
            # (3.0.6 would keep the address through the cut), link back, daemon started.
            node.kill_all()
            node.link_up()
            clear_node_state(node, full=False)
        self.failback(drv, setting, rep, lambda: drv.start(PREFERRED))

    def chain_standby(self, drv: Driver, setting: str, rep: int) -> None:
        not_s1 = lambda a: a is not None and a != PREFERRED  # noqa: E731

        def switch(o: StepOutcome) -> Optional[float]:
            return None if o.t_answer is None else (o.t_answer - o.t_fault) * 1000.0

        self.measured(drv, setting, rep, "standby_switch", "standby", PREFERRED,
                      lambda: drv.standby(PREFERRED), not_s1, 60.0, switch, garp_kind="hb_standby",
                      extra=lambda o: self.r.add("standby_outage", drv.key, setting,
                                                 o.gap.duration * 1000.0, rep))
        self.measured(drv, setting, rep, "takeover_switch", "takeover", PREFERRED,
                      lambda: drv.takeover(PREFERRED), lambda a: a == PREFERRED, 60.0, switch)

    # ---- a scenario: one implementation, one lab, one timer setting, one repetition ----

    def scenario(self, lab, impl: str, timers: Timers, rep: int) -> None:
        n = len(lab.nodes)
        setting = f"{n} nodes, {timers.key}"
        log(f"== {IMPL_LABEL[impl]}: {setting}, repetition {rep + 1}")
        reset_lab(lab)
        try:
            drv = make_driver(impl, lab, timers)
            drv.setup()
        except Exception as exc:  # noqa: BLE001
            self.r.fail("startup_first_page", impl, setting, f"setup: {exc!r:.300}", rep)
            log(f"    setup FAILED: {exc!r:.300}")
            reset_lab(lab)
            return
        try:
            if "failover" in self.plan.parts or "idle" in self.plan.parts:
                if not self.startup(drv, setting, rep):
                    if not self.baseline(drv, force=True):
                        return
                if "idle" in self.plan.parts:
                    if self.baseline(drv):
                        self.idle(drv, setting, rep)
                        if "cli" in self.plan.parts:
                            self.cl_status_timing(drv)
            if "failover" in self.plan.parts:
                chains: List[Callable[[Driver, str, int], None]] = [
                    self.chain_graceful, self.chain_crash, self.chain_link]
                if impl != "keepalived":
                    chains.append(self.chain_standby)
                for chain in chains:
                    if not self.baseline(drv):
                        self.r.event(what="chain skipped (no baseline)", impl=impl,
                                     setting=setting, chain=chain.__name__, rep=rep)
                        continue
                    try:
                        chain(drv, setting, rep)
                    except StepFailed:
                        self.r.event(what="chain aborted", impl=impl, setting=setting,
                                     chain=chain.__name__, rep=rep)
                        self.baseline(drv, force=True)
                    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                        log(f"    chain {chain.__name__} error: {exc!r:.300}")
                        self.r.event(what="chain error", impl=impl, setting=setting,
                                     chain=chain.__name__, rep=rep, error=f"{exc!r:.500}",
                                     trace=traceback.format_exc()[-2000:])
                        self.baseline(drv, force=True)
        finally:
            self.save_logs(drv, f"{impl}-{n}n-{timers.key.replace('/', '_')}-r{rep}")
            drv.stop_all()
            reset_lab(lab)

    def save_logs(self, drv: Driver, tag: str) -> None:
        if not self.plan.artifacts:
            return
        d = os.path.join(self.workdir, "logs", tag)
        os.makedirs(d, exist_ok=True)
        for n in drv.names:
            try:
                with open(os.path.join(d, f"{n}.log"), "w") as fh:
                    fh.write(drv.log(n))
            except Exception:  # noqa: BLE001
                pass

    # ---- scale --------------------------------------------------------------------------

    def scale(self, size: int, media: str, impl: str) -> None:
        """size nodes, no resource groups (membership only: a false death then costs no
        resource scripts, so an overloaded run cannot snowball into a process storm), one
        capture from the first start. Bounded: start-up, window, stop; aborted when the box
        is overloaded (OverloadGuard)."""
        from appliance.lab.cluster import Cluster, ClusterConfig
        from appliance.lab.realhb import MixedCluster

        setting = f"{size} nodes, {media}"
        if self.plan.scale_keepalive_ms != 200:
            ka, dt_ms = self.plan.scale_keepalive_ms, self.plan.scale_deadtime_ms
            setting += f", {fmt_duration(ka)}/{fmt_duration(dt_ms)}"
        log(f"== scale: {IMPL_LABEL[impl]}, {setting}, window {self.plan.scale_seconds:.0f} s")
        names = [f"node{i:02d}" for i in range(1, size + 1)]
        dt = self.plan.scale_deadtime_ms
        guard = OverloadGuard(size)
        metrics = ("scale_start", "scale_cpu", "scale_pps", "scale_false_deaths")

        def fail_rest(err: str) -> None:
            for m in metrics:
                if not any(x["metric"] == m and x["setting"] == setting and x["impl"] == impl
                           for x in self.r.samples):
                    self.r.fail(m, impl, setting, err)

        def body(lab) -> None:
            if media == "ucast":
                media_lines = [f"ucast eth0 {lab.node(n).ip}" for n in names]
            else:
                media_lines = ["bcast eth0"]
            cfg = ClusterConfig(keepalive=hacf_time(self.plan.scale_keepalive_ms), deadtime=hacf_time(dt),
                                warntime=hacf_time(dt // 2),
                                initdead=hacf_time(max(4 * dt, 20000)), media=media_lines,
                                haresources="")
            if impl == "hb306":
                c: Any = MixedCluster(lab, cfg, real_nodes=set(names))
            else:
                c = Cluster(lab, cfg)
            ips = {lab.node(n).ip: n for n in names}
            path = os.path.join(self.workdir, f"scale-{impl}-{size}-{media}.pcap")
            cap = None
            try:
                c.setup()
                cap = lab.capture(path, "udp port 694")
                t0 = time.monotonic()
                start_budget = 60.0 + 5.0 * size
                for i, n in enumerate(names):
                    if time.monotonic() - t0 > start_budget:
                        raise TimeoutError(f"only {i} of {size} daemons started within "
                                           f"{start_budget:.0f} s")
                    c.start(n)
                    guard.check_raise()
                t_started = time.monotonic()
                # Ready: every node heard on the wire within the last 2 s.
                t_ready = None
                deadline = t_started + 120.0 + 2.0 * size
                heard: set = set()
                while time.monotonic() < deadline:
                    guard.check_raise()
                    now = time.monotonic()
                    heard = {src for t, src in udp_sources(path, cap) if t >= now - 2.0}
                    if set(ips) <= heard:
                        t_ready = now
                        break
                    time.sleep(1.0)
                if t_ready is None:
                    silent = sorted(ips[ip] for ip in set(ips) - heard)
                    running = [n for n in names if c.daemon_pids(n)]
                    self.r.event(what="scale: nodes not heard", impl=impl, setting=setting,
                                 silent=silent, daemons_running=len(running),
                                 logs={n: c.log(n)[-1500:] for n in silent[:4]})
                    raise TimeoutError(f"{len(silent)} node(s) not heard within "
                                       f"{deadline - t_started:.0f} s after the last start "
                                       f"({len(running)}/{size} daemons running): "
                                       f"{' '.join(silent[:8])}")
                self.r.add("scale_start", impl, setting, t_ready - t0,
                           start_commands_s=round(t_started - t0, 2))
                log(f"    start commands took {t_started - t0:.1f} s; every node heard after "
                    f"{t_ready - t0:.1f} s")
                guarded_sleep(max(5.0, MIN_UPTIME - (time.monotonic() - t_started)), guard)
                marks = {n: len(c.log(n)) for n in names}
                pids = {n: c.daemon_pids(n) for n in names}
                t1 = time.monotonic()
                ticks0 = {n: {p: proc_cpu_ticks(p) for p in ps} for n, ps in pids.items()}
                guarded_sleep(self.plan.scale_seconds, guard)
                ticks1 = {n: {p: proc_cpu_ticks(p) for p in ps} for n, ps in pids.items()}
                t2 = time.monotonic()
                elapsed = t2 - t1
                time.sleep(0.3)
                cap.stop()
                window = [(t, src) for t, src in udp_sources(path, cap) if t1 <= t < t2]
                deaths = {n: c.log(n)[marks[n]:].count("is dead") for n in names}
                for n in names:
                    if not pids[n]:
                        self.r.fail("scale_cpu", impl, setting, "daemon not running", node=n)
                        continue
                    self.r.add("scale_cpu", impl, setting,
                               cpu_ms_per_min(ticks0[n], ticks1[n], elapsed), node=n,
                               processes=len(pids[n]))
                self.r.add("scale_pps", impl, setting, len(window) / elapsed, packets=len(window),
                           window_s=round(elapsed, 2),
                           sources_heard=len({src for _t, src in window} & set(ips)))
                self.r.add("scale_false_deaths", impl, setting, float(sum(deaths.values())),
                           per_node={n: v for n, v in deaths.items() if v})
                cpus = [x["value"] for x in self.r.samples
                        if x["metric"] == "scale_cpu" and x["setting"] == setting
                        and x["impl"] == impl and x["value"] is not None]
                med = fmt_num(statistics.median(cpus)) if cpus else "-"
                log(f"    -> CPU ms/min per node median {med}, {len(window) / elapsed:.0f} pkt/s, "
                    f"false deaths {sum(deaths.values())}")
            except Overload:
                # No graceful stop in a storm (3.0.6 forks more to stop): kill first, by namespace.
                log(f"    overload: {kill_lab_processes(lab)} processes of the lab killed")
                raise
            finally:
                if cap is not None:
                    cap.stop()
                self._stop_many(c, names)
                if not self.plan.artifacts and os.path.exists(path):
                    os.unlink(path)

        try:
            with managed_lab(names) as lab:
                try:
                    body(lab)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    err = (f"timeout: {exc}" if isinstance(exc, TimeoutError)
                           else f"aborted: {exc}" if isinstance(exc, Overload) else f"{exc!r:.300}")
                    log(f"    scale FAILED: {err}")
                    fail_rest(err)
        except Exception as exc:  # noqa: BLE001 - lab build/teardown
            log(f"    scale lab error: {exc!r:.300}")
            fail_rest(f"lab: {exc!r:.200}")
            self.r.event(what="scale lab error", impl=impl, setting=setting, error=f"{exc!r:.500}")

    @staticmethod
    def _stop_many(c, names: Sequence[str]) -> None:
        """SIGTERM every daemon at once (a graceful stop for both daemons), bounded wait; the
        Lab kills whatever is left when it closes."""
        from appliance.lab._proc import kill_pids, wait_gone
        pids: List[int] = []
        for n in names:
            try:
                pids += c.daemon_pids(n)
            except Exception:  # noqa: BLE001
                pass
        kill_pids(pids, signal.SIGTERM)
        wait_gone(pids, timeout=20.0)

    # ---- the whole run ------------------------------------------------------------------

    def run(self) -> None:
        p = self.plan
        if "cli" in p.parts:
            try:
                self.cli_version()
            except Exception as exc:  # noqa: BLE001
                self.r.event(what="cli error", error=f"{exc!r:.500}")
        if "failover" in p.parts or "idle" in p.parts:
            for n in p.node_counts:
                names = [f"server{i}" for i in range(1, n + 1)]
                try:
                    with managed_lab(names) as lab:
                        for timers in p.timers:
                            for rep in range(p.reps_for(timers)):
                                for impl in p.impls:
                                    self.scenario(lab, impl, timers, rep)
                except Exception as exc:  # noqa: BLE001 - lab build/teardown
                    log(f"lab error ({n} nodes): {exc!r:.300}")
                    self.r.event(what="lab error", nodes=n, error=f"{exc!r:.500}",
                                 trace=traceback.format_exc()[-2000:])
        if "scale" in p.parts:
            for size in p.scale_sizes:
                for media in p.scale_media:
                    for impl in p.scale_impls:
                        if impl == "hb306" and size > p.scale_real_max:
                            continue
                        self.scale(size, media, impl)


class _StepError(Exception):
    def __init__(self, out: StepOutcome, error: BaseException) -> None:
        super().__init__(repr(error))
        self.out = out
        self.error = error


def _ms(v: Optional[float]) -> Optional[float]:
    return None if v is None else round(v * 1000.0, 1)


# =============================================================================== CLI

def build_plan(args: argparse.Namespace) -> Plan:
    quick = args.quick
    impls = [i.strip() for i in (args.impls or ",".join(IMPLS)).split(",") if i.strip()]
    for i in impls:
        if i not in IMPLS:
            raise SystemExit(f"unknown implementation {i!r} (choose from {', '.join(IMPLS)})")
    if args.timers:
        timers = [parse_timers(t) for t in args.timers.split(",")]
    elif quick:
        timers = [Timers(200, 1000)]
    else:
        timers = [Timers(2000, 15000), Timers(200, 1000), Timers(100, 500)]
    nodes = [int(x) for x in args.nodes.split(",")] if args.nodes else ([2] if quick else [2, 3])
    scale_sizes = ([int(x) for x in args.scale_sizes.split(",") if x] if args.scale_sizes is not None
                   else ([8] if quick else [8, 16, 32]))
    scale_media = (args.scale_media.split(",") if args.scale_media
                   else (["bcast"] if quick else ["bcast", "ucast"]))
    scale_impls = ["ours"] + (["hb306"] if (args.scale_real if args.scale_real is not None
                                            else not quick) and "hb306" in impls else [])
    parts = args.parts.split(",") if args.parts else ["cli", "idle", "failover", "scale"]
    return Plan(
        mode="quick" if quick else "default",
        impls=impls, node_counts=nodes, timers=timers,
        reps=args.reps if args.reps is not None else (1 if quick else 3),
        slow_reps=args.slow_reps if args.slow_reps is not None else 1,
        idle_seconds=args.idle_seconds if args.idle_seconds is not None else (10.0 if quick else 20.0),
        settle=args.settle,
        scale_sizes=scale_sizes,
        scale_seconds=args.scale_seconds if args.scale_seconds is not None else (20.0 if quick else 60.0),
        scale_media=scale_media, scale_impls=scale_impls,
        scale_deadtime_ms=_to_ms(args.scale_deadtime), scale_real_max=args.scale_real_max,
        parts=parts, artifacts=args.artifacts, json_path=args.json,
        poll_timeout=args.poll_timeout, scale_keepalive_ms=_to_ms(args.scale_keepalive),
    )


def machine_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {"host": socket.gethostname(), "kernel": platform.release(),
                            "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/etc/os-release") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        info["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    return info


def choices_text(plan: Plan) -> List[str]:
    t = ", ".join(f"{x.key} (initdead {fmt_duration(x.initdead_ms)}, warntime "
                  f"{fmt_duration(x.warntime_ms)})" for x in plan.timers)
    return [
        f"Timer settings (keepalive/deadtime): {t}. Heartbeat 3.0.6, ours and keepalived all "
        "accept these (3.0.6 and ours require deadtime > 2 × keepalive and run at 100ms/500ms; "
        "keepalived VRRPv3 takes advert_int in 10 ms steps), so every implementation runs the "
        "same setting; --quick uses 200ms/1s.",
        "keepalived: VRRPv3, advert_int = keepalive, state BACKUP everywhere, priority 150/100/50 "
        "in node order (server1 preferred), preempt on (keepalived's default, the counterpart of "
        "auto_failback on); its dead interval is the master-down interval 3 × advert_int + skew "
        "(e.g. ~0.72 s at 200 ms), not deadtime. lighttpd runs on EVERY node all the time "
        "(keepalived only moves the address); with Heartbeat, lighttpd is the managed resource "
        "(haresources: server1 192.168.56.200 httpd).",
        f"Client: the lab client sends a request to http://192.168.56.200/ every 25 ms, each "
        f"on its own connection with a {plan.poll_timeout * 1000:.0f} ms timeout, without waiting "
        "for earlier ones; outage = the longest run of unanswered requests around the fault, "
        "from the first unanswered request sent to the first answer received (a request queued "
        "behind ARP resolution counts until it is answered). Resolution: the 25 ms interval "
        "(the address-up and GARP times below are captured, not polled).",
        f"Steady state: every fault and idle window starts >= {MIN_UPTIME:.0f} s after the last "
        "daemon start (3.0.6, and ours like it, advertise deadtime + 2 s during their first "
        f"5 s) and >= {plan.settle:g} s after the previous step.",
        "Faults: graceful = heartbeat -k (keepalived: SIGTERM); crash = SIGKILL of every process "
        "of the node and its floating address deleted; link cut = eth0 down in the node. After a "
        "link cut the node is crashed while cut, its link restored and the daemon restarted "
        "(same return path for all three), which is measured as a failback.",
        f"Repetitions: {plan.reps} ({plan.slow_reps} for timers with deadtime >= 5 s); idle "
        f"window {plan.idle_seconds:.0f} s per scenario; scale: ours"
        + (f" and 3.0.6 (up to {plan.scale_real_max} nodes)" if "hb306" in plan.scale_impls else "")
        + f", keepalive {fmt_duration(plan.scale_keepalive_ms)} / deadtime "
        f"{fmt_duration(plan.scale_deadtime_ms)}, no resource "
        f"groups (membership only), {plan.scale_seconds:.0f} s window after every node is heard "
        f"on the wire, sizes {plan.scale_sizes}, media {plan.scale_media}; a scale run is aborted "
        "(recorded as such) when the machine gets overloaded (process storm or runaway load).",
        "Shared, noisy machine: only ratios measured in the same run mean something.",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 2 nodes, 200ms/1s, scale 8 nodes for 20 s (development)")
    ap.add_argument("--json", default="bench-results.json", help="where to write every sample")
    ap.add_argument("--impls", help=f"comma list of {','.join(IMPLS)} (default all)")
    ap.add_argument("--nodes", help="comma list of cluster sizes (default 2,3; --quick 2)")
    ap.add_argument("--timers", help="comma list KEEPALIVE/DEADTIME, e.g. 200ms/1s,100ms/500ms")
    ap.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    ap.add_argument("--slow-reps", type=int, help="repetitions for deadtime >= 5 s (default 1)")
    ap.add_argument("--idle-seconds", type=float, help="idle CPU window (default 20; --quick 10)")
    ap.add_argument("--poll-timeout", type=float, default=POLL_TIMEOUT,
                    help="client request timeout during measured steps (default 0.25 s; "
                         "requests start every 25 ms regardless, the outage resolution)")
    ap.add_argument("--settle", type=float, default=1.0, help="pause before each fault (s)")
    ap.add_argument("--scale-sizes", help="comma list of node counts (default 8,16,32; --quick 8; "
                    "empty string: none)")
    ap.add_argument("--scale-seconds", type=float, help="scale window (default 60; --quick 20)")
    ap.add_argument("--scale-media", help="comma list of bcast,ucast (default both; --quick bcast)")
    ap.add_argument("--scale-deadtime", default="2s", help="deadtime for the scale runs (2s)")
    ap.add_argument("--scale-keepalive", default="200ms",
                    help="keepalive for the scale runs (200ms); with --scale-sizes 2 --scale-seconds 600 "
                         "--scale-keepalive 100ms --scale-deadtime 500ms it is the 10-minute stability soak")
    ap.add_argument("--scale-real", dest="scale_real", action="store_true", default=None,
                    help="also run Heartbeat 3.0.6 at scale (default on, off with --quick)")
    ap.add_argument("--no-scale-real", dest="scale_real", action="store_false")
    ap.add_argument("--scale-real-max", type=int, default=16,
                    help="largest cluster for 3.0.6 at scale (default 16; see the output notes)")
    ap.add_argument("--parts", help="comma list of cli,idle,failover,scale (default all)")
    ap.add_argument("--artifacts", help="keep captures, address monitors and logs in this directory")
    args = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("scripts/bench needs root (network namespaces)", file=sys.stderr)
        return 2
    plan = build_plan(args)
    avail = {}
    for impl in list(plan.impls):
        ok, why = impl_available(impl)
        avail[impl] = ok
        if not ok:
            log(f"skipping {impl}: {why}")
            plan.impls.remove(impl)
    if not avail.get("ours", True):
        print("our daemon is not available (run scripts/setup)", file=sys.stderr)
        return 2
    if not plan.impls:
        print("nothing to run", file=sys.stderr)
        return 2

    results = Results()
    bench = Bench(plan, results)
    started_wall = datetime.now().astimezone()
    t0 = time.monotonic()
    info = machine_info()

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    log(f"hb-appliance bench ({plan.mode}); work dir {bench.workdir}")
    try:
        bench.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: writing what was measured")
    finally:
        signal.signal(signal.SIGTERM, old)
        runtime = time.monotonic() - t0
        try:
            info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        except OSError:
            pass
        header = [
            f"## hb-appliance benchmark ({plan.mode}{', INTERRUPTED' if interrupted else ''})",
            "",
            f"{started_wall:%Y-%m-%d %H:%M %Z} on {info['host']}: {info.get('cpu', '?')}, "
            f"{info['cpus']} CPUs, {info.get('os', '?')}, kernel {info['kernel']}; load average "
            f"{' '.join(info.get('loadavg_start', []))} at start, "
            f"{' '.join(info.get('loadavg_end', []))} at end; run took {runtime / 60:.1f} min.",
            "",
        ] + [f"* {c}" for c in choices_text(plan)] + [""]
        tables = results.tables(plan.impls)
        text = "\n".join(header) + "\n" + tables
        failed = [s for s in results.samples if s.get("error")]
        if failed:
            text += f"\n{len(failed)} failed sample(s); details in {plan.json_path}.\n"
        print(text)
        doc = {"meta": {"mode": plan.mode, "interrupted": interrupted,
                        "started": started_wall.isoformat(), "runtime_s": round(runtime, 1),
                        "machine": info, "argv": sys.argv[1:] if argv is None else argv,
                        "plan": {k: (v if not isinstance(v, list) or not v or not isinstance(v[0], Timers)
                                     else [t.key for t in v])
                                 for k, v in plan.__dict__.items()},
                        "choices": choices_text(plan), "workdir": bench.workdir},
               "samples": results.samples, "events": results.events, "markdown": text}
        try:
            with open(plan.json_path, "w") as fh:
                json.dump(doc, fh, indent=1, default=str)
            log(f"wrote {plan.json_path} ({len(results.samples)} samples); "
                f"run took {runtime:.0f} s")
        except OSError as exc:
            log(f"could not write {plan.json_path}: {exc}")
        if not plan.artifacts:
            shutil.rmtree(bench.workdir, ignore_errors=True)
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
