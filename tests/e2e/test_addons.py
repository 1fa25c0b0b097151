"""Beyond Heartbeat (the extension file): health checks, notification hooks, metrics and
periodic announcements, each on real namespaces, real scripts and real sockets."""

from __future__ import annotations

import json
import os
import re
import textwrap
import time

import pytest

from appliance.lab.capture import Capture, is_gratuitous, parse_arp_frames
from appliance.lab.cluster import VIP, Cluster, ClusterConfig

EXT = "/etc/ha.d/hb-appliance.cf"
NOTIFY_LOG = "/var/log/notify.log"
HOOK = f"""#!/bin/sh
echo "$1 $2 node=$HA_NOTIFY_NODE event=$HA_NOTIFY_EVENT reason=$HA_NOTIFY_REASON" >> {NOTIFY_LOG}
"""


def make(lab_factory, ext: str, names=("server1", "server2"), **cfg) -> Cluster:
    lab = lab_factory(list(names))
    c = Cluster(lab, ClusterConfig(**cfg)).setup()
    for node in lab.nodes.values():
        node.write(EXT, textwrap.dedent(ext))
        node.write("/etc/ha.d/notify.sh", HOOK, mode=0o755)
    return c


def lighttpd_pid(c: Cluster, name: str) -> int | None:
    try:
        return int(c.lab.node(name).read("/var/run/httpd.pid").strip())
    except (OSError, ValueError):
        return None


def kill_lighttpd(c: Cluster, name: str) -> int:
    pid = lighttpd_pid(c, name)
    assert pid is not None and pid in c.lab.node(name).pids(), "lighttpd not running"
    os.kill(pid, 9)
    return pid


def wait_for(what, timeout: float, step: float = 0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = what()
        if value:
            return value
        time.sleep(step)
    return what()


def status_json(c: Cluster, node: str) -> dict:
    return json.loads(c.cl_status(node, "--json", check=True).stdout)


def wait_running(c: Cluster, node: str, timeout: float = 30.0) -> None:
    """Until the group's start has finished on `node`: the client may be served while the
    start script is still polling for lighttpd's port, and a kill then fails the start itself."""
    running = lambda: status_json(c, node)["groups"][0]["local_state"] == "running"  # noqa: E731
    assert wait_for(running, timeout), status_json(c, node)["groups"]


def notify_lines(c: Cluster, node: str) -> list[str]:
    try:
        return c.lab.node(node).read(NOTIFY_LOG).splitlines()
    except OSError:
        return []


MONITOR = """
[monitor]
interval = 0.5
timeout = 5
fall = 2
rise = 2
restarts = 2
[hooks]
notify = /etc/ha.d/notify.sh
"""


def test_dead_service_is_restarted_in_place(lab_factory) -> None:
    c = make(lab_factory, MONITOR)
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        assert c.lab.client.wait_for(VIP, "server1", timeout=20) is not None
        wait_running(c, "server1")
        old = kill_lighttpd(c, "server1")
        node = c.lab.node("server1")
        # A new lighttpd (its pid file may name the forking parent for a moment: wait for a live one).
        def restarted() -> int | None:
            pid = lighttpd_pid(c, "server1")
            return pid if pid not in (None, old) and pid in node.pids() else None

        new = wait_for(restarted, 20)
        assert new, "lighttpd was not restarted"
        assert c.lab.client.wait_for(VIP, "server1", timeout=20) is not None
        assert c.holders() == ["server1"]          # restarted in place, never moved
        log = c.log("server1")
        assert "Health check of group 192.168.56.200 failed: httpd status exit 3" in log
        assert "Restarting group 192.168.56.200 in place from httpd" in log
        assert "Resource group 192.168.56.200 restarted" in log
        # The address was not touched by the restart.
        assert "IP address 192.168.56.200 removed" not in log
        st = status_json(c, "server1")
        mon = st["monitor"]["192.168.56.200"]
        assert mon["restarts"] == 1 and mon["failures"] >= 2, mon
        events = [(t["event"], t["subject"]) for t in st["transitions"]]
        assert ("restart", VIP) in events and events[-1] == ("active", VIP), events
        hooked = lambda: any(x.startswith(f"restart {VIP}") for x in notify_lines(c, "server1"))  # noqa: E731
        assert wait_for(hooked, 10)
    finally:
        c.stop_all()


def test_service_that_cannot_start_goes_to_the_peer(lab_factory) -> None:
    c = make(lab_factory, MONITOR)
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        assert c.lab.client.wait_for(VIP, "server1", timeout=20) is not None
        wait_running(c, "server1")
        node = c.lab.node("server1")
        # From now on server1's httpd cannot start (status and stop still work).
        node.write("/etc/ha.d/resource.d/httpd.real", node.read("/etc/ha.d/resource.d/httpd"), mode=0o755)
        node.write("/etc/ha.d/resource.d/httpd", textwrap.dedent("""\
            #!/bin/sh
            if [ "$1" = start ]; then echo "httpd: broken on purpose"; exit 1; fi
            exec /etc/ha.d/resource.d/httpd.real "$@"
            """), mode=0o755)
        kill_lighttpd(c, "server1")
        c.wait_holders(["server2"], timeout=60)
        assert c.lab.client.wait_for(VIP, "server2", timeout=20) is not None
        log = c.log("server1")
        assert "Restart of group 192.168.56.200 failed" in log, log
        st1 = status_json(c, "server1")
        assert st1["groups"][0]["local_state"] == "stopped"
        assert lighttpd_pid(c, "server1") not in node.pids()      # nothing left behind
        # server2 now serves; server1 stays out even with auto_failback on (it failed the group).
        time.sleep(2.0)
        assert c.holders() == ["server2"]
        lines = notify_lines(c, "server1")
        assert any(line.startswith(f"fault {VIP}") for line in lines), lines
        assert wait_for(lambda: any(x.startswith(f"active {VIP}") for x in notify_lines(c, "server2")), 10)
    finally:
        c.stop_all()


def test_hooks_run_in_order_and_again_after_partition(lab_factory) -> None:
    c = make(lab_factory, "[hooks]\nnotify = /etc/ha.d/notify.sh\n")
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        assert wait_for(lambda: notify_lines(c, "server1"), 10)
        c.stop("server1")
        c.wait_holders(["server2"])
        lines1 = notify_lines(c, "server1")
        events1 = [" ".join(line.split()[:2]) for line in lines1]
        # peer_up may come before or after the acquisition (both nodes start together).
        assert "peer_up server2" in events1, lines1
        group1 = [line for line in lines1 if line.split()[1] == VIP]
        assert [x.split()[0] for x in group1] == ["active", "standby"], lines1
        assert "node=server1 event=active reason=taking 192.168.56.200: " in group1[0], lines1
        assert group1[1].endswith("reason=heartbeat shutdown"), lines1
        lines2 = wait_for(lambda: (x := notify_lines(c, "server2")) and x[-1].startswith("active") and x, 10)
        events2 = [" ".join(line.split()[:2]) for line in lines2]
        assert "peer_dead server1" in events2 and events2[-1] == f"active {VIP}", lines2
        assert events2.index("peer_dead server1") < events2.index(f"active {VIP}")
        # A partition: server2 keeps the group; after the heal its hooks run again.
        c.start("server1")
        c.wait_holders(["server1"])
        n_before = len(notify_lines(c, "server1"))
        c.lab.partition("server1", "server2")
        c.wait_holders(["server1", "server2"], timeout=20)    # no quorum: both take it
        c.lab.heal()
        c.wait_holders(["server1"], timeout=20)
        def rerun_after_heal() -> bool:     # the hooks run one after the other, in the background
            lines = notify_lines(c, "server1")[n_before:]
            heal_at = next((i for i, x in enumerate(lines) if x.startswith("heal server2")), None)
            return heal_at is not None and any(x.startswith(f"active {VIP}") for x in lines[heal_at:])

        assert wait_for(rerun_after_heal, 15), notify_lines(c, "server1")[n_before:]
        assert "Notify hook /etc/ha.d/notify.sh active 192.168.56.200: exit 0" in c.log("server1")
    finally:
        c.stop_all()


def _parse_exposition(text: str) -> dict[str, list[tuple[dict, float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict, float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_metrics_textfile_and_http(lab_factory) -> None:
    ext = """
    [metrics]
    textfile = /var/lib/heartbeat/hba.prom
    textfile_interval = 0.5
    listen = 0.0.0.0:9694
    """
    c = make(lab_factory, ext)
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server1", "server2", "active")

        def textfile() -> str:
            try:
                return c.lab.node("server1").read("/var/lib/heartbeat/hba.prom")
            except OSError:
                return ""

        # Rewritten every 0.5 s: wait for a copy written after server2 was seen active.
        assert wait_for(lambda: 'hba_node_alive{node="server2",state="active"' in textfile(), 10)
        prom = _parse_exposition(textfile())
        assert prom["hba_up"] == [({}, 1.0)]
        assert ({"group": VIP}, 1.0) in prom["hba_group_held"]
        assert ({"group": VIP}, 1.0) in prom["hba_group_holders"]
        assert ({"group": VIP, "state": "running"}, 1.0) in prom["hba_group_state"]
        assert ({"node": "server2", "state": "active", "type": "normal"}, 1.0) in prom["hba_node_alive"]
        assert ({"node": "server2", "link": "eth0"}, 1.0) in prom["hba_link_up"]
        assert prom["hba_packets_received_total"][0][1] > 0
        # The HTTP listener, from the client namespace, on server2's address.
        got = c.lab.client.run(["python3", "-c", textwrap.dedent("""
            import urllib.request
            print(urllib.request.urlopen("http://192.168.56.102:9694/metrics", timeout=5).read().decode())
        """)]).stdout
        prom2 = _parse_exposition(got)
        assert ({"group": VIP}, 0.0) in prom2["hba_group_held"]
        assert ({"group": VIP, "owner": "server1"}, 1.0) in prom2["hba_group_owner"]
        # Hostile requests get an answer or a closed socket, never a dead daemon.
        c.lab.client.run(["python3", "-c", textwrap.dedent("""
            import socket
            for req in (b"GET /nope HTTP/1.0\\r\\n\\r\\n", b"x" * 100000, b"\\r\\n\\r\\n", b""):
                s = socket.create_connection(("192.168.56.102", 9694), timeout=5)
                try:   # the daemon may close on us mid-request: that is a fine answer
                    s.sendall(req); s.shutdown(socket.SHUT_WR); s.recv(100)
                except OSError:
                    pass
                s.close()
        """)])
        assert c.daemon_pids("server2")
        c.stop("server1")
        c.wait_holders(["server2"])
        prom = _parse_exposition(c.lab.node("server1").read("/var/lib/heartbeat/hba.prom"))
        assert prom["hba_up"] == [({}, 0.0)]     # a stopped daemon says so
    finally:
        c.stop_all()


def test_periodic_gratuitous_arp_refresh(lab_factory, tmp_path) -> None:
    c = make(lab_factory, "[announce]\nrefresh_interval = 1\n")
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        time.sleep(1.5)     # past the takeover burst (5 pairs, 200 ms apart)
        pcap = str(tmp_path / "arp.pcap")
        with Capture(c.lab.switch_ns, pcap, "arp"):
            time.sleep(3.6)
        frames = [f for f in parse_arp_frames(pcap) if is_gratuitous(f) and f.sender_ip == VIP]
        senders = {f.sender_mac for f in frames}
        assert senders == {c.lab.node("server1").mac}, frames
        # One burst of 5 request+reply pairs per second of refresh.
        assert 3 * 10 <= len(frames) <= 4 * 10 + 2, len(frames)
    finally:
        c.stop_all()


@pytest.mark.parametrize("bad, expect", [
    ("[monitor]\ninterval = soon\n", r"hb-appliance.cf:2: \[monitor/interval\]"),
    ("[monitor]\n[[10.0.0.1]]\nfall = 2\n", r"hb-appliance.cf:2: \[\[10.0.0.1\]\] names no resource group"),
    ("[hooks]\nnotify = notify.sh\n", r"hb-appliance.cf:2: \[hooks\] notify: notify.sh is not an absolute"),
    ("[metrics]\nlisten = 9694\n", r"hb-appliance.cf:2: \[metrics\] listen = 9694: expected ADDRESS:PORT"),
])
def test_bad_extension_file_is_refused_with_its_line(lab_factory, bad: str, expect: str) -> None:
    c = make(lab_factory, bad)
    res = c.lab.node("server1").run([c.binary, "-t"], check=False)
    assert res.returncode == 6, res
    assert re.search(expect, res.stderr), res.stderr
    res = c.start("server1", check=False)
    assert res.returncode == 6 and not c.daemon_pids("server1")


# ------------------------------------------------------------------ ping nodes (ipfail built in)
def block_ping(c: Cluster, name: str, target: str) -> None:
    script = ("table inet hbaping {}\ndelete table inet hbaping\n"
              "table inet hbaping {\n  chain out { type filter hook output priority 0; policy accept;\n"
              f"    ip daddr {target} icmp type echo-request drop\n  }}\n}}\n")
    c.lab.node(name).run(["nft", "-f", "-"], input=script, timeout=10)


def unblock_ping(c: Cluster, name: str) -> None:
    c.lab.node(name).run(["nft", "-f", "-"], input="table inet hbaping {}\ndelete table inet hbaping\n",
                         timeout=10)


def test_ping_node_lost_gives_group_to_the_peer_that_still_reaches_it(lab_factory) -> None:
    lab = lab_factory(["server1", "server2"])
    router = lab.client.ip
    c = Cluster(lab, ClusterConfig(extra=["deadping 2", f"ping {router}"])).setup()
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        for n in c.names:
            c.wait_status(n, router, "ping")
        assert c.cl_status("server1", "nodetype", router).stdout.strip() == "ping"
        assert c.cl_status("server1", "listnodes", "-p").stdout.split() == [router]
        # server1 loses its uplink (its echoes are dropped); server2 still reaches the router.
        block_ping(c, "server1", router)
        waited = c.wait_holders(["server2"], timeout=20)
        assert waited >= 1.0          # only after deadping, never on one lost echo
        c.wait_status("server1", router, "dead")
        log1 = c.log("server1")
        assert f"Ping node {router}: is dead" in log1
        assert "server2 should hold 192.168.56.200 (reaches 1 ping node(s), more than server1 0)" in log1
        assert c.lab.client.wait_for(VIP, "server2", timeout=10) is not None
        # Uplink back: auto_failback on returns the group home, after the rise hysteresis.
        unblock_ping(c, "server1")
        c.wait_holders(["server1"], timeout=20)
        # Both lose the router: equal reachability, nothing moves.
        for n in c.names:
            block_ping(c, n, router)
        for n in c.names:
            c.wait_status(n, router, "dead")
        time.sleep(1.0)
        assert c.holders() == ["server1"]
        assert "Ping node" in c.log("server2")
    finally:
        c.stop_all()


def test_announcement_rate_limit_spreads_many_addresses(lab_factory, tmp_path) -> None:
    """30 addresses move at once with [announce] max_rate = 40: their gratuitous ARP goes out at
    no more than ~40 packets per second on the interface (plus the bucket's initial burst), and
    every address is still announced."""
    addrs = [f"192.168.56.{i}" for i in range(210, 240)]
    c = make(lab_factory, "[announce]\nmax_rate = 40\n", haresources=f"server1 {' '.join(addrs)}\n")
    try:
        pcap = str(tmp_path / "arp.pcap")
        with Capture(c.lab.switch_ns, pcap, "arp"):
            c.start("server1")
            c.wait_holders(["server1"], ip=addrs[-1], timeout=30)
            time.sleep(12.0)        # 300 frames at 40/s: ~7.5 s after the last address is up
        frames = [f for f in parse_arp_frames(pcap) if is_gratuitous(f) and f.sender_ip in addrs]
        assert {f.sender_ip for f in frames} == set(addrs)
        assert len(frames) == 30 * 10, len(frames)           # 5 request+reply pairs each
        times = sorted(f.time for f in frames)
        busiest = max(sum(1 for t in times if t0 <= t < t0 + 1.0) for t0 in times)
        assert busiest <= 40 + 10 + 4, busiest                # rate + bucket capacity + slack
        assert times[-1] - times[0] >= (300 - 10) / 40 - 1.0  # really spread out
    finally:
        c.stop_all()
