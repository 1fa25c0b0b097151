"""Hostile and stray traffic, by name (issue: bad input): replayed captures, a second cluster on
the same port and key, wrong auth index and method, oversized datagrams. Each is rejected and
counted by reason, and the cluster's state does not change."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time

from appliance.lab.cluster import Cluster, ClusterConfig
from appliance.lab.faults import wait_until
from appliance.lab.httpd import install_httpd
from appliance.wire.pcap import read_udp_datagrams

VIP_B = "192.168.56.220"


def counters(c: Cluster, node: str) -> dict:
    return json.loads(c.cl_status(node, "--json", check=True).stdout)["counters"]["dropped"]


def send_from_client(c: Cluster, make_packets: str, targets: list[str], repeat: int = 1,
                     interval: float = 0.0) -> None:
    """Run in the client namespace: Python statements `make_packets` that set `packets` (a list
    of bytes), sent to UDP 694 of every target, `repeat` times, `interval` s apart."""
    code = textwrap.dedent("""
        import os, socket, time
        from appliance.wire.auth import sign
        from appliance.wire.message import Message
        from appliance.config.authkeys import parse_authkeys
    """) + textwrap.dedent(make_packets) + textwrap.dedent(f"""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range({repeat}):
            for p in packets:
                for ip in {targets!r}:
                    try:
                        s.sendto(p, (ip, 694))
                    except OSError:
                        pass
            time.sleep({interval})
    """)
    c.lab.client.run([sys.executable, "-c", code], timeout=120)


def two_clusters(lab_factory) -> tuple[Cluster, Cluster]:
    lab = lab_factory(["server1", "server2", "other1", "other2"])
    a = Cluster(lab, ClusterConfig())
    b = Cluster(lab, ClusterConfig(haresources=f"other1 {VIP_B} httpd\n"))   # same port, same key
    a.names, b.names = ["server1", "server2"], ["other1", "other2"]
    for c in (a, b):
        for n in c.names:
            c.configure(lab.node(n))
            install_httpd(lab.node(n))
    return a, b


def test_stray_cluster_replays_and_forgeries_change_nothing(lab_factory, tmp_path) -> None:
    a, b = two_clusters(lab_factory)
    try:
        for c in (a, b):
            for n in c.names:
                c.start(n)
        a.wait_holders(["server1"])
        b.wait_holders(["other1"], ip=VIP_B)
        a.wait_status("server1", "server2", "active")
        # --- a second cluster on the same port, with the same key: its nodes are not ours.
        for n in a.names:
            wait_until(lambda n=n: counters(a, n).get("unknown_node", 0) >= 10, 10,
                       what=f"{n} counting the other cluster's packets")
        assert "bad node [other1]" in a.log("server2")
        # --- replay of a capture of server1's traffic (old seq) and forged auth.
        cap = a.lab.capture(str(tmp_path / "a.pcap"), "udp port 694 and src host 192.168.56.101")
        time.sleep(2.0)
        cap.stop()
        captured = [d.payload for d in read_udp_datagrams(str(tmp_path / "a.pcap"))]
        assert len(captured) >= 5
        replay = replay_code(str(tmp_path / "replay.bin"), captured)
        before = counters(a, "server2")
        send_from_client(a, replay, ["192.168.56.102"], repeat=3, interval=0.2)
        forged = """
            def m():
                return Message.of(t="status", st="active", src="server1", seq="ffff", hg="1", ts="ffff")
            packets = [
                sign(m(), parse_authkeys("auth 7\\n7 sha1 lab-secret-2\\n")),   # index not in authkeys
                sign(m(), parse_authkeys("auth 2\\n2 md5 lab-secret-2\\n")),    # right index, wrong method
                b"###\\n" + b"x" * 65000,                                          # oversized
            ]
        """
        send_from_client(a, forged, ["192.168.56.102"], repeat=5, interval=0.1)
        time.sleep(1.0)
        after = counters(a, "server2")
        grew = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert grew.get("duplicate", 0) + grew.get("replay", 0) >= len(captured), grew
        assert grew.get("auth_bad_index", 0) >= 5, grew
        assert grew.get("auth_mismatch", 0) >= 5, grew
        assert grew.get("too_large", 0) + grew.get("bad_length", 0) + grew.get("truncated", 0) >= 5, grew
        # --- nothing changed: one holder each, nobody died, nobody restarted.
        assert a.holders() == ["server1"] and b.holders(VIP_B) == ["other1"]
        for c in (a, b):
            for n in c.names:
                assert c.daemon_pids(n), f"{n} died"
                log = c.log(n)
                assert "is dead" not in log and "Heartbeat restart" not in log, n
        # --- server1 crashes; its captured traffic replayed every 100 ms must not keep it alive.
        replaying = threading.Thread(target=send_from_client, args=(a, replay, ["192.168.56.102"]),
                                     kwargs={"repeat": 100, "interval": 0.1})
        a.lab.node("server1").kill_all()
        replaying.start()
        try:
            a.wait_holders(["server2"], timeout=8)   # deadtime 2 s: well before the replay ends
        finally:
            replaying.join(timeout=60)
        assert "node server1: is dead" in a.log("server2")
        assert b.holders(VIP_B) == ["other1"]
    finally:
        for c in (a, b):
            c.stop_all()


def replay_code(path: str, packets: list[bytes]) -> str:
    """Statements that load `packets` back from a length-prefixed file (in the client namespace)."""
    with open(path, "wb") as f:
        for p in packets:
            f.write(len(p).to_bytes(4, "big") + p)
    return f"""
        raw, packets, i = open({path!r}, "rb").read(), [], 0
        while i < len(raw):
            n = int.from_bytes(raw[i:i + 4], "big")
            packets.append(raw[i + 4:i + 4 + n])
            i += 4 + n
    """
