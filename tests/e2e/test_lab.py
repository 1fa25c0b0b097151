"""End-to-end tests of the namespace lab itself (real namespaces, no mocks; needs root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from appliance.lab import (
    Lab,
    install_httpd,
    is_gratuitous,
    parse_arp_frames,
    send_gratuitous_arp,
)
from appliance.lab._proc import netns_list, pid_alive

FLOAT = "192.168.56.200"

# Counts UDP datagrams to port 694 for `seconds`, then prints the count.
UDP_RECV = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 694))
end = time.monotonic() + float(sys.argv[1])
n = 0
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        s.recv(2048)
        n += 1
    except socket.timeout:
        break
print(n)
"""

# Sends one datagram to each target's port 694 every 50 ms for `seconds`.
UDP_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
end = time.monotonic() + float(sys.argv[1])
rounds = 0
for _ in range(200):
    if time.monotonic() >= end:
        break
    for ip in sys.argv[2:]:
        s.sendto(b"hblab", (ip, 694))
    rounds += 1
    time.sleep(0.05)
print(rounds)
"""


def root_snapshot() -> dict:
    def j(*argv):
        return json.loads(subprocess.run(["ip", "-j", *argv], capture_output=True, text=True,
                                         check=True).stdout or "[]")

    addrs = j("addr")
    for link in addrs:
        for a in link.get("addr_info", []):
            a.pop("valid_life_time", None)
            a.pop("preferred_life_time", None)
    return {"addr": addrs, "route": j("route"), "route6": j("-6", "route"),
            "hostname": os.uname().nodename}


def ping_once(node, ip: str, wait: int = 2) -> bool:
    # `timeout`: inetutils ping ignores -w while its sends are being dropped.
    argv = ["timeout", str(wait + 1), "ping", "-c", "1", "-w", str(wait), ip]
    return node.run(argv, check=False, timeout=wait + 5).returncode == 0


def ping(node, ip: str, attempts: int = 5) -> bool:
    """True once a ping succeeds (retries: a FAILED neighbour entry answers
    'Destination Host Unreachable' at once until ARP is retried)."""
    for _ in range(attempts):
        if ping_once(node, ip):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def lab(lab_factory_module) -> Lab:
    return lab_factory_module()


def test_hostnames_and_identity(lab: Lab) -> None:
    assert list(lab.nodes) == ["server1", "server2", "server3"]
    for i, (name, node) in enumerate(lab.nodes.items()):
        assert lab.node(name) is node
        assert node.run(["uname", "-n"]).stdout.strip() == name
        assert node.ip == f"192.168.56.{101 + i}"
        assert node.mac == f"02:56:00:00:00:{i + 1:02x}"
        assert node.addresses() == [node.ip]
        assert node.ns.startswith(lab.prefix) and node.ns in netns_list()
        assert pid_alive(node.holder_pid)
        link = json.loads(node.run(["ip", "-j", "link", "show", "eth0"]).stdout)[0]
        assert link["address"] == node.mac
        assert "broadcast" in json.loads(node.run(["ip", "-j", "addr", "show", "eth0"])
                                         .stdout)[0]["addr_info"][0]
        # sysfs of the node's own netns
        assert sorted(node.run(["ls", "/sys/class/net"]).stdout.split()) == ["eth0", "lo"]
        assert node.exists("/etc/ha.d/resource.d")
    assert os.uname().nodename not in lab.nodes
    assert lab.client is not None and lab.client.ip == "192.168.56.250"


def test_private_directories(lab: Lab) -> None:
    s1, s2 = lab.node("server1"), lab.node("server2")
    for path in ("/etc/ha.d/hblab-marker", "/var/run/hblab-marker", "/var/lib/heartbeat/x",
                 "/var/log/hblab-marker"):
        s1.write(path, "from server1\n", mode=0o600)
        # seen inside server1 (through its mounts) ...
        assert s1.run(["cat", path]).stdout == "from server1\n"
        assert s1.read(path) == "from server1\n"
        assert oct(os.stat(s1.host_path(path)).st_mode & 0o777) == "0o600"
        # ... but neither in server2 nor on the host
        assert s2.run(["test", "-e", path], check=False).returncode == 1
        assert not s2.exists(path)
        assert not os.path.exists(path)
    assert s1.run(["cat", "/run/hblab-marker"]).stdout == "from server1\n"
    # a file written from inside lands in the backing dir
    s2.run(["sh", "-c", "echo inside > /etc/ha.d/inside"])
    assert s2.read("/etc/ha.d/inside") == "inside\n"
    assert not s1.exists("/etc/ha.d/inside")
    # stock Heartbeat scripts were copied, heartbeat runtime dirs exist
    if os.path.exists("/etc/ha.d/resource.d/IPaddr"):
        assert s1.exists("/etc/ha.d/resource.d/IPaddr")
    assert s1.run(["test", "-d", "/run/lock"], check=False).returncode == 0


def test_nodes_ping_each_other(lab: Lab) -> None:
    nodes = list(lab.nodes.values())
    for a in nodes:
        for b in nodes:
            if a is not b:
                assert ping(a, b.ip), f"{a.name} cannot ping {b.name}"
        assert ping(a, lab.client.ip)
    assert lab.client.run(["ping", "-c", "1", "-w", "2", nodes[0].ip]).returncode == 0


def test_httpd_floating_ip_and_client(lab: Lab) -> None:
    s1 = lab.node("server1")
    client = lab.client
    install_httpd(s1)
    script = "/etc/ha.d/resource.d/httpd"
    assert os.stat(s1.host_path(script)).st_mode & 0o111
    assert s1.run([script, "status"], check=False).stdout.strip() == "httpd is stopped"
    assert s1.run([script, "stop"]).returncode == 0            # stop when stopped
    s1.run([script, "start"])
    s1.run([script, "start"])                                  # start when running
    assert s1.run([script, "status"]).stdout.strip() == "httpd is running"
    assert client.get(s1.ip) == "server1"
    assert client.get(lab.node("server2").ip) is None          # nothing listening there
    s1.run(["ip", "addr", "add", f"{FLOAT}/24", "dev", "eth0"])
    try:
        assert s1.has_address(FLOAT) and FLOAT in s1.addresses()
        assert client.get(FLOAT) == "server1"
        client.start_polling(FLOAT, interval=0.02)
        time.sleep(0.4)
        samples = client.stop_polling()
        assert len(samples) >= 5
        assert all(a == "server1" for _, a in samples)
        assert all(t1 <= t2 for (t1, _), (t2, _) in zip(samples, samples[1:]))
        assert samples[-1][0] <= time.monotonic()
        t0 = time.monotonic()
        s1.run([script, "stop"])
        assert client.wait_for(FLOAT, None, timeout=5) < 5
        assert time.monotonic() - t0 < 6
        assert s1.run([script, "status"], check=False).stdout.strip() == "httpd is stopped"
        s1.run([script, "restart"])
        assert client.wait_for(FLOAT, "server1", timeout=5) < 5
        with pytest.raises(TimeoutError):
            client.wait_for(FLOAT, "nobody", timeout=0.3)
    finally:
        s1.run([script, "stop"], check=False)
        s1.run(["ip", "addr", "del", f"{FLOAT}/24", "dev", "eth0"], check=False)


def test_polling_resolution_is_the_interval_not_the_timeout(lab: Lab) -> None:
    """The client starts a request every interval even while earlier ones wait out their timeout,
    so an outage is measured to ~one interval: requests to an address nobody holds, then the
    address comes up and is announced (as a takeover does): the first answer follows at once."""
    s1 = lab.node("server1")
    install_httpd(s1)
    script = "/etc/ha.d/resource.d/httpd"
    s1.run([script, "start"])
    try:
        lab.client.start_polling(FLOAT, interval=0.02, timeout=0.5)
        time.sleep(0.6)
        s1.run(["ip", "addr", "add", f"{FLOAT}/24", "dev", "eth0"])
        t_up = time.monotonic()
        s1.run([sys.executable, "-c", "from appliance.net.garp import GarpSender\n"
                f"with GarpSender('eth0') as g: g.send_pair('{FLOAT}')"])
        time.sleep(0.5)
        samples = lab.client.stop_polling()
        unanswered = [t for t, a in samples if a is None]
        answered = [t for t, a in samples if a == "server1"]
        # One request per 20 ms all along (a poller waiting out each timeout: ~1 per 0.5 s before
        # the address came up); those queued behind ARP resolution count when answered.
        assert len(samples) >= 35, samples
        assert unanswered and answered and answered[0] - unanswered[0] > 0.45, samples
        assert answered[0] - t_up < 0.15, (answered[:3], t_up)
    finally:
        s1.run([script, "stop"], check=False)
        s1.run(["ip", "addr", "del", f"{FLOAT}/24", "dev", "eth0"], check=False)


def test_gratuitous_arp_capture(lab: Lab, tmp_path) -> None:
    s2 = lab.node("server2")
    garp_ip = "192.168.56.201"
    with lab.capture(str(tmp_path / "arp.pcap")) as cap:
        send_gratuitous_arp(s2, garp_ip, op="request")
        send_gratuitous_arp(s2, garp_ip, op="reply")
        # an ordinary (non-gratuitous) request from the client for an unused address
        assert lab.client.get("192.168.56.222", timeout=0.3) is None
        time.sleep(0.2)
    path = cap.stop()
    frames = parse_arp_frames(path)
    garps = [f for f in frames if is_gratuitous(f) and f.sender_ip == garp_ip]
    assert [f.op for f in garps] == ["request", "reply"]
    for f in garps:
        assert f.src_mac == s2.mac == f.sender_mac
        assert f.target_ip == garp_ip and f.dst_mac == "ff:ff:ff:ff:ff:ff"
        assert abs(cap.to_monotonic(f.time) - time.monotonic()) < 30
    normal = [f for f in frames if f.target_ip == "192.168.56.222"]
    assert normal and normal[0].sender_ip == lab.client.ip and not is_gratuitous(normal[0])


def _udp_round(lab: Lab, sender: str, receivers: list) -> dict:
    """Datagrams each receiver got; key "rounds": how many times the sender sent one
    datagram to each receiver's own ip and one to the broadcast address."""
    procs = {r: lab.node(r).popen([sys.executable, "-c", UDP_RECV, "1.5"],
                                  stdout=subprocess.PIPE) for r in receivers}
    targets = [lab.node(r).ip for r in receivers] + ["192.168.56.255"]
    out = lab.node(sender).run([sys.executable, "-c", UDP_SEND, "0.8", *targets], timeout=10)
    counts = {"rounds": int(out.stdout.strip())}
    for r, p in procs.items():
        out, _ = p.communicate(timeout=10)
        counts[r] = int(out.decode().strip())
    return counts


def test_partition_blocks_udp_694_only(lab: Lab) -> None:
    s1, s2 = lab.node("server1"), lab.node("server2")
    lab.partition("server1", "server2")
    try:
        counts = _udp_round(lab, "server1", ["server2", "server3"])
        assert counts["server2"] == 0 and counts["server3"] > 0, counts
        counts = _udp_round(lab, "server2", ["server1", "server3"])
        assert counts["server1"] == 0 and counts["server3"] > 0, counts
        assert ping(s1, s2.ip) and ping(s2, s1.ip)
    finally:
        lab.heal()
    counts = _udp_round(lab, "server1", ["server2"])
    assert counts["server2"] > 0, counts
    lab.heal()   # idempotent


def test_egress_loss_and_link_down(lab: Lab) -> None:
    s3, s1 = lab.node("server3"), lab.node("server1")
    s3.egress_loss(100)
    try:
        assert not ping_once(s3, s1.ip, wait=1)
        assert _udp_round(lab, "server3", ["server1"])["server1"] == 0
    finally:
        s3.clear_loss()
    s3.clear_loss()              # idempotent
    assert ping(s3, s1.ip)
    s3.egress_loss(50)
    try:
        counts = _udp_round(lab, "server3", ["server1"])
        sent = 2 * counts["rounds"]             # unicast + broadcast per round
        assert sent >= 10 and 0 < counts["server1"] < 0.85 * sent, counts
    finally:
        s3.clear_loss()
    s3.link_down()
    try:
        assert not ping_once(s3, s1.ip, wait=1)
        link = json.loads(s3.run(["ip", "-j", "link", "show", "eth0"]).stdout)[0]
        assert "UP" not in link["flags"]
    finally:
        s3.link_up()
    assert ping(s3, s1.ip)


def test_kill_all_keeps_own_ip(lab: Lab) -> None:
    s3 = lab.node("server3")
    child = s3.popen(["sleep", "1000"])
    s3.run(["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"])    # an orphan, not our child
    s3.run(["ip", "addr", "add", "192.168.56.210/24", "dev", "eth0"])
    s3.run(["ip", "addr", "add", "10.9.9.9/32", "dev", "lo"])
    pids = s3.pids()
    assert child.pid in pids and len(pids) >= 2 and s3.holder_pid not in pids
    s3.kill_all()
    assert s3.pids() == []
    assert child.poll() is not None
    assert all(not pid_alive(p) for p in pids)
    assert pid_alive(s3.holder_pid)
    assert s3.addresses() == [s3.ip]
    assert not s3.has_address("10.9.9.9") and s3.has_address("127.0.0.1")
    assert s3.run(["uname", "-n"]).stdout.strip() == "server3"


def test_bench_overload_kill_takes_only_the_labs_processes(lab_factory) -> None:
    from appliance.lab.bench import kill_lab_processes

    lab = lab_factory(["server1", "server2"])
    s1, s2 = lab.node("server1"), lab.node("server2")
    s1.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1000 >/dev/null 2>&1 & done"])
    child = s2.popen(["sleep", "1000"])
    outside = subprocess.Popen(["sleep", "1000"])       # root namespace: must survive
    try:
        assert len(s1.pids()) >= 8 and s2.pids()
        assert kill_lab_processes(lab) >= 9
        child.wait(timeout=10)
        assert s1.pids() == [] and s2.pids() == []
        assert pid_alive(s1.holder_pid) and pid_alive(s2.holder_pid)
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait(timeout=10)


def test_root_untouched_and_full_cleanup(lab_factory) -> None:
    before = root_snapshot()
    lab = lab_factory(nodes=["n1", "n2"], first_host=11)
    assert root_snapshot() == before
    with open("/proc/self/mountinfo") as fh:       # the private mounts stay in the nodes
        assert lab.workdir not in fh.read()
    n1 = lab.node("n1")
    assert n1.ip == "192.168.56.11" and ping(n1, lab.node("n2").ip)
    n1.popen(["sleep", "1000"])
    n1.run(["sh", "-c", "sleep 1000 >/dev/null 2>&1 &"])
    pids = set(n1.pids()) | {n.holder_pid for n in lab.nodes.values()} | {lab.client.pid}
    namespaces = lab.namespaces
    assert len(namespaces) == 4 and all(ns in netns_list() for ns in namespaces)
    workdir = lab.workdir
    assert os.path.isdir(workdir)
    lab.close()
    lab.close()                      # idempotent
    assert not [ns for ns in netns_list() if ns.startswith(lab.prefix)]
    assert [p for p in pids if pid_alive(p)] == []
    assert not os.path.exists(workdir)
    assert root_snapshot() == before


def test_stale_namespaces_of_dead_pids_are_removed(lab_factory) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not pid_alive(dead.pid)
    stale = f"hbl{dead.pid}x0-switch"
    live = f"hbl{os.getpid()}x99999-keep"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        with Lab(nodes=["s1"], client=False) as lab:
            assert lab.client is None
            assert stale not in netns_list()
            assert live in netns_list()
        assert not [ns for ns in netns_list() if ns.startswith(lab.prefix)]
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
        subprocess.run(["ip", "netns", "del", live], capture_output=True)
