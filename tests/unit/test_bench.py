"""Pure parts of the benchmark (appliance.lab.bench*, appliance.lab.keepalived): outage from
client samples, statistics, table formatting, timer parsing, monitor parsing, CPU scaling."""

from __future__ import annotations

import argparse
import math
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.lab import bench, bench_host
from appliance.lab.bench_host import cpu_ms_per_min
from appliance.lab.bench_results import (
    Gap,
    Results,
    Timers,
    first_answer,
    fmt_cell,
    markdown_table,
    outage,
    parse_addr_monitor,
    parse_timers,
    ratio,
    run_length,
    summarize,
    unanswered_runs,
)
from appliance.lab.keepalived import keepalived_conf, master_down_interval, priorities


def poll(pattern: str, t0: float = 100.0, step: float = 0.025):
    """'aa..bb' -> samples: a/b = answered by server1/server2, '.' = unanswered."""
    names = {"a": "server1", "b": "server2", "c": "server3"}
    return [(t0 + i * step, None if ch == "." else names[ch]) for i, ch in enumerate(pattern)]


# ---- outage ---------------------------------------------------------------------------------

def test_no_gap_is_zero_outage():
    g = outage(poll("aaaabbbb"), t_fault=100.05)
    assert g.duration == 0 and g.recovered and g.count == 0


def test_gap_runs_from_first_unanswered_to_first_answered():
    s = poll("aaa....bbb")
    g = outage(s, t_fault=100.07)
    assert g.recovered and g.count == 4
    assert g.start == pytest.approx(100.075)
    assert g.end == pytest.approx(100.175)          # first answered sample after the gap
    assert g.duration == pytest.approx(0.1)


def test_longest_run_around_the_fault_wins():
    s = poll("a.aaaa..aaa...bbb")
    g = outage(s, t_fault=100.1)
    assert g.count == 3


def test_hiccup_long_before_the_fault_is_ignored():
    s = poll("a" + "." * 10 + "a" * 60 + ".." + "b" * 5)
    # the long early gap ends at t=100.275; the fault is at 101.7
    g = outage(s, t_fault=101.7)
    assert g.count == 2


def test_gap_ending_just_before_the_fault_counts():
    # A request sent before the fault that went unanswered still belongs to it (within 0.5 s).
    s = poll("aaa...aaaa")
    assert outage(s, t_fault=100.3).count == 3
    assert outage(s, t_fault=101.5).count == 0


def test_unrecovered_gap_is_flagged():
    g = outage(poll("aaa......"), t_fault=100.05)
    assert not g.recovered
    assert g.count == 6
    assert g.duration == pytest.approx(0.125)       # first to last unanswered: a lower bound


def test_unanswered_runs_all_listed():
    runs = unanswered_runs(poll(".a..a...a...."))
    assert [r.count for r in runs] == [1, 2, 3, 4]
    assert [r.recovered for r in runs] == [True, True, True, False]


@given(st.lists(st.sampled_from("ab."), min_size=1, max_size=200))
def test_outage_is_bounded_by_the_window(chars):
    s = poll("".join(chars))
    g = outage(s, t_fault=s[0][0])
    assert 0 <= g.duration <= s[-1][0] - s[0][0] + 1e-9
    assert g.count == max((r.count for r in unanswered_runs(s)), default=0) or g.count <= len(s)


def test_first_answer_after():
    s = poll("aaa..bbb")
    assert first_answer(s, 100.0, lambda a: a == "server2") == (pytest.approx(100.125), "server2")
    assert first_answer(s, 100.0, lambda a: a == "server3") is None
    assert first_answer(s, 100.06, lambda a: a is not None)[1] == "server2"


def test_run_length_is_complete_and_compact():
    s = poll("aa..b")
    assert run_length(s, 100.0) == [[0.0, "server1", 2], [0.05, None, 2], [0.1, "server2", 1]]
    assert sum(r[2] for r in run_length(poll("a.b.a" * 20), 100.0)) == 100


# ---- statistics and tables -------------------------------------------------------------------

def test_summarize_ignores_failures():
    s = summarize([3.0, None, 1.0, 2.0, float("nan")])
    assert s == {"n": 3, "failed": 2, "median": 2.0, "min": 1.0, "max": 3.0}
    assert summarize([]) == {"n": 0, "failed": 0}
    assert summarize([None]) == {"n": 0, "failed": 1}


def test_summarize_even_count_median():
    assert summarize([1, 2, 3, 10])["median"] == 2.5


def test_fmt_cell():
    assert fmt_cell(None) == "n/a"
    assert fmt_cell(summarize([])) == "n/a"
    assert fmt_cell(summarize([250.4])) == "250"
    assert fmt_cell(summarize([250.0, 240.0, 900.0])) == "250 (240..900)"
    assert fmt_cell(summarize([None, None])) == "failed (2/2)"
    assert fmt_cell(summarize([12.34, None])) == "12.3 [1/2 failed]"
    assert fmt_cell(summarize([0.5])) == "0.500"
    assert fmt_cell(summarize([0.0])) == "0"


def test_ratio():
    assert ratio(summarize([100.0]), summarize([400.0])) == pytest.approx(0.25)
    assert ratio(summarize([100.0]), summarize([0.0])) is None
    assert ratio(summarize([100.0]), None) is None
    assert ratio(summarize([None]), summarize([1.0])) is None


def test_markdown_table_layout():
    rows = [("2 nodes, 200ms/1s", {"ours": summarize([100.0, 120.0, 90.0]),
                                   "hb306": summarize([400.0]),
                                   "keepalived": summarize([None])})]
    text = markdown_table("Outage", "ms", rows, note="a note")
    lines = text.strip().splitlines()
    assert lines[0] == "### Outage (ms)"
    assert "a note" in text
    header = [c.strip() for c in lines[4].strip("|").split("|")]
    assert header == ["setting", "ours", "Heartbeat 3.0.6", "keepalived 2.2.7",
                      "ours / Heartbeat 3.0.6", "ours / keepalived 2.2.7"]
    assert lines[5].count("|") == len(header) + 1
    row = [c.strip() for c in lines[6].strip("|").split("|")]
    assert row == ["2 nodes, 200ms/1s", "100 (90.0..120)", "400", "failed (1/1)", "0.25×", "n/a"]


def test_markdown_table_without_ours_has_no_ratio_columns():
    text = markdown_table("X", "ms", [("s", {"hb306": summarize([1.0])})], impls=["hb306"])
    assert "ours /" not in text


def test_results_rows_and_tables():
    r = Results()
    for v in (100.0, 110.0, 90.0):
        r.add("graceful_stop_outage", "ours", "2 nodes, 200ms/1s", v)
    r.add("graceful_stop_outage", "hb306", "2 nodes, 200ms/1s", 400.0)
    r.fail("graceful_stop_outage", "keepalived", "2 nodes, 200ms/1s", "timeout")
    r.add("graceful_stop_outage", "ours", "3 nodes, 200ms/1s", 120.0)
    rows = r.rows("graceful_stop_outage")
    assert [s for s, _ in rows] == ["2 nodes, 200ms/1s", "3 nodes, 200ms/1s"]
    assert rows[0][1]["ours"]["median"] == 100.0
    assert rows[0][1]["keepalived"] == {"n": 0, "failed": 1}
    assert "hb306" not in rows[1][1]
    text = r.tables()
    assert "### Outage on graceful stop of the active node (ms)" in text
    assert "0.25×" in text                      # 100 / 400
    assert r.samples[-2]["error"] == "timeout" and r.samples[-2]["value"] is None
    with pytest.raises(KeyError):
        r.add("no_such_metric", "ours", "x", 1.0)


def test_shared_peer_rows_for_the_frozen_program():
    r = Results()
    r.add("cli_version", "ours", "source install", 120.0)
    r.add("cli_version", "hb306", "source install", 12.0)
    r.add("cli_version", "ours", "frozen program (/x)", 60.0)
    rows = dict(r.rows("cli_version"))
    assert rows["frozen program (/x)"]["hb306"]["median"] == 12.0
    assert "5.00×" in r.tables()


# ---- timers, monitor, cpu ------------------------------------------------------------------

def test_parse_timers():
    assert parse_timers("200ms/1s") == Timers(200, 1000)
    assert parse_timers("2/15") == Timers(2000, 15000)
    assert parse_timers("100ms/500ms") == Timers(100, 500)
    assert parse_timers("0.5s/3s") == Timers(500, 3000)
    with pytest.raises(ValueError):
        parse_timers("200ms")


def test_timers_derived_values():
    t = Timers(2000, 15000)
    assert t.key == "2s/15s" and t.slow
    assert t.hacf_values() == {"keepalive": "2", "deadtime": "15", "warntime": "7500ms",
                               "initdead": "30"}
    f = Timers(100, 500)
    assert f.key == "100ms/500ms" and not f.slow
    assert f.hacf_values()["initdead"] == "4"     # never below 4 s
    assert f.hacf_values()["keepalive"] == "100ms"


def test_parse_addr_monitor():
    text = (
        "[2026-11-26T07:53:20.941656] 1: lo    inet 127.0.0.1/8 scope host lo\n"
        "       valid_lft forever preferred_lft forever\n"
        "[2026-11-26T07:53:20.941744] 1: lo    inet6 ::1/128 scope host \n"
        "[2026-11-26T07:53:20.949609] 2: eth0    inet 192.168.56.200/24 scope global "
        "secondary eth0:0\n"
        "[2026-11-26T07:53:21.500000] Deleted 2: eth0    inet 192.168.56.200/24 scope global "
        "secondary eth0:0\n"
    )
    ev = parse_addr_monitor(text)
    assert [(a, d, ip) for _t, a, d, ip in ev] == [
        (True, "lo", "127.0.0.1"), (True, "eth0", "192.168.56.200"),
        (False, "eth0", "192.168.56.200")]
    want = datetime.fromisoformat("2026-11-26T07:53:20.949609").timestamp()
    assert ev[1][0] == pytest.approx(want)
    assert ev[2][0] - ev[1][0] == pytest.approx(0.550391)


def test_cpu_ms_per_min():
    # 150 ticks of 10 ms over 30 s = 1.5 s CPU in 30 s = 3000 ms per minute
    assert cpu_ms_per_min({1: 100, 2: 0}, {1: 200, 2: 50}, 30.0, clk_tck=100) == pytest.approx(3000)
    # a pid that vanished is left out
    assert cpu_ms_per_min({1: 100, 2: 0}, {1: 200, 2: None}, 60.0, clk_tck=100) == pytest.approx(1000)
    # ns resolution
    assert cpu_ms_per_min({1: 0}, {1: 5_000_000}, 60.0, clk_tck=1_000_000_000) == pytest.approx(5)


def test_proc_readers_on_self():
    import os
    assert bench_host.proc_cpu_ticks(os.getpid()) >= 0
    assert bench_host.proc_rss_kb(os.getpid()) > 0
    assert bench_host.proc_sched_ns(os.getpid()) > 0
    assert bench_host.proc_cpu_ticks(2 ** 22 + 12345) is None


# ---- plan -----------------------------------------------------------------------------------

def _args(**kw):
    base = dict(quick=False, impls=None, nodes=None, timers=None, reps=None, slow_reps=None,
                idle_seconds=None, settle=1.0, scale_sizes=None, scale_seconds=None,
                scale_media=None, scale_deadtime="2s", scale_real=None, scale_real_max=16, parts=None,
                artifacts=None, json="x.json", poll_timeout=0.25, scale_keepalive="200ms")
    base.update(kw)
    return argparse.Namespace(**base)


def test_quick_plan():
    p = bench.build_plan(_args(quick=True))
    assert p.reps == 1 and p.node_counts == [2] and [t.key for t in p.timers] == ["200ms/1s"]
    assert p.scale_sizes == [8] and p.scale_seconds == 20 and p.scale_impls == ["ours"]
    assert p.impls == ["ours", "hb306", "keepalived"]


def test_default_plan():
    p = bench.build_plan(_args())
    assert p.reps == 3 and p.node_counts == [2, 3]
    assert [t.key for t in p.timers] == ["2s/15s", "200ms/1s", "100ms/500ms"]
    assert p.reps_for(p.timers[0]) == 1 and p.reps_for(p.timers[1]) == 3
    assert p.scale_sizes == [8, 16, 32] and p.scale_media == ["bcast", "ucast"]
    assert p.scale_impls == ["ours", "hb306"]
    assert bench.build_plan(_args(scale_sizes="")).scale_sizes == []


def test_unknown_impl_rejected():
    with pytest.raises(SystemExit):
        bench.build_plan(_args(impls="ours,pacemaker"))


# ---- keepalived config ----------------------------------------------------------------------

def test_keepalived_priorities_and_dead_interval():
    assert priorities(["server1", "server2", "server3"]) == {"server1": 150, "server2": 100,
                                                             "server3": 50}
    many = priorities([f"n{i}" for i in range(40)])
    assert max(many.values()) == 150 and min(many.values()) >= 1
    assert len(set(many.values())) == 40
    assert master_down_interval(1.0, 100) == pytest.approx(3 + 156 / 256)
    assert master_down_interval(0.2, 150) == pytest.approx(0.6 + 106 * 0.2 / 256)


def test_keepalived_conf():
    text = keepalived_conf("server2", 100, 0.2)
    assert "vrrp_version 3" in text and "advert_int 0.2\n" in text
    assert "priority 100" in text and "192.168.56.200/24 dev eth0" in text
    assert "nopreempt" not in text and "state BACKUP" in text
    assert "advert_int 1\n" in keepalived_conf("s", 1, 1.0)
    assert "nopreempt" in keepalived_conf("s", 1, 1.0, preempt=False)
    assert text.count("{") == text.count("}")


def test_gap_duration_property():
    assert Gap(1.0, 1.25, True, 1).duration == pytest.approx(0.25)
    assert not math.isnan(Gap(1.0, 1.0, True, 0).duration)


# ---- capture sources and the overload guard --------------------------------------------------

def _pcap(frames):
    import struct
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ts, data in frames:
        out += struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(data), len(data)) + data
    return out


def _udp_frame(src: str, proto: int = 17) -> bytes:
    eth = b"\xff" * 6 + b"\x02\x56\x00\x00\x00\x01" + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0]) + bytes(map(int, src.split("."))) \
        + bytes([192, 168, 56, 255])
    return eth + ip + b"\x02\xb6\x02\xb6\x00\x08\x00\x00"


class Cap:
    """A capture whose wall clock is 1000 s ahead of the monotonic one."""

    @staticmethod
    def to_monotonic(wall):
        return wall - 1000.0


def test_udp_sources(tmp_path):
    path = tmp_path / "c.pcap"
    blob = _pcap([(1000.5, _udp_frame("192.168.56.101")), (1001.0, _udp_frame("192.168.56.102")),
                  (1001.5, _udp_frame("192.168.56.103", proto=112))])
    path.write_bytes(blob + b"\x01\x02\x03")        # an unfinished record at the end
    got = bench_host.udp_sources(str(path), Cap)
    assert got == [(pytest.approx(0.5), "192.168.56.101"), (pytest.approx(1.0), "192.168.56.102")]
    assert bench_host.udp_sources(str(tmp_path / "missing.pcap"), Cap) == []


def test_udp_source_tail_reads_only_what_was_appended(tmp_path):
    path = tmp_path / "c.pcap"
    blob = _pcap([(1000.5, _udp_frame("192.168.56.101")), (1001.0, _udp_frame("192.168.56.102"))])
    tail = bench_host.UdpSourceTail(str(path), Cap)
    assert tail.read() == []                           # no file yet
    path.write_bytes(blob[:24 + 16 + 10])              # header and half a record
    assert tail.read() == []
    path.write_bytes(blob)
    assert tail.read() == [(pytest.approx(0.5), "192.168.56.101"), (pytest.approx(1.0), "192.168.56.102")]
    more = _pcap([(1002.0, _udp_frame("192.168.56.103")), (1003.0, _udp_frame("192.168.56.104", 112))])
    path.write_bytes(blob + more[24:])
    assert tail.read() == [(pytest.approx(2.0), "192.168.56.103")]
    assert tail.read() == []


def test_overload_guard(monkeypatch):
    monkeypatch.setattr(bench_host, "proc_count", lambda: 100)
    monkeypatch.setattr(bench_host, "runnable_now", lambda: 3)
    g = bench_host.OverloadGuard(8)
    assert g.check() is None
    monkeypatch.setattr(bench_host, "proc_count", lambda: 100 + 15 * 8 + 301)
    with pytest.raises(bench_host.Overload):
        g.check_raise()
    monkeypatch.setattr(bench_host, "proc_count", lambda: 100)
    monkeypatch.setattr(bench_host, "runnable_now", lambda: 500)
    assert g.check() is None and g.check() is None      # one spike is not an overload
    assert "runnable" in g.check()
    monkeypatch.setattr(bench_host, "runnable_now", lambda: 3)
    assert g.check() is None and g.strikes == 0


def test_runnable_now_reads_proc():
    assert bench_host.runnable_now() >= 1          # this test is running
