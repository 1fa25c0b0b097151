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
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from appliance.lab.bench_drivers import (
    MIN_UPTIME,
    PREFERRED,
    VIP,
    Driver,
    StepFailed,
    impl_available,
    make_driver,
    reset_lab,
)
from appliance.lab.bench_failover import POLL_INTERVAL, POLL_TIMEOUT, FailoverSteps
from appliance.lab.bench_host import (
    Overload,
    OverloadGuard,
    cpu_ms_per_min,
    kill_lab_processes,
    log,
    managed_lab,
    proc_cpu_ticks,
    proc_pss_kb,
    proc_rss_kb,
    proc_sched_ns,
    runnable_now,
    timed_runs,
    udp_sources,
)
from appliance.lab.bench_results import (
    IMPL_LABEL,
    IMPLS,
    Gap,
    Results,
    Timers,
    _to_ms,
    first_answer,
    fmt_cell,
    fmt_duration,
    fmt_num,
    markdown_table,
    outage,
    parse_addr_monitor,
    parse_timers,
    ratio,
    run_length,
    summarize,
    unanswered_runs,
)
from appliance.lab.bench_scale import ScaleRuns

__all__ = [
    # this module
    "Bench", "Plan", "build_plan", "choices_text", "machine_info", "main",
    # re-exported for the unit and lab tests
    "Gap", "Overload", "OverloadGuard", "Results", "Timers", "cpu_ms_per_min", "first_answer",
    "fmt_cell", "kill_lab_processes", "markdown_table", "outage", "parse_addr_monitor",
    "parse_timers", "proc_cpu_ticks", "proc_rss_kb", "proc_sched_ns", "ratio", "run_length",
    "runnable_now", "summarize", "udp_sources", "unanswered_runs",
]

INSTALLED = "installed (ours: source install, .venv/bin)"


# =============================================================================== the bench

IDLE_AFTER_KEEPALIVES = 7.5     # an idle window starts this many keepalives after the last start


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


class Bench(FailoverSteps, ScaleRuns):
    def __init__(self, plan: Plan, results: Results) -> None:
        self.plan = plan
        self.r = results
        self.cl_status_done: set = set()
        self.workdir = plan.artifacts or tempfile.mkdtemp(prefix="hb-bench-")
        os.makedirs(self.workdir, exist_ok=True)
        self._step_no = 0

    # ---- scenario pieces ------------------------------------------------------------------

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
        # Past start-up: at slow timers (2s/15s) both Heartbeats need several keepalives to
        # hear everyone and settle, longer than MIN_UPTIME.
        last = max(drv.started_at.values(), default=0.0)
        quiet = IDLE_AFTER_KEEPALIVES * drv.timers.keepalive_ms / 1000.0
        time.sleep(max(2.0, last + quiet - time.monotonic()))
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
        f"5 s) and >= {plan.settle:g} s after the previous step; idle windows also >= "
        f"{IDLE_AFTER_KEEPALIVES:g} keepalives after the last start (at 2s/15s start-up takes longer "
        "than 6 s).",
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
