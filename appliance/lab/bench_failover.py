"""Failover measurements of the benchmark (appliance.lab.bench): one measured fault step
(client polling, switch capture and address monitors around an action, then the outage,
address-up, GARP and decision times) and the chains of faults built from it (graceful stop,
crash, link cut, hb_standby/hb_takeover, each followed by a failback). Bench inherits
FailoverSteps."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from appliance.lab.bench_drivers import (
    PREFERRED,
    VIP,
    AddrMonitor,
    Driver,
    StepFailed,
    clear_node_state,
)
from appliance.lab.bench_host import log
from appliance.lab.bench_results import Gap, Sample, first_answer, fmt_num, outage, run_length

POLL_INTERVAL = 0.025
POLL_TIMEOUT = 0.25
CAPTURE_BPF = "arp or udp port 694 or ip proto 112"


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


class _StepError(Exception):
    def __init__(self, out: StepOutcome, error: BaseException) -> None:
        super().__init__(repr(error))
        self.out = out
        self.error = error


def _ms(v: Optional[float]) -> Optional[float]:
    return None if v is None else round(v * 1000.0, 1)


class FailoverSteps:
    """Mixin of Bench: measured steps and fault chains. Uses self.plan, self.r (Results),
    self.workdir and self._step_no, set by Bench.__init__."""

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
