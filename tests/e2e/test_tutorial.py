"""The operator tutorial's 3-node cluster, end to end, on real namespaces (issue: the daemon).

Checked from the outside only: who answers HTTP at the floating IP (a client namespace), which
namespaces hold the address (`ip addr`), and gratuitous ARP captured on the switch.
"""

from __future__ import annotations

import pytest

from appliance.lab.capture import is_gratuitous, parse_arp_frames
from appliance.lab.cluster import VIP, Cluster, ClusterConfig


@pytest.fixture
def cluster(lab_factory):
    lab = lab_factory(["server1", "server2", "server3"])
    c = Cluster(lab).setup()
    yield c
    c.stop_all()


def start_all(c: Cluster) -> None:
    for n in c.names:
        c.start(n)


def assert_single_holder_serving(c: Cluster, name: str) -> None:
    c.wait_holders([name])
    c.lab.client.wait_for(VIP, name, timeout=15)
    assert c.holders() == [name]


def test_tutorial_walkthrough(cluster: Cluster, tmp_path) -> None:
    c = cluster
    cap = c.lab.capture(str(tmp_path / "switch.pcap"))
    # 1. all three start: server1 serves, alone.
    start_all(c)
    assert_single_holder_serving(c, "server1")
    for n in c.names:
        c.wait_status(n, "server1", "active")
    # As 3.0.6 (seen in the interop suite): a node without groups of its own says "local".
    assert c.cl_status("server2", "rscstatus").stdout.strip() == "local"
    assert c.cl_status("server1", "rscstatus").stdout.strip() == "local"
    assert "Initial resource acquisition complete" in c.log("server1")

    # 2. graceful stop of server1: server2 takes over at once (no deadtime wait).
    c.lab.client.start_polling(VIP)
    c.stop("server1")
    assert c.daemon_pids("server1") == []
    assert not c.lab.node("server1").has_address(VIP)
    assert_single_holder_serving(c, "server2")
    samples = c.lab.client.stop_polling()
    assert "server2" in {a for _, a in samples}
    assert "server3" not in {a for _, a in samples}
    # server2 learnt of the stop from shutdone, not from a timeout.
    assert "is dead" not in c.log("server2").split("Received shutdown notice from 'server1'")[0][-2000:]

    # 3. stop server2 too: server3 serves alone.
    c.stop("server2")
    assert_single_holder_serving(c, "server3")

    # 4. start server1 and server2 again: everything moves back to server1 (auto_failback on).
    c.start("server1")
    c.start("server2")
    assert_single_holder_serving(c, "server1")
    c.wait_status("server3", "server2", "active")
    assert c.cl_status("server3", "rscstatus").stdout.strip() == "local"   # gave the group back
    cap.stop()
    garps = [f for f in parse_arp_frames(cap.path) if is_gratuitous(f) and f.sender_ip == VIP]
    macs = {f.sender_mac for f in garps}
    # Each takeover announced itself: server1, server2, server3 and server1 again.
    assert {c.lab.node(n).mac for n in c.names} <= macs
    assert {"request", "reply"} <= {f.op for f in garps}


def test_link_cut_takeover_and_self_release(cluster: Cluster) -> None:
    c = cluster
    start_all(c)
    assert_single_holder_serving(c, "server1")
    c.lab.node("server1").link_down()
    # server1 notices its own carrier loss and releases; server2 takes over after deadtime.
    c.wait_holders(["server2"], timeout=20)
    assert "lost carrier" in c.log("server1")
    c.lab.node("server1").link_up()
    # When the link returns the address is never on two nodes, and it fails back to server1.
    c.wait_holders(["server1"], timeout=30)
    c.lab.client.wait_for(VIP, "server1", timeout=15)


def test_crash_of_active_node(cluster: Cluster) -> None:
    c = cluster
    start_all(c)
    assert_single_holder_serving(c, "server1")
    c.lab.node("server1").kill_all()
    assert not c.lab.node("server1").has_address(VIP)
    assert_single_holder_serving(c, "server2")
    assert "node server1: is dead" in c.log("server2")
    assert "node server1: is dead" in c.log("server3")
    assert not c.lab.node("server3").has_address(VIP)


def test_two_nodes_auto_failback_off_stays(lab_factory) -> None:
    lab = lab_factory(["server1", "server2"])
    c = Cluster(lab, ClusterConfig(auto_failback="off")).setup()
    try:
        start_all(c)
        assert_single_holder_serving(c, "server1")
        c.stop("server1")
        assert_single_holder_serving(c, "server2")
        c.start("server1")
        c.wait_status("server2", "server1", "active")
        # auto_failback off: server2 keeps it; give failback a chance to (wrongly) happen.
        c.lab.client.wait_for(VIP, "server2", timeout=5)
        assert c.holders() == ["server2"]
        # hb_standby on the holder hands it over.
        out = lab.node("server2").run([*c.tool("server2", "hb_standby")])
        assert out.returncode == 0
        assert_single_holder_serving(c, "server1")
    finally:
        c.stop_all()


def test_bad_config_refused_and_nothing_changes(cluster: Cluster) -> None:
    c = cluster
    node = c.lab.node("server1")
    node.write("/etc/ha.d/ha.cf", c.config.hacf(c.names) + "bogus_directive 1\n")
    res = c.start("server1", check=False)
    assert res.returncode == 6
    assert "ha.cf" in res.stderr and "bogus_directive" in res.stderr
    assert c.daemon_pids("server1") == []
    node.write("/etc/ha.d/ha.cf", c.config.hacf(c.names))
    node.write("/etc/ha.d/authkeys", c.config.authkeys(), mode=0o644)
    res = c.start("server1", check=False)
    assert res.returncode == 6 and "Bad permissions" in res.stderr
    assert not node.has_address(VIP)
