"""Scale runs of the benchmark (appliance.lab.bench): one cluster of many nodes without
resource groups, from the first start until every node is heard, then CPU per node, heartbeat
packets per second and false deaths over a bounded window, aborted when the machine gets
overloaded. Bench inherits ScaleRuns."""

from __future__ import annotations

import os
import signal
import statistics
import time
from typing import Any, List, Sequence

from appliance.lab.bench_drivers import MIN_UPTIME
from appliance.lab.bench_host import (
    Overload,
    OverloadGuard,
    UdpSourceTail,
    cpu_ms_per_min,
    guarded_sleep,
    kill_lab_processes,
    log,
    managed_lab,
    proc_cpu_ticks,
    udp_sources,
)
from appliance.lab.bench_results import IMPL_LABEL, fmt_duration, fmt_num, hacf_time


class ScaleRuns:
    """Mixin of Bench: the scale part. Uses self.plan, self.r (Results) and self.workdir, set
    by Bench.__init__."""

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
        # 3.0.6 runs a read and a write child per medium line: with ucast, one line per node.
        guard = OverloadGuard(size, per_node=15 + (2 * size if impl == "hb306" and media == "ucast" else 0))
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
                tail, last_heard = UdpSourceTail(path, cap), {}
                while time.monotonic() < deadline:
                    guard.check_raise()
                    now = time.monotonic()
                    last_heard.update((src, t) for t, src in tail.read())
                    heard = {src for src, t in last_heard.items() if t >= now - 2.0}
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
