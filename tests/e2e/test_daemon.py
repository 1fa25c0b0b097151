"""Daemon capabilities beyond the tutorial walk, each on real namespaces and real sockets."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time

import pytest

from appliance.lab.cluster import VIP, Cluster, ClusterConfig

VIP2 = "192.168.56.201"


def two_nodes(lab_factory, **cfg) -> Cluster:
    lab = lab_factory(["server1", "server2"])
    return Cluster(lab, ClusterConfig(**cfg)).setup()


def status_json(c: Cluster, node: str) -> dict:
    return json.loads(c.cl_status(node, "--json", check=True).stdout)


@pytest.fixture
def pair(lab_factory):
    c = two_nodes(lab_factory)
    yield c
    c.stop_all()


def test_hostile_packets_are_counted_and_dropped(pair: Cluster) -> None:
    c = pair
    for n in c.names:
        c.start(n)
    c.wait_holders(["server1"])
    # From the client namespace: garbage, a corrupted real heartbeat, a packet signed with the
    # wrong key, one from a node not in ha.cf signed with the right key, truncations.
    code = textwrap.dedent(f"""
        import os, socket
        from appliance.wire.auth import sign
        from appliance.wire.message import Message
        from appliance.config.authkeys import parse_authkeys
        good = parse_authkeys({c.config.authkeys()!r})
        bad = parse_authkeys("auth 2\\n2 sha1 WRONGkey\\n")
        def status(src, seq):
            m = Message.of(t="status", st="active", dt="7d0", protocol="1", src=src)
            m.add_bytes("srcuuid", os.urandom(16))
            for k, v in (("seq", f"{{seq:x}}"), ("hg", "1"), ("ts", "6b07c79f"), ("ttl", "3")):
                m.add(k, v)
            return m
        real = sign(status("server2", 99999), good)
        packets = [os.urandom(n) for n in (0, 1, 4, 300, 1400)]
        packets += [b"###\\n" + os.urandom(300), real[:len(real) // 2], real + b"junk"]
        packets += [real[:40] + bytes([real[40] ^ 0xff]) + real[41:]]
        packets += [sign(status("server2", 5), bad), sign(status("intruder", 5), good)]
        packets += [b"###\\n" + b"9999999:" * 8000]
        # ACKs addressed to other nodes (one not even in ha.cf), right key and wrong key.
        def ack(dest, src):
            m = Message.of(t="NS_ackmsg", dest=dest, ackseq="1a", src=src)
            m.add("ts", "6b07c79f")
            m.add("ttl", "3")
            return m
        packets += [sign(ack("server3", "server2"), good), sign(ack("server3", "server2"), bad)]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            for p in packets:
                for ip in ("192.168.56.101", "192.168.56.102"):
                    s.sendto(p, (ip, 694))
    """)
    c.lab.client.run([sys.executable, "-c", code])
    time.sleep(1.0)   # let the daemons drain their sockets before reading counters
    for n in c.names:
        dropped = status_json(c, n)["counters"]["dropped"]
        assert dropped.get("auth_mismatch", 0) >= 20, dropped
        assert dropped.get("unknown_node", 0) >= 20, dropped
        assert sum(dropped.values()) >= 20 * 10, dropped
        # Other nodes' ACKs (ours to each other's self-ACKs, and the forged ones) never reach
        # user space: the kernel filter drops them (user space would count them here).
        assert status_json(c, n)["counters"]["others_acks"] == 0
        assert c.daemon_pids(n), f"{n} died"
    assert c.holders() == ["server1"]
    c.wait_status("server1", "server2", "active")
    assert "authentication failed" in c.log("server1")
    assert "bad node [intruder]" in c.log("server1")


def test_resource_start_failure_moves_group(lab_factory) -> None:
    c = two_nodes(lab_factory, haresources=f"server1 {VIP} httpd flaky\n")
    try:
        ok = "#!/bin/sh\ncase $1 in status) [ -e /run/flaky ] && echo running || echo stopped;;" \
             " start) touch /run/flaky;; stop) rm -f /run/flaky;; esac\nexit 0\n"
        c.lab.node("server1").write("/etc/ha.d/resource.d/flaky", "#!/bin/sh\n[ \"$1\" = start ] && exit 1\n"
                                    "[ \"$1\" = status ] && echo stopped\nexit 0\n", mode=0o755)
        c.lab.node("server2").write("/etc/ha.d/resource.d/flaky", ok, mode=0o755)
        for n in c.names:
            c.start(n)
        c.wait_holders(["server2"], timeout=30)
        c.lab.client.wait_for(VIP, "server2", timeout=10)
        log1 = c.log("server1")
        assert "failed to start" in log1
        # The group was stopped in reverse order on server1: httpd is down there.
        status = c.lab.node("server1").run(["/etc/ha.d/resource.d/httpd", "status"], check=False)
        assert "httpd is stopped" in status.stdout
    finally:
        c.stop_all()


def test_hanging_script_times_out_and_peer_takes_over(lab_factory) -> None:
    c = two_nodes(lab_factory, haresources=f"server1 {VIP} hang\n")
    try:
        c.lab.node("server1").write("/etc/ha.d/hb-appliance.cf", "[resources]\nstart_timeout = 1.5\n")
        hang = '#!/bin/sh\n[ "$1" = start ] && sleep 600\n[ "$1" = status ] && echo stopped\nexit 0\n'
        c.lab.node("server1").write("/etc/ha.d/resource.d/hang", hang, mode=0o755)
        quiet = '#!/bin/sh\n[ "$1" = status ] && echo stopped\nexit 0\n'
        c.lab.node("server2").write("/etc/ha.d/resource.d/hang", quiet, mode=0o755)
        for n in c.names:
            c.start(n)
        for _ in range(300):      # bounded: server1 must try, time out and give the group up
            if "timed out" in c.log("server1"):
                break
            time.sleep(0.1)
        assert "timed out" in c.log("server1")
        c.wait_holders(["server2"], timeout=30)
        # The heartbeat loop never blocked: server2 never thought server1 died.
        assert "node server1: is dead" not in c.log("server2")
        assert not any(b"sleep" in open(f"/proc/{p}/cmdline", "rb").read()
                       for p in c.lab.node("server1").pids() if os.path.exists(f"/proc/{p}/cmdline"))
    finally:
        c.stop_all()


@pytest.mark.parametrize("media", ["mcast", "ucast"])
def test_mcast_and_ucast_media(lab_factory, media: str) -> None:
    lines = {"mcast": ["mcast eth0 239.0.0.43 694 1 0"],
             "ucast": ["ucast eth0 192.168.56.101", "ucast eth0 192.168.56.102"]}[media]
    c = two_nodes(lab_factory, media=lines)
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server2", "server1", "active")
        c.stop("server1")
        c.wait_holders(["server2"])
    finally:
        c.stop_all()


@pytest.mark.parametrize("method", ["md5", "crc"])
def test_auth_methods(lab_factory, method: str) -> None:
    c = two_nodes(lab_factory, auth=(3, method, "md5-secret"))
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.lab.node("server1").kill_all()
        c.wait_holders(["server2"])
    finally:
        c.stop_all()


def test_takeover_standby_and_cl_status(pair: Cluster) -> None:
    c = pair
    for n in c.names:
        c.start(n)
    c.wait_holders(["server1"])
    c.wait_status("server1", "server2", "active")
    assert c.cl_status("server1", "hblinkstatus", "server2", "eth0").stdout.strip() == "up"
    assert c.cl_status("server1", "listhblinks", "server2").stdout == "\teth0\n"
    assert c.cl_status("server1", "hbparameter", "-p", "deadtime").stdout.strip() == "2"
    assert c.cl_status("server1", "nodestatus", "nosuchnode").returncode == 11
    assert c.cl_status("server1", "hbstatus").stdout.strip() == "Heartbeat is running on this machine."
    # hb_takeover on server2: server1 goes standby, server2 serves.
    t_ask = time.time()
    assert c.lab.node("server2").run(c.tool("server2", "hb_takeover")).returncode == 0
    c.wait_holders(["server2"])
    # When each side decided (the benchmark's "decision -> address up" starts there).
    g1, g2 = (status_json(c, n)["groups"][0] for n in ("server1", "server2"))
    assert t_ask <= g1["decided_at"] <= g2["decided_at"] <= time.time(), (t_ask, g1, g2)
    assert "releasing" in g1["reason"] or "should hold" in g1["reason"], g1
    c.lab.client.wait_for(VIP, "server2", timeout=10)
    # hb_standby on server2 hands it back.
    assert c.lab.node("server2").run(c.tool("server2", "hb_standby")).returncode == 0
    c.wait_holders(["server1"])
    st = c.lab.node("server1").run([c.binary, "-s"], check=False)
    assert st.returncode == 0 and "is running on server1" in st.stdout
    c.stop("server1")
    st = c.lab.node("server1").run([c.binary, "-s"], check=False)
    assert st.returncode == 1 and "stopped" in st.stdout
    assert c.cl_status("server1", "hbstatus").returncode == 1


def test_groups_with_different_home_nodes(lab_factory) -> None:
    lab = lab_factory(["server1", "server2", "server3"])
    c = Cluster(lab, ClusterConfig(haresources=f"server1 {VIP} httpd\nserver2 {VIP2}/24/eth0\n")).setup()
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"], VIP)
        c.wait_holders(["server2"], VIP2)
        c.stop("server2")
        # Takeover order for server2's group: server2, server3, server1.
        c.wait_holders(["server3"], VIP2)
        assert c.holders(VIP) == ["server1"]
        c.start("server2")
        c.wait_holders(["server2"], VIP2)
    finally:
        c.stop_all()


def test_watchdog_and_systemd_notify(lab_factory) -> None:
    c = two_nodes(lab_factory, extra=["watchdog /var/lib/heartbeat/fake-watchdog"])
    node = c.lab.node("server1")
    fifo = node.host_path("/var/lib/heartbeat/fake-watchdog")
    os.mkfifo(fifo)
    wd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    notify_path = node.host_path("/run/notify.sock")
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sd.bind(notify_path)
    sd.settimeout(5)
    proc = node.popen([c.binary, "-f"], env={"NOTIFY_SOCKET": "/run/notify.sock"})
    try:
        got: list[str] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and got.count("WATCHDOG=1") < 5:
            got.append(sd.recv(4096).decode())
        assert got[0] == "READY=1" and got.count("WATCHDOG=1") >= 5
        fed = b""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5 and len(fed) < 3:
            try:
                fed += os.read(wd, 64)
            except BlockingIOError:
                time.sleep(0.1)
        assert fed and set(fed) == {0}
        # Reload: RELOADING=1 then READY=1 again (systemd Type=notify protocol).
        assert node.run([c.binary, "-r"]).returncode == 0
        after: list[str] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and "READY=1" not in after:
            msg = sd.recv(4096).decode()
            if msg != "WATCHDOG=1":
                after.append(msg)
        assert after[:2] == ["RELOADING=1", "READY=1"]
        c.stop("server1")
        proc.wait(timeout=30)
        rest = []
        try:
            while True:
                rest.append(sd.recv(4096).decode())
        except socket.timeout:
            pass
        assert "STOPPING=1" in rest
        tail = b""
        for _ in range(20):
            try:
                tail += os.read(wd, 4096)
            except BlockingIOError:
                break
        assert tail.endswith(b"V")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        os.close(wd)
        sd.close()
        c.stop_all()


def test_reload_with_bad_config_keeps_running_config(pair: Cluster) -> None:
    c = pair
    for n in c.names:
        c.start(n)
    c.wait_holders(["server1"])
    node = c.lab.node("server1")
    node.write("/etc/ha.d/haresources", "nosuchnode 192.168.56.210 httpd\n")
    assert node.run([c.binary, "-r"]).returncode == 0
    for _ in range(50):
        if "Reload refused" in c.log("server1"):
            break
        time.sleep(0.1)
    assert "Reload refused" in c.log("server1") and "nosuchnode" in c.log("server1")
    assert c.holders() == ["server1"] and c.daemon_pids("server1")
    c.lab.client.wait_for(VIP, "server1", timeout=5)


def test_late_heartbeat_warning_and_heartbeat_label(pair: Cluster) -> None:
    c = pair
    for n in c.names:
        c.start(n)
    c.wait_holders(["server1"])
    c.wait_status("server1", "server2", "active")
    # Heartbeat-style alias label on the floating address.
    addrs = json.loads(c.lab.node("server1").run(["ip", "-j", "addr", "show", "dev", "eth0"]).stdout)
    infos = [a for a in addrs[0]["addr_info"] if a.get("local") == VIP]
    assert infos and infos[0]["label"] == "eth0:0" and infos[0]["prefixlen"] == 24
    assert infos[0]["broadcast"] == "192.168.56.255"
    # Freeze server2 longer than warntime (1 s) but shorter than deadtime (2 s).
    pid = c.daemon_pids("server2")[0]
    os.kill(pid, 19)   # SIGSTOP
    time.sleep(1.4)
    os.kill(pid, 18)   # SIGCONT
    for _ in range(50):
        if "Late heartbeat: Node server2" in c.log("server1"):
            break
        time.sleep(0.1)
    assert "Late heartbeat: Node server2: interval" in c.log("server1")
    assert "node server2: is dead" not in c.log("server1")
    assert c.holders() == ["server1"]


def test_realtime_daemon_children_run_at_normal_priority(pair: Cluster) -> None:
    c = pair
    c.start("server1")
    c.start("server2")
    c.wait_holders(["server1"])
    c.lab.client.wait_for(VIP, "server1", timeout=10)
    pids = c.daemon_pids("server1")
    assert len(pids) == 1 and os.sched_getscheduler(pids[0]) & 0xFF == os.SCHED_RR
    lighttpd = [p for p in c.lab.node("server1").pids() if b"lighttpd" in cmdline(p)]
    assert lighttpd and all(os.sched_getscheduler(p) == os.SCHED_OTHER for p in lighttpd)


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_stock_cl_status_talks_to_our_daemon(pair: Cluster) -> None:
    """Heartbeat's own /usr/bin/cl_status, through the client API socket (spec §12.2)."""
    c = pair
    for n in c.names:
        c.start(n)
    c.wait_holders(["server1"])
    c.wait_status("server1", "server2", "active")
    node = c.lab.node("server1")

    def stock(*args: str):
        return node.run(["/usr/bin/cl_status", *args], check=False)

    assert stock("hbstatus").stdout.strip() == "Heartbeat is running on this machine."
    assert sorted(stock("listnodes").stdout.split()) == ["server1", "server2"]
    res = stock("nodestatus", "server2")
    assert (res.stdout.strip(), res.returncode) == ("active", 0)
    assert stock("hblinkstatus", "server2", "eth0").stdout.strip() == "up"
    assert stock("rscstatus").stdout.strip() == "local"
    assert stock("hbparameter", "-p", "deadtime").stdout.strip() == "2"
    assert stock("nodestatus", "nosuchnode").returncode == 11
    c.stop("server2")
    for _ in range(50):
        if stock("nodestatus", "server2").stdout.strip() == "dead":
            break
        time.sleep(0.1)
    res = stock("nodestatus", "server2")
    assert (res.stdout.strip(), res.returncode) == ("dead", 1)
