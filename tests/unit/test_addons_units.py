"""Pure parts of the extension features: the extension file, health hysteresis, the metrics
exposition, the announcement rate limit, the hook journal."""

from __future__ import annotations

import asyncio
import os
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.extension import Extension, MonitorSettings, load_extension, parse_listen
from appliance.errors import ConfigErrors
from appliance.journal import Journal
from appliance.metrics import render
from appliance.net.garp import RateLimit
from appliance.rsc.monitor import GIVE_UP, NONE, RECOVERED, RESTART, Health


def write(tmp_path, text: str) -> str:
    path = tmp_path / "hb-appliance.cf"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------ extension file
def test_absent_file_gives_heartbeat_defaults(tmp_path) -> None:
    ext = load_extension(str(tmp_path / "none.cf"))
    assert ext == Extension()
    assert not ext.monitor.enabled and ext.notify == () and ext.refresh_interval == 0


def test_full_file(tmp_path) -> None:
    path = write(tmp_path, """
        [monitor]
        interval = 5
        fall = 3
          [[192.168.1.10]]
          restarts = 0
          check = "curl -fs http://127.0.0.1/"
        [hooks]
        notify = /etc/ha.d/a.sh, /etc/ha.d/b.sh
        timeout = 5
        [metrics]
        textfile = /var/lib/node_exporter/hba.prom
        listen = [::1]:9694
        [announce]
        refresh_interval = 60
        max_rate = 50
    """)
    ext = load_extension(path, ["192.168.1.10", "192.168.1.11"])
    assert ext.monitor == MonitorSettings(interval=5.0, fall=3)
    assert ext.monitor_for("192.168.1.10") == MonitorSettings(
        interval=5.0, fall=3, restarts=0, check="curl -fs http://127.0.0.1/")
    assert ext.monitor_for("192.168.1.11") == ext.monitor
    assert ext.notify == ("/etc/ha.d/a.sh", "/etc/ha.d/b.sh") and ext.notify_timeout == 5.0
    assert ext.metrics_listen == "[::1]:9694" and ext.refresh_interval == 60 and ext.max_rate == 50


def test_every_error_has_its_line(tmp_path) -> None:
    path = write(tmp_path, """\
        [monitor]
        interval = -1
        bogus = 2
        [[nosuch]]
        fall = x
        [hooks]
        notify = relative.sh
        [metrics]
        listen = nowhere
        [other]
    """)
    with pytest.raises(ConfigErrors) as err:
        load_extension(path, ["10.0.0.1"])
    text = str(err.value)
    for line, what in ((2, "[monitor/interval]"), (3, "unknown key bogus"), (4, "[[nosuch]] names no"),
                       (5, "[monitor/nosuch/fall]"), (7, "relative.sh is not an absolute path"),
                       (9, "expected ADDRESS:PORT"), (10, "unknown section [other]")):
        assert f"{path}:{line}: " in text and what in text, (line, what, text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_text_loads_or_fails_cleanly(tmp_path_factory, text: str) -> None:
    path = str(tmp_path_factory.mktemp("ext") / "hb-appliance.cf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        load_extension(path, ["g"])
    except ConfigErrors as exc:
        assert all(e.path == path for e in exc.errors)


@pytest.mark.parametrize("text, want", [("127.0.0.1:9694", ("127.0.0.1", 9694)),
                                         ("[::]:80", ("::", 80)), ("host.example:1", ("host.example", 1))])
def test_parse_listen(text, want) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["9694", "a:0", "a:70000", ":80", "[::1]80", "a:b"])
def test_parse_listen_refuses(text) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


# ------------------------------------------------------------------ health hysteresis
def test_fall_rise_restart_then_give_up() -> None:
    h = Health(MonitorSettings(interval=1, fall=2, rise=2, restarts=2, failure_timeout=100), retry_delay=30)
    assert h.observe(False, 0) == NONE           # one bad check is not a failure yet
    assert h.observe(True, 1) == NONE            # ...and a good one resets the count
    assert h.observe(False, 2) == NONE
    assert h.observe(False, 3) == RESTART        # fall=2 in a row
    assert h.observe(True, 4) == NONE
    assert h.observe(True, 5) == RECOVERED       # rise=2 in a row after the restart
    assert [h.observe(False, 6), h.observe(False, 7)] == [NONE, RESTART]
    assert [h.observe(False, 8), h.observe(False, 9)] == [NONE, GIVE_UP]   # budget of 2 spent
    # Nobody took it: retried in place, but only every retry_delay.
    assert [h.observe(False, 10), h.observe(False, 11)] == [NONE, NONE]
    assert [h.observe(False, 40), h.observe(False, 41)] == [NONE, RESTART]


def test_old_restarts_are_forgotten() -> None:
    h = Health(MonitorSettings(interval=1, fall=1, restarts=1, failure_timeout=60), retry_delay=30)
    assert h.observe(False, 0) == RESTART
    assert h.observe(False, 10) == GIVE_UP
    h.reset()
    assert h.observe(False, 20) == RESTART
    assert h.observe(False, 100) == RESTART      # the restart at 20 is older than 60 s


@given(st.lists(st.booleans(), max_size=200), st.integers(1, 5), st.integers(1, 5), st.integers(0, 5))
def test_restarts_never_exceed_budget_before_giving_up(checks, fall, rise, restarts) -> None:
    h = Health(MonitorSettings(interval=1, fall=fall, rise=rise, restarts=restarts,
                               failure_timeout=0), retry_delay=1e9)
    actions = [h.observe(ok, float(t)) for t, ok in enumerate(checks)]
    before = actions[: actions.index(GIVE_UP)] if GIVE_UP in actions else actions
    assert before.count(RESTART) <= restarts
    assert actions.count(GIVE_UP) <= 1
    bad_run = 0
    for ok, action in zip(checks, actions):
        bad_run = 0 if ok else bad_run + 1
        if action in (RESTART, GIVE_UP):
            assert not ok and bad_run >= fall


# ------------------------------------------------------------------ metrics
SNAP = {
    "node": "server1", "phase": "ready", "generation": 7,
    "nodes": [{"name": "server1", "state": "active", "links": {"eth0": "up"}},
              {"name": "ser\"ver2", "state": "dead", "links": {"eth0": "dead"}}],
    "groups": [{"key": "10.0.0.1", "local_state": "running", "holders": ["server1"], "owner": "server1"}],
    "counters": {"rx": 10, "tx": 12, "dropped": {"auth_mismatch": 3}},
    "transition_counts": [["active", "10.0.0.1", 2]],
    "monitor": {"10.0.0.1": {"checks": 5, "failures": 1, "restarts": 1}},
    "hooks": {"ok": 4},
}


def test_metrics_exposition_parses_with_prometheus_client() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(render(SNAP, "1.0"))}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    assert samples[("hba_up", ())] == 1
    assert samples[("hba_node_alive", (("node", 'ser"ver2'), ("state", "dead"), ("type", "normal")))] == 0
    assert samples[("hba_group_state", (("group", "10.0.0.1"), ("state", "running")))] == 1
    assert samples[("hba_group_state", (("group", "10.0.0.1"), ("state", "stopped")))] == 0
    assert samples[("hba_packets_dropped_total", (("reason", "auth_mismatch"),))] == 3
    assert samples[("hba_transitions_total", (("event", "active"), ("subject", "10.0.0.1")))] == 2
    assert samples[("hba_monitor_restarts_total", (("group", "10.0.0.1"),))] == 1
    assert fams["hba_packets_sent"].type == "counter"


def test_metrics_when_stopped() -> None:
    assert render(None).splitlines() == [
        "# HELP hba_up 1 while the hb-appliance daemon runs.", "# TYPE hba_up gauge", "hba_up 0"]


# ------------------------------------------------------------------ announcement rate limit
def test_rate_limit_spreads_bursts_per_interface() -> None:
    lim = RateLimit(per_second=100)          # capacity 25 packets
    waits = [lim.delay("eth0", 2, 0.0) for _ in range(20)]
    assert waits[:12] == [0.0] * 12 and waits[12] > 0      # 12 pairs = 24 packets fit at once
    assert waits[-1] == pytest.approx((40 - 25) / 100)
    assert lim.delay("eth1", 2, 0.0) == 0.0                 # other interface: its own bucket
    assert RateLimit(0).delay("eth0", 1000, 0.0) == 0.0     # 0 = unlimited


# ------------------------------------------------------------------ hooks journal
def test_hooks_run_in_order_with_env(tmp_path) -> None:
    out = tmp_path / "out"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\nsleep 0.05\necho "$1 $2 $HA_NOTIFY_REASON $HA_NOTIFY_NODE" >> {out}\n')
    os.chmod(hook, 0o755)
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    os.chmod(slow, 0o755)

    async def go() -> Journal:
        j = Journal("n1", (str(hook), str(slow)), timeout=0.3)
        j.start()
        j.record("active", "g1", "taking g1")
        j.record("peer_dead", "n2", "silent")
        j.record("standby", "g1", "shutdown")
        await j.close(drain_timeout=10)
        return j

    j = asyncio.run(go())
    assert out.read_text().splitlines() == ["active g1 taking g1 n1", "peer_dead n2 silent n1",
                                            "standby g1 shutdown n1"]
    assert j.hook_runs == {"ok": 3, "timeout": 3}
    assert [t["event"] for t in j.view()] == ["active", "peer_dead", "standby"]


# ------------------------------------------------------------------ ping nodes
def test_icmp_echo_and_reply_codec() -> None:
    from appliance.net.pinger import echo_request, parse_reply
    from appliance.net.rawsock import internet_checksum as checksum

    req = echo_request(0x1234, 7)
    assert req[0] == 8 and checksum(req) == 0
    reply = bytearray(req)
    reply[0] = 0
    reply[2:4] = b"\0\0"
    reply[2:4] = checksum(bytes(reply)).to_bytes(2, "big")
    ip = bytes([0x45, 0, 0, 20 + len(reply)]) + bytes(8) + bytes([10, 0, 0, 254]) + bytes([10, 0, 0, 1])
    assert parse_reply(ip + bytes(reply), 0x1234) == ("10.0.0.254", 7)
    assert parse_reply(ip + bytes(reply), 0x4321) is None          # someone else's echo
    assert parse_reply(ip + req, 0x1234) is None                   # a request, not a reply
    corrupt = bytearray(reply)
    corrupt[10] ^= 1
    assert parse_reply(ip + bytes(corrupt), 0x1234) is None


@given(st.binary(max_size=200))
def test_parse_reply_never_raises(data: bytes) -> None:
    from appliance.net.pinger import parse_reply

    parse_reply(data, 1)


def test_ping_hysteresis_and_groups() -> None:
    from appliance.net.pinger import RISE, Pinger, PingNode

    changes: list[tuple[str, bool]] = []
    p = Pinger([PingNode("10.0.0.1", ("10.0.0.1",)), PingNode("gw", ("10.0.0.2", "10.0.0.3"))],
               interval=1.0, deadping=3.0, on_change=lambda n, up: changes.append((n, up)))
    t = 0.0
    for _ in range(RISE):             # RISE rounds with a reply each: up
        p.seq += 1
        p.tick(t)
        for a in ("10.0.0.1", "10.0.0.3"):
            p.targets[a].replied_since_send = False
        p.reply("10.0.0.1", t + 0.01)
        p.reply("10.0.0.3", t + 0.01)
        t += 1.0
    assert p.reachable() == 2 and changes == [("10.0.0.1", True), ("gw", True)]
    p.tick(t + 1.5)                   # last reply 2.49 s ago: silent, but within deadping
    assert p.reachable() == 2
    p.tick(t + 2.5)                   # 3.49 s > deadping 3 s
    assert p.reachable() == 0 and changes[-2:] == [("10.0.0.1", False), ("gw", False)]
    p.reply("10.0.0.1", t + 3)        # one reply is not enough to come back
    assert p.reachable() == 0


def test_ownership_prefers_the_node_that_reaches_more_ping_nodes() -> None:
    from appliance.core.ownership import Facts, GroupInfo, NodeView, owner_of

    g = GroupInfo("ip", "a")

    def facts(ping_a, ping_b, held_by="a", failback="on"):
        def view(name, ping):
            return NodeView(name, True, True, held=frozenset({"ip"} if held_by == name else ()), ping=ping)
        views = {"a": view("a", ping_a), "b": view("b", ping_b)}
        return Facts(["a", "b"], views, "a", failback)

    assert owner_of(g, facts(1, 1)) == "a"
    assert owner_of(g, facts(0, 1)) == "b"                       # a lost its uplink
    assert owner_of(g, facts(0, 0)) == "a"                       # both lost it: nothing moves
    assert owner_of(g, facts(0, None)) == "a"                    # unknown (3.0.6 peer) is neutral
    assert owner_of(g, facts(1, 2, held_by="a", failback="off")) == "b"
    assert owner_of(g, facts(2, 2, held_by="b", failback="off")) == "b"   # sticky when equal
