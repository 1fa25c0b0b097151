"""The ownership core: one deterministic owner per group, the same answer on every node."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.ownership import (
    Facts,
    GroupInfo,
    NodeView,
    decide_group,
    owner_of,
    takeover_order,
)

NODES = ["server1", "server2", "server3"]
G = GroupInfo("192.168.56.200", "server1")


def facts(local: str, views: dict[str, NodeView], mode: str = "on", now: float = 100.0) -> Facts:
    full = {n: views.get(n, NodeView(n)) for n in NODES}
    return Facts(NODES, full, local, mode, now)


def up(name: str, held: tuple[str, ...] = (), **kw) -> NodeView:
    return NodeView(name, alive=True, ready=True, held=frozenset(held), **kw)


def test_takeover_order_wraps_after_home() -> None:
    assert takeover_order(NODES, "server2") == ["server2", "server3", "server1"]
    assert takeover_order(NODES, "server1") == NODES


def test_all_up_home_takes_it() -> None:
    views = {n: up(n) for n in NODES}
    d = decide_group(G, facts("server1", views))
    assert d.action == "acquire" and d.owner == "server1"
    assert "home node" in d.reason
    for other in ("server2", "server3"):
        assert decide_group(G, facts(other, views)).action == "none"


def test_home_dead_next_in_order_takes_it_only() -> None:
    views = {"server2": up("server2"), "server3": up("server3")}
    assert decide_group(G, facts("server2", views)).action == "acquire"
    assert decide_group(G, facts("server3", views)).action == "none"


def test_failback_release_before_acquire() -> None:
    views = {"server1": up("server1"), "server2": up("server2", (G.key,)), "server3": up("server3")}
    assert decide_group(G, facts("server2", views)).action == "release"
    d = decide_group(G, facts("server1", views))
    assert d.action == "wait" and "server2" in d.reason


def test_auto_failback_off_is_sticky() -> None:
    views = {"server1": up("server1"), "server2": up("server2", (G.key,)), "server3": up("server3")}
    assert decide_group(G, facts("server2", views, "off")).action == "keep"
    assert decide_group(G, facts("server1", views, "off")).action == "none"


def test_conflict_resolves_to_better_ranked_everywhere() -> None:
    views = {"server2": up("server2", (G.key,)), "server3": up("server3", (G.key,))}
    for mode in ("on", "off", "legacy"):
        d = decide_group(G, facts("server2", views, mode))
        assert d.action == "reassert" and d.rivals == ("server3",)
        assert decide_group(G, facts("server3", views, mode)).action == "release"


def test_link_down_releases() -> None:
    views = {"server1": NodeView("server1", True, True, link_ok=False, held=frozenset([G.key])),
             "server2": up("server2")}
    d = decide_group(G, facts("server1", views))
    assert d.action == "release" and "link" in d.reason


def test_standby_moves_group_and_stays_with_auto_failback_on() -> None:
    views = {"server1": up("server1", (G.key,), standby_scope="all", standby_epoch=1),
             "server2": up("server2")}
    assert decide_group(G, facts("server1", views)).action == "release"
    views["server1"] = up("server1", standby_scope="all", standby_epoch=1)
    assert decide_group(G, facts("server2", views)).action == "acquire"


def test_failed_start_goes_to_next_node() -> None:
    views = {"server1": up("server1", failed=frozenset([G.key])), "server2": up("server2")}
    assert owner_of(G, facts("server2", views)) == "server2"


def test_better_ranked_node_starting_is_waited_for() -> None:
    views = {"server1": NodeView("server1", alive=True, ready=False, pending_since=99.0),
             "server2": up("server2")}
    d = decide_group(G, facts("server2", views, now=100.0))
    assert d.action == "wait" and "server1" in d.reason
    d = decide_group(G, facts("server2", views, now=200.0))
    assert d.action == "acquire"


def test_home_node_waits_to_hear_what_a_live_peer_holds() -> None:
    """A rejoining home node heard its peer (an ACK, say) but not yet its heartbeat: the peer
    may hold the group, so it waits instead of starting a second copy (within the grace)."""
    views = {"server1": up("server1"), "server2": up("server2", claims_unknown_since=99.5)}
    d = decide_group(G, facts("server1", views, now=100.0))
    assert d.action == "wait" and "hear what server2 holds" in d.reason
    d = decide_group(G, facts("server1", views, now=200.0))
    assert d.action == "acquire"
    views["server2"] = up("server2", held=(G.key,))
    assert decide_group(G, facts("server1", views, now=100.0)).action == "wait"   # then: release first


def test_shutting_down_holder_blocks_acquire() -> None:
    # A node stopping gracefully is not eligible, but its claim stands until shutdone.
    views = {"server1": NodeView("server1", alive=True, ready=False, held=frozenset([G.key])),
             "server2": up("server2")}
    assert decide_group(G, facts("server2", views)).action == "wait"


view_st = st.builds(
    NodeView,
    name=st.just("x"),
    alive=st.booleans(),
    ready=st.booleans(),
    link_ok=st.booleans(),
    held=st.sampled_from([frozenset(), frozenset([G.key])]),
    failed=st.sampled_from([frozenset(), frozenset([G.key])]),
    standby_scope=st.sampled_from(["", "all", "local", "foreign"]),
    standby_epoch=st.integers(0, 3),
)


@settings(max_examples=400)
@given(st.lists(view_st, min_size=3, max_size=3), st.sampled_from(["on", "off", "legacy"]))
def test_every_node_agrees_and_at_most_one_acquires(raw: list[NodeView], mode: str) -> None:
    views = {n: NodeView(n, v.alive, v.ready, v.link_ok, v.held, v.failed, v.standby_scope,
                         v.standby_epoch) for n, v in zip(NODES, raw)}
    owners = set()
    acquirers = []
    for n in NODES:
        if not (views[n].alive and views[n].ready and views[n].link_ok):
            continue
        f = facts(n, views, mode)
        owners.add(owner_of(G, f))
        d = decide_group(G, f)
        if d.action == "acquire":
            acquirers.append(n)
            # Release before acquire: nobody alive may claim it while we take it.
            assert not any(G.key in views[o].held and views[o].alive for o in NODES if o != n)
    assert len(owners) <= 1
    assert len(acquirers) <= 1
