"""Sequence tracking, replay, restart and dead detection (spec §5.4, §6)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from appliance.core.membership import ACCEPT, DUPLICATE, REPLAY, UNKNOWN_NODE, Membership


def mem() -> Membership:
    return Membership("a", ["a", "b", "c"], ["eth0"], 3000, 1500, 6000, started=0.0)


def test_in_order_duplicate_and_replay() -> None:
    m = mem()
    assert m.accept("b", None, "status", 1, 10, "eth0", 1.0).outcome == ACCEPT
    assert m.accept("b", None, "status", 2, 10, "eth0", 1.1).outcome == ACCEPT
    assert m.accept("b", None, "status", 2, 10, "eth0", 1.2).outcome == DUPLICATE
    assert m.accept("b", None, "status", 3, 9, "eth0", 1.3).outcome == REPLAY
    assert m.accept("zz", None, "status", 1, 1, "eth0", 1.3).outcome == UNKNOWN_NODE


def test_gap_asks_for_retransmission_and_accepts_it() -> None:
    m = mem()
    m.accept("b", None, "status", 1, 10, "eth0", 1.0)
    v = m.accept("b", None, "status", 4, 10, "eth0", 1.1)
    assert v.outcome == ACCEPT and v.rexmit == [2, 3]
    assert m.accept("b", None, "status", 3, 10, "eth0", 1.2).outcome == ACCEPT
    assert m.accept("b", None, "status", 3, 10, "eth0", 1.3).outcome == DUPLICATE
    assert m.missing_of("b") == [2]


def test_restart_resets_sequence() -> None:
    m = mem()
    m.accept("b", None, "status", 50, 10, "eth0", 1.0)
    v = m.accept("b", None, "status", 1, 11, "eth0", 1.1)
    assert v.outcome == ACCEPT and any(c.kind == "restart" for c in v.changes)


def test_dead_after_deadtime_and_comm_up() -> None:
    m = mem()
    m.accept("b", None, "status", 1, 10, "eth0", 1.0)
    m.status("b", "active", 3000, 1.0)
    m.accept("c", None, "status", 1, 10, "eth0", 1.0)
    changes = m.tick(1.5)
    assert m.comm_up and any(c.kind == "comm" for c in changes)
    m.accept("c", None, "status", 2, 10, "eth0", 4.0)
    changes = m.tick(4.1)
    assert [c.node for c in changes if c.new == "dead" and c.kind == "state"] == ["b"]
    assert m.peers["c"].state != "dead"


def test_initdead_marks_silent_nodes_dead() -> None:
    m = mem()
    assert m.tick(5.0) == [] and not m.comm_up
    changes = m.tick(6.5)
    assert {c.node for c in changes if c.new == "dead"} == {"b", "c"}
    assert m.comm_up


@given(st.lists(st.tuples(st.integers(1, 600), st.integers(0, 3)), max_size=200))
def test_random_sequences_never_crash_and_stay_bounded(events: list[tuple[int, int]]) -> None:
    m = mem()
    for i, (seq, gen) in enumerate(events):
        m.accept("b", None, "status", seq, gen, "eth0", float(i))
        assert len(m.peers["b"].missing) <= 500


def test_healed_partition_resyncs_without_asking_for_the_gap() -> None:
    m = mem()
    m.accept("b", None, "status", 10, 10, "eth0", 1.0)
    m.status("b", "active", 3000, 1.0)
    m.mark_dead("b", "deadtime")
    v = m.accept("b", None, "status", 60, 10, "eth0", 9.0)
    assert v.outcome == ACCEPT and v.rexmit == [] and any(c.kind == "heal" for c in v.changes)
    assert m.missing_of("b") == []
    assert m.status("b", "active", 3000, 9.0)[0].new == "active"


def test_departed_node_is_not_revived_by_its_last_heartbeats() -> None:
    m = mem()
    m.accept("b", None, "status", 1, 10, "eth0", 1.0)
    m.status("b", "active", 3000, 1.0)
    m.mark_dead("b", "shutdown", departed=True)
    assert m.accept("b", None, "status", 2, 10, "eth0", 1.1).outcome == "departed"
    assert m.status("b", "active", 3000, 1.1) == [] and m.peers["b"].state == "dead"
    m.accept("b", None, "status", 1, 11, "eth0", 5.0)     # restarted: new generation
    assert m.status("b", "up", 3000, 5.0)[0].new == "up"


def test_replayed_unsequenced_messages_never_keep_a_node_alive() -> None:
    """A captured NS_ackmsg replayed after the node went silent: no liveness from it, and once
    it is older than the node's last heartbeat it is a replay (counted), not even link proof."""
    m = Membership("a", ["a", "b"], ["eth0"], 2000, 1000, 4000, 0.0)
    assert m.accept("b", None, "status", 1, 10, "eth0", 1.0, ts=1000).outcome == ACCEPT
    assert m.accept("b", None, "NS_ackmsg", None, 10, "eth0", 1.1, ts=1000).outcome == ACCEPT
    assert m.accept("b", None, "status", 2, 10, "eth0", 1.2, ts=1005).outcome == ACCEPT
    heard = m.peers["b"].last_heard
    assert m.accept("b", None, "NS_ackmsg", None, 10, "eth0", 3.0, ts=1000).outcome == REPLAY
    assert m.accept("b", None, "NS_ackmsg", None, 10, "eth0", 3.1, ts=1005).outcome == ACCEPT
    assert m.peers["b"].last_heard == heard           # unsequenced: never node liveness
    changes = m.tick(1.2 + 2.1)
    assert any(c.kind == "state" and c.new == "dead" for c in changes)
