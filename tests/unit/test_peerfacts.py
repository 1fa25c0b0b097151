"""Inferring a Heartbeat 3.0.6 peer's holdings from its resource / ask_resources messages."""

from __future__ import annotations

from appliance.core.peerfacts import PeerFacts, learn_306_done, learn_306_resource, learn_ours
from appliance.wire import catalog
from appliance.wire.message import Message

GROUPS = [("10.0.0.1", "n1"), ("10.0.0.2", "n2")]


def test_rsc_hold_is_named_from_the_senders_side() -> None:
    f = PeerFacts()
    learn_306_resource(f, catalog.resource("local", True), "n2", GROUPS)
    assert f.held == {"10.0.0.2"} and f.ready and f.legacy
    learn_306_resource(f, catalog.resource("all", True), "n2", GROUPS)
    assert f.held == {"10.0.0.1", "10.0.0.2"}
    learn_306_resource(f, catalog.resource("foreign", True), "n2", GROUPS)
    assert f.held == {"10.0.0.1"}


def test_standby_keeps_claim_until_done() -> None:
    f = PeerFacts()
    learn_306_resource(f, catalog.resource("all", True), "n2", GROUPS)
    # 3.0.6 announces its future holdings before stopping what it gives away.
    learn_306_resource(f, catalog.resource("local", False, "standby"), "n2", GROUPS)
    assert f.held == {"10.0.0.1", "10.0.0.2"}
    released = learn_306_done(f, catalog.ask_resources("foreign", "done"), "n2", GROUPS)
    assert released == {"10.0.0.1"} and f.held == {"10.0.0.2"}


def test_our_own_fields_win() -> None:
    f = PeerFacts(legacy=True)
    msg = catalog.with_facts(catalog.status("active", 2000), ["10.0.0.1"], True, "all 3", ["x"])
    assert learn_ours(f, msg)
    assert not f.legacy and f.held == {"10.0.0.1"} and f.standby_epoch == 3 and f.failed == {"x"}
    assert not learn_ours(PeerFacts(), Message.of(t="status"))


def test_retransmitted_old_message_does_not_roll_facts_back() -> None:
    f = PeerFacts()
    assert f.newer(5) and not f.newer(4) and not f.newer(5) and f.newer(6)
    f.forget(restarted=True)
    assert f.newer(1)
