"""IPv6: floating addresses (IPv6addr::), duplicate address detection, unsolicited neighbour
advertisements and the mcast6 / ucast6 media, on real namespaces.

Kernel-level tests of appliance.net.ip6 run in two throwaway namespaces; cluster tests use the
lab with its opt-in IPv6 (ipv6_subnet: server1 2001:db8:56::101, server2 ::102, client ::250,
quick DAD). Checked from the outside: `ip -6 addr` in each node, the client's neighbour cache
and HTTP answers at [VIP]:80, and ICMPv6 captured on the switch.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.capture import Capture, read_pcap
from appliance.lab.cluster import VIP, Cluster, ClusterConfig
from appliance.lab.httpd import install_httpd
from appliance.lab.realhb import MixedCluster, real_available
from appliance.net.ndisc import Advert, parse_na

REPO = Path(__file__).resolve().parents[2]
SUBNET6 = "2001:db8:56"
VIP6 = f"{SUBNET6}::200"
MACS = {"server1": "02:56:00:00:00:01", "server2": "02:56:00:00:00:02"}

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="needs root and iproute2 to create network namespaces",
)


# =============================================================================== helpers


def _run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def addr6(ns: str, address: str = VIP6) -> list[dict[str, Any]]:
    """`ip -j -6 addr` entries for `address` in namespace ns (flags are keys: tentative...)."""
    data = json.loads(_run("ip", "-j", "-6", "-n", ns, "addr", "show").stdout or "[]")
    return [dict(a, dev=link["ifname"]) for link in data for a in link.get("addr_info", [])
            if a.get("local") == address]


def neighbour_mac(ns: str, address: str) -> str | None:
    data = json.loads(_run("ip", "-j", "-6", "-n", ns, "neigh", "show", address).stdout or "[]")
    return data[0].get("lladdr") if data else None


def wait_until(cond, what: str, timeout: float, interval: float = 0.05) -> float:
    t0 = time.monotonic()
    for _ in range(int(timeout / interval) + 2):
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def adverts(pcap: str, target: str = VIP6) -> list[tuple[float, Advert]]:
    """(pcap time, advert) of the unsolicited neighbour advertisements for `target`."""
    out = []
    for pkt in read_pcap(pcap):
        na = parse_na(pkt.data)
        if na is not None and na.target == target and not na.solicited:
            out.append((pkt.time, na))
    return out


# =============================================================================== kernel level

_counter = itertools.count()
PRELUDE = """\
import asyncio, json, time
from appliance.net import ip6, ipaddr, ndisc
"""


class Pair:
    """Two namespaces on one veth: node (vA, 2001:db8:9::1/64) and peer (vB, ::2/64)."""

    def __init__(self, base: str) -> None:
        self.node, self.peer = base + "a", base + "b"

    def ip(self, *args: str, ns: str | None = None) -> str:
        return _run("ip", "-n", ns or self.node, *args).stdout

    def py(self, code: str, timeout: float = 30) -> Any:
        src = PRELUDE + "result = None\n" + textwrap.dedent(code) + (
            "\nprint('RESULT:' + json.dumps(result))\n")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run(["ip", "netns", "exec", self.node, sys.executable, "-c", src],
                              capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
        assert proc.returncode == 0, proc.stderr
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT:")][-1]
        return json.loads(line[len("RESULT:"):])


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Pair:
    p = Pair(f"hbv6{os.getpid()}-{next(_counter)}")
    created: list[str] = []

    def cleanup() -> None:
        for name in reversed(created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)

    request.addfinalizer(cleanup)
    for name in (p.node, p.peer):
        _run("ip", "netns", "add", name)
        created.append(name)
        p.ip("link", "set", "lo", "up", ns=name)
    p.ip("link", "add", "vA", "type", "veth", "peer", "name", "vB", "netns", p.peer)
    for ns, dev, own in ((p.node, "vA", "2001:db8:9::1"), (p.peer, "vB", "2001:db8:9::2")):
        # quick DAD (no random start delay, 200 ms to answer); it still runs
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.router_solicitation_delay=0")
        _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.neigh.{dev}.retrans_time_ms=200")
        p.ip("addr", "add", f"{own}/64", "dev", dev, "nodad", ns=ns)
        p.ip("link", "set", dev, "up", ns=ns)
    return p


def test_plan_add_waits_for_dad_then_remove(pair: Pair) -> None:
    got = pair.py("""
        plan = ip6.plan_address("2001:db8:9::10")        # interface and /64 from vA's prefix
        t0 = time.monotonic()
        added = asyncio.run(ip6.bring_up(plan, 5.0))
        took = time.monotonic() - t0
        flags = ip6.address_flags(plan)
        again = asyncio.run(ip6.bring_up(plan, 5.0))      # idempotent
        found = ipaddr.find_address("2001:DB8:9:0::10")   # ipaddr delegates IPv6 to ip6
        removed = [ip6.release("2001:db8:9::10"), ip6.release("2001:db8:9::10")]
        result = [str(plan), added, took, flags, again, found, removed]
    """)
    plan, added, took, flags, again, found, removed = got
    assert plan == "2001:db8:9::10/64 dev vA"
    assert added is True and again is False
    assert 0.1 < took < 5, took   # it really waited for DAD (200 ms retransmit timer)
    assert not flags & (0x40 | 0x08)   # neither tentative nor dadfailed
    assert found == ["vA", 64]
    assert removed == [["vA"], []]
    assert addr6(pair.node, "2001:db8:9::10") == []


def test_nodad_address_is_usable_at_once(pair: Pair) -> None:
    got = pair.py("""
        plan = ip6.plan_address("2001:db8:9::11", 64, "vA", nodad=True)
        t0 = time.monotonic()
        asyncio.run(ip6.bring_up(plan))
        result = [time.monotonic() - t0, ip6.address_flags(plan)]
    """)
    took, flags = got
    assert took < 0.5 and flags & 0x02 and not flags & 0x40   # IFA_F_NODAD, not tentative
    [entry] = addr6(pair.node, "2001:db8:9::11")
    assert entry["prefixlen"] == 64 and entry.get("nodad") is True


def test_duplicate_fails_dad_and_the_address_is_removed(pair: Pair) -> None:
    pair.ip("addr", "add", "2001:db8:9::77/64", "dev", "vB", "nodad", ns=pair.peer)
    got = pair.py("""
        plan = ip6.plan_address("2001:db8:9::77")
        try:
            asyncio.run(ip6.bring_up(plan, 5.0))
            result = "no error"
        except ip6.DadFailed as exc:
            result = [str(exc), ip6.address_flags(plan), ipaddr.find_address("2001:db8:9::77")]
    """)
    message, flags, found = got
    assert "DAD failed" in message and "2001:db8:9::77" in message
    assert flags is None and found is None
    assert addr6(pair.node, "2001:db8:9::77") == []
    assert addr6(pair.peer, "2001:db8:9::77")[0]["dev"] == "vB"   # the owner keeps it


def test_dad_that_never_finishes_times_out(pair: Pair) -> None:
    # An interface that never had carrier (its peer stays down): the kernel holds DAD back.
    pair.ip("link", "add", "dX", "type", "veth", "peer", "name", "dY", "netns", pair.peer)
    pair.ip("link", "set", "dX", "up")
    got = pair.py("""
        plan = ip6.plan_address("2001:db8:7::12", 64, "dX")
        try:
            asyncio.run(ip6.bring_up(plan, 0.5))
            result = "no error"
        except ip6.DadTimeout as exc:
            result = [str(exc), ip6.address_flags(plan)]
    """)
    assert "still tentative" in got[0] and got[1] is None


def test_advertisement_burst_reaches_the_peer(pair: Pair, tmp_path) -> None:
    pcap = str(tmp_path / "na.pcap")
    cap = Capture(pair.peer, pcap, "icmp6", iface="vB")   # ready on return
    try:
        got = pair.py("""
            plan = ip6.plan_address("2001:db8:9::13", nodad=True)
            asyncio.run(ip6.bring_up(plan))
            t0 = time.monotonic()
            sent = asyncio.run(ndisc.announce("vA", plan.address, 5, 0.1, router=True))
            result = [sent, time.monotonic() - t0]
        """)
        time.sleep(0.5)
    finally:
        cap.stop()
    sent, elapsed = got
    assert sent == 5 and 0.35 < elapsed < 3
    mac = json.loads(pair.ip("-j", "link", "show", "dev", "vA"))[0]["address"]
    nas = [na for _, na in adverts(pcap, "2001:db8:9::13")]
    assert len(nas) == 5, nas
    for na in nas:
        assert (na.src_mac, na.lladdr, na.src_ip, na.dst_ip, na.dst_mac) == (
            mac, mac, "2001:db8:9::13", "ff02::1", "33:33:00:00:00:01")
        assert na.hop_limit == 255 and na.override and na.router and na.checksum_ok


# =============================================================================== cluster


def ipv6_cluster(lab_factory, **cfg) -> Cluster:
    lab = lab_factory(["server1", "server2"], ipv6_subnet=SUBNET6)
    c = Cluster(lab, ClusterConfig(**cfg)).setup()
    for node in lab.nodes.values():
        install_httpd(node, ipv6=True)   # lighttpd also on [::]:80
    return c


def holding(c: Cluster) -> dict[str, list[dict[str, Any]]]:
    return {n: addr6(c.lab.node(n).ns) for n in c.names if addr6(c.lab.node(n).ns)}


def assert_single_holder(c: Cluster, name: str, prefixlen: int = 64) -> None:
    """Exactly `name` has the VIP, on eth0 with the prefix, past DAD (bounded wait)."""
    c.wait_holders([name], ip=VIP6, timeout=30)

    def usable() -> bool:
        held = holding(c)
        return list(held) == [name] and not any(e.get("tentative") for e in held[name])

    wait_until(usable, f"{VIP6} usable on {name} only", timeout=10)
    held = holding(c)
    assert list(held) == [name], held
    [entry] = held[name]
    assert (entry["dev"], entry["prefixlen"]) == ("eth0", prefixlen), entry
    assert not entry.get("dadfailed"), entry


def client_learns(c: Cluster, name: str) -> float:
    """The client's neighbour entry for the VIP moves to `name`'s MAC with no traffic of its
    own: only an unsolicited advertisement can do that."""
    client = c.lab.client
    assert client is not None
    return wait_until(lambda: neighbour_mac(client.ns, VIP6) == MACS[name],
                      f"client neighbour entry {VIP6} -> {name}", timeout=5)


def test_ipv6_address_fails_over_on_stop_and_crash(lab_factory, tmp_path) -> None:
    c = ipv6_cluster(lab_factory, haresources=f"server1 IPv6addr::{VIP6}/64/eth0 httpd\n")
    client = c.lab.client
    assert client is not None
    pcap = str(tmp_path / "switch.pcap")
    cap = c.lab.capture(pcap, bpf="icmp6")
    try:
        for n in c.names:
            c.start(n)
        assert_single_holder(c, "server1")
        client.wait_for(VIP6, "server1", timeout=15)
        assert neighbour_mac(client.ns, VIP6) == MACS["server1"]
        assert "DAD passed" in c.log("server1")

        # Graceful stop: server2 takes the address, announces it, serves.
        t_stop = time.monotonic()
        c.stop("server1")
        t_released = time.monotonic()   # -k returns once server1 is gone
        assert_single_holder(c, "server2")
        client_learns(c, "server2")
        client.wait_for(VIP6, "server2", timeout=15)

        # Back home (auto_failback on), then a crash (power loss: the address goes with it).
        t_back = time.monotonic()
        c.start("server1")
        assert_single_holder(c, "server1")
        client_learns(c, "server1")
        client.wait_for(VIP6, "server1", timeout=15)
        t_crash = time.monotonic()
        c.lab.node("server1").kill_all()
        assert_single_holder(c, "server2")
        client_learns(c, "server2")
        client.wait_for(VIP6, "server2", timeout=15)
        assert "node server1: is dead" in c.log("server2")
        time.sleep(1.2)   # the last burst (5 x 200 ms) is on the wire
    finally:
        cap.stop()
        c.stop_all()
    nas = [(cap.to_monotonic(t), na) for t, na in adverts(pcap)]
    one, two = MACS["server1"], MACS["server2"]
    for na in (na for _, na in nas):
        assert na.override and not na.router and not na.solicited and na.checksum_ok
        assert (na.src_ip, na.dst_ip, na.hop_limit, na.lladdr) == (VIP6, "ff02::1", 255, na.src_mac)
    # Each takeover announces at once; a burst stops when its address is released (a late
    # one would make the next holder's DAD fail), so only the last burst runs in full.
    assert [t for t, na in nas if na.src_mac == one and t_released < t < t_back] == []
    first_back = min(t for t, na in nas if na.src_mac == one and t > t_back)
    assert [t for t, na in nas if na.src_mac == two and first_back < t < t_crash] == []
    assert sum(1 for t, na in nas if na.src_mac == one) >= 2
    assert sum(1 for t, na in nas if na.src_mac == two and t_stop < t < t_back) >= 1
    assert sum(1 for t, na in nas if na.src_mac == two and t > t_crash) == 5


def test_duplicate_address_fails_the_start_everywhere(lab_factory) -> None:
    c = ipv6_cluster(lab_factory, haresources=f"server1 IPv6addr::{VIP6}/64 httpd\n")
    client = c.lab.client
    assert client is not None
    for n in c.names:   # retry a failed start after 8 s, not the default 30 s
        c.lab.node(n).write("/etc/ha.d/hb-appliance.cf", "[resources]\nretry_delay = 8\n")
    _run("ip", "-n", client.ns, "addr", "add", f"{VIP6}/64", "dev", "eth0", "nodad")
    try:
        for n in c.names:
            c.start(n)
        # server1 tries (twice: the first duplicate could be a holder letting go), DAD fails,
        # it gives the group up; server2 tries, same.
        for n in c.names:
            wait_until(lambda n=n: "failed to start" in c.log(n), f"start failure on {n}", 30, 0.1)
        for _ in range(20):   # 2 s: neither node holds a copy, not even a tentative one
            assert holding(c) == {}
            time.sleep(0.1)
        for n in c.names:
            log = c.log(n)
            assert "trying once more" in log and "DAD failed" in log.split("trying once more")[-1]
            status = c.lab.node(n).run(["/etc/ha.d/resource.d/httpd", "status"], check=False)
            assert "httpd is stopped" in status.stdout   # the group never got past its address
        assert addr6(client.ns)[0].get("dadfailed") is None   # the owner is undisturbed

        # The duplicate goes away: at its next try the home node takes the address.
        _run("ip", "-n", client.ns, "addr", "del", f"{VIP6}/64", "dev", "eth0")
        assert_single_holder(c, "server1")
        client.wait_for(VIP6, "server1", timeout=15)
    finally:
        c.stop_all()


@pytest.mark.parametrize("medium", ["ucast6", "mcast6"])
def test_cluster_with_only_ipv6_media(lab_factory, tmp_path, medium: str) -> None:
    if medium == "ucast6":   # every node lists every node, itself included (harmless)
        media = [f"ucast6 eth0 {SUBNET6}::101", f"ucast6 eth0 {SUBNET6}::102"]
        resources = f"server1 {VIP} httpd\n"           # an IPv4 group over IPv6 heartbeats
    else:
        media = ["mcast6 eth0 ff12::694 694 1 0"]
        resources = f"server1 IPv6addr::{VIP6}/64/eth0/nodad httpd\n"   # IPv6 only, no DAD
    c = ipv6_cluster(lab_factory, media=media, haresources=resources)
    ip = VIP if medium == "ucast6" else VIP6
    client = c.lab.client
    assert client is not None
    pcap = str(tmp_path / "hb.pcap")
    cap = c.lab.capture(pcap, bpf="udp port 694")
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"], ip=ip, timeout=30)
        c.wait_status("server1", "server2", "active")
        c.wait_status("server2", "server1", "active")
        client.wait_for(ip, "server1", timeout=15)
        t0 = time.monotonic()
        c.stop("server1")
        c.wait_holders(["server2"], ip=ip, timeout=30)
        took = time.monotonic() - t0
        client.wait_for(ip, "server2", timeout=15)
        assert took < 10, took   # shutdone went over the IPv6 medium: no deadtime wait
        c.wait_status("server2", "server1", "dead", timeout=20)
        if medium == "mcast6":
            [entry] = addr6(c.lab.node("server2").ns)
            assert entry.get("nodad") is True and "without DAD (nodad)" in c.log("server2")
    finally:
        cap.stop()
        c.stop_all()
    frames = [p.data for p in read_pcap(pcap)]
    v6 = [f for f in frames if f[12:14] == b"\x86\xdd"]
    assert v6 and len(v6) == len(frames), "heartbeats must travel over IPv6 only"
    if medium == "mcast6":
        assert all(f[0:2] == b"\x33\x33" and f[38:54].hex().startswith("ff12") for f in v6)
    for name in c.names:
        assert f"{medium} eth0: port 694" in c.log(name)


@pytest.mark.skipif(not real_available(), reason="Debian's heartbeat 3.0.6 is not installed")
@pytest.mark.parametrize("medium", ["ucast6", "mcast6"])
def test_ipv6_media_with_real_heartbeat_306(lab_factory, medium: str) -> None:
    """3.0.6 ships ucast6.so and mcast6.so: a real node and ours hear each other over them."""
    lab = lab_factory(["server1", "server2"], ipv6_subnet=SUBNET6)
    media = ([f"ucast6 eth0 {SUBNET6}::101", f"ucast6 eth0 {SUBNET6}::102"] if medium == "ucast6"
             else ["mcast6 eth0 ff12::694 694 1 0"])
    timers = dict(keepalive="500ms", deadtime="3", warntime="2", initdead="6")
    c = MixedCluster(lab, ClusterConfig(media=media, **timers), real_nodes={"server1"}).setup()
    assert lab.client is not None
    try:
        c.start("server1")
        c.start("server2")
        c.wait_holders(["server1"], timeout=40)
        c.wait_status("server2", "server1", "active", timeout=30)
        c.wait_status("server1", "server2", "active", timeout=30)   # 3.0.6's own cl_status
        c.stop("server1")
        c.wait_holders(["server2"], timeout=30)
        lab.client.wait_for(VIP, "server2", timeout=15)
        started = {"ucast6": "ucast6: heartbeat started", "mcast6": "UDP multicast heartbeat started"}
        assert started[medium] in c.log("server1")
        assert f"{medium} eth0: port 694" in c.log("server2")
    finally:
        c.stop_all()


@pytest.mark.skipif(not real_available(), reason="Debian's heartbeat 3.0.6 is not installed")
def test_ipv6addr_in_a_mixed_cluster_with_306(lab_factory) -> None:
    """3.0.6's ResourceManager splits resource arguments at '::', so a mixed cluster writes the
    address without '::' (README, IPv6). Then the real IPv6addr agent and ours agree."""
    lab = lab_factory(["server1", "server2"], ipv6_subnet=SUBNET6)
    expanded = f"{SUBNET6}:0:0:0:0:200"
    timers = dict(keepalive="500ms", deadtime="3", warntime="2", initdead="6")
    cfg = ClusterConfig(haresources=f"server1 IPv6addr::{expanded}/64/eth0 httpd\n", **timers)
    c = MixedCluster(lab, cfg, real_nodes={"server1"}).setup()
    for node in lab.nodes.values():
        install_httpd(node, ipv6=True)
    client = lab.client
    assert client is not None
    try:
        c.start("server1")
        c.start("server2")
        c.wait_holders(["server1"], ip=VIP6, timeout=40)
        client.wait_for(VIP6, "server1", timeout=20)
        c.stop("server1")
        assert_single_holder(c, "server2")
        client_learns(c, "server2")
        client.wait_for(VIP6, "server2", timeout=15)
        c.start("server1")   # auto_failback on: back to the real node
        c.wait_holders(["server1"], ip=VIP6, timeout=40)
        client.wait_for(VIP6, "server1", timeout=20)
    finally:
        c.stop_all()
