"""The fuzzer's counts (appliance.lab.fuzz): the Stats of a run, its findings, the process RSS
and the text report."""

from __future__ import annotations

import collections
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class Stats:
    packets: int = 0
    generators: collections.Counter = field(default_factory=collections.Counter)
    direct: collections.Counter = field(default_factory=collections.Counter)
    daemon_drops: collections.Counter = field(default_factory=collections.Counter)
    accepted: collections.Counter = field(default_factory=collections.Counter)
    own: int = 0
    others_acks: int = 0    # ACKs to other nodes the daemon skipped unread (not in `direct`)
    escapes: collections.Counter = field(default_factory=collections.Counter)
    escape_examples: Dict[str, str] = field(default_factory=dict)
    rejected_state_changes: int = 0
    rejected_examples: List[str] = field(default_factory=list)
    sign_failures: int = 0
    check_loop_runs: int = 0
    log_levels: collections.Counter = field(default_factory=collections.Counter)
    log_format_errors: int = 0
    seconds: float = 0.0
    rss_start_kib: int = 0
    rss_warm_kib: int = 0
    rss_end_kib: int = 0
    sizes_warm: Dict[str, Dict[str, int]] = field(default_factory=dict)
    sizes_end: Dict[str, Dict[str, int]] = field(default_factory=dict)
    traced_growth_kib: Optional[float] = None

    def findings(self, rss_limit_kib: int) -> List[str]:
        out = []
        if self.escapes:
            out.append(f"{sum(self.escapes.values())} exception(s) escaped: {dict(self.escapes)}")
        if self.direct.get("decode:decoder_bug") or self.daemon_drops.get("decoder_bug"):
            out.append("decode_packet hit its catch-all (decoder_bug)")
        if self.rejected_state_changes:
            out.append(f"{self.rejected_state_changes} rejected packet(s) changed the daemon's state")
        if self.log_format_errors:
            out.append(f"{self.log_format_errors} log record(s) could not be formatted")
        growth = self.rss_end_kib - self.rss_warm_kib
        if growth > rss_limit_kib:
            out.append(f"RSS grew by {growth} KiB after warm-up (limit {rss_limit_kib} KiB)")
        for name, end in self.sizes_end.items():
            for k, v in end.items():
                if v > {"history": 500, "rexmits": 2000, "missing": 2000}.get(k, 100):
                    out.append(f"{name}: {k} = {v} (unbounded?)")
        return out

    def as_dict(self) -> dict:
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs, i.e. wrongly.
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = dict(v.most_common()) if isinstance(v, collections.Counter) else v
        return out


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def format_report(st: Stats, rss_limit_kib: int) -> str:
    def block(title: str, counter: collections.Counter) -> List[str]:
        total = sum(counter.values()) or 1
        lines = [f"{title}:"]
        for k, v in counter.most_common():
            lines.append(f"  {k:<34} {v:>10}  {100.0 * v / total:5.1f} %")
        return lines

    rate = st.packets / st.seconds if st.seconds else 0.0
    out = [f"packets: {st.packets} in {st.seconds:.1f} s ({rate:.0f}/s),"
           f" check-loop runs {st.check_loop_runs}, re-sign failures {st.sign_failures}"]
    out += block("generators", st.generators)
    out += block(f"decode_packet + verify (direct; {st.others_acks} ACKs to other nodes skipped unread by the"
                 " daemon not counted)", st.direct)
    out += block("daemon drops by reason (counters.dropped)", st.daemon_drops)
    acc = sum(st.accepted.values())
    out += block(f"accepted by the daemon, by message type ({acc} + {st.own} own)", st.accepted)
    out.append(f"daemon log records: {dict(st.log_levels)}; format errors {st.log_format_errors}")
    out.append(f"memory: RSS start {st.rss_start_kib // 1024} MiB,"
               f" after warm-up {st.rss_warm_kib // 1024} MiB, end {st.rss_end_kib // 1024} MiB"
               f" (growth {st.rss_end_kib - st.rss_warm_kib} KiB)"
               + (f"; tracemalloc growth {st.traced_growth_kib:.0f} KiB" if st.traced_growth_kib is not None
                  else ""))
    out.append("bounded structures (warm-up -> end): "
               + "; ".join(f"{n}: {st.sizes_warm.get(n)} -> {s}" for n, s in st.sizes_end.items()))
    out.append(f"rejected packets that changed state: {st.rejected_state_changes}")
    if st.escapes:
        out.append("ESCAPED EXCEPTIONS:")
        for k, v in st.escapes.most_common():
            out.append(f"  {v:>8}  {k}\n            e.g. {st.escape_examples.get(k, '')[:300]}")
    else:
        out.append("escaped exceptions: 0")
    findings = st.findings(rss_limit_kib)
    out.append("FINDINGS: " + ("; ".join(findings) if findings else "none"))
    return "\n".join(out)
