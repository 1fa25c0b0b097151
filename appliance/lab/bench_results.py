"""Pure parts of the benchmark (appliance.lab.bench): timer settings, outages from client
samples, address-monitor parsing, statistics, the metric catalogue, the collected results and
their Markdown tables. No I/O and no lab: everything here is unit-tested directly."""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

Sample = Tuple[float, Optional[str]]

IMPLS = ("ours", "hb306", "keepalived")
IMPL_LABEL = {"ours": "ours", "hb306": "Heartbeat 3.0.6", "keepalived": "keepalived 2.2.7"}
PEERS = ("hb306", "keepalived")


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
