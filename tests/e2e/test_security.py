"""Security features on real namespaces: modern auth methods (sha256, AEAD envelopes), replay
protection, key rotation without downtime, privilege separation, secrets kept out of logs.

Clusters here run only hb-appliance nodes (the new methods are refused by 3.0.6)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time

import pytest

from appliance import caps
from appliance.lab.capture import is_gratuitous, parse_arp_frames
from appliance.lab.cluster import VIP, Cluster, ClusterConfig

KEY1 = "k1-7f3a9c0d2e5b8a14c6f0e9d3"
KEY2 = "k2-0b1d2f4a6c8e0a2c4e6a8c0e"
SECRET = "Sup3rSecretToken-x9Q2w7Lm5"          # grepped for in every output
KEEP = caps.mask(["net_admin", "net_raw", "kill", "ipc_lock"])   # realtime is on by default
FULL = int(caps.proc_status()["CapEff"], 16)                       # what root has here

PROBE = """#!/bin/sh
# Records what a resource script gets: its own credentials and limits.
case "$1" in
  start)  cat /proc/self/status > /run/probe.status; cat /proc/self/limits > /run/probe.limits
          touch /run/probe.on;;
  stop)   rm -f /run/probe.on;;
  status) [ -e /run/probe.on ] && echo running || echo stopped;;
esac
exit 0
"""


def cluster(lab_factory, names=("server1", "server2"), **cfg) -> Cluster:
    lab = lab_factory(list(names))
    return Cluster(lab, ClusterConfig(**cfg)).setup()


def start(c: Cluster, name: str, mode: str | None = None) -> None:
    env = {"HBA_PRIVSEP": mode} if mode else None
    c.lab.node(name).run([c.binary], env=env, timeout=60)


def status_json(c: Cluster, node: str) -> dict:
    return json.loads(c.cl_status(node, "--json", check=True).stdout)


def dropped(c: Cluster, node: str) -> dict:
    return status_json(c, node)["counters"]["dropped"]


def write_keys(c: Cluster, node: str, text: str) -> None:
    c.lab.node(node).write("/etc/ha.d/authkeys", text, mode=0o600)


def reload(c: Cluster, node: str) -> None:
    before = c.log(node).count("Configuration reloaded")
    c.lab.node(node).run([c.binary, "-r"])
    for _ in range(100):
        if c.log(node).count("Configuration reloaded") > before:
            return
        assert "Reload refused" not in c.log(node), c.log(node)[-2000:]
        time.sleep(0.05)
    raise AssertionError(f"{node} did not reload: {c.log(node)[-2000:]}")


def proc(pid: int) -> dict[str, str]:
    return caps.proc_status(pid)


def helper_pids(c: Cluster, node: str) -> list[int]:
    out = []
    for pid in c.lab.node(node).pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().rstrip(b"\0") == b"hba-privsep":
                    out.append(pid)
        except OSError:
            pass
    return out


def core_limit(limits: str) -> str:
    return next(line.split()[4] for line in limits.splitlines() if line.startswith("Max core file size"))


# ----------------------------------------------------------------------------- auth methods


@pytest.mark.parametrize("method", ["sha256", "aes256gcm", "chacha20poly1305"])
def test_modern_method_cluster_fails_over(lab_factory, method: str) -> None:
    c = cluster(lab_factory, auth=(1, method, KEY1))
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server2", "server1", "active")
        c.lab.client.wait_for(VIP, "server1", timeout=10)
        assert not any(k.startswith("auth") for k in dropped(c, "server2")), dropped(c, "server2")
        c.lab.node("server1").kill_all()
        c.wait_holders(["server2"])
        c.lab.client.wait_for(VIP, "server2", timeout=10)
    finally:
        c.stop_all()


def test_node_with_the_wrong_key_is_rejected_and_counted(lab_factory) -> None:
    c = cluster(lab_factory, names=("server1", "server2", "server3"), auth=(1, "aes256gcm", KEY1))
    try:
        # server3 has the right index and method, a wrong key, and no groups to grab.
        write_keys(c, "server3", f"auth 1\n1 aes256gcm {KEY2}\n")
        c.lab.node("server3").write("/etc/ha.d/haresources", "")
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server1", "server2", "active")
        c.wait_status("server1", "server3", "dead", timeout=30)
        time.sleep(1.0)
        for n in ("server1", "server2"):
            assert dropped(c, n).get("auth_mismatch", 0) >= 5, dropped(c, n)
            assert "authentication failed" in c.log(n)
        assert dropped(c, "server3").get("auth_mismatch", 0) >= 5
        assert c.holders() == ["server1"]
    finally:
        c.stop_all()


REPLAY = """
import json, socket, sys, time
from appliance.config.authkeys import parse_authkeys
from appliance.wire import auth
keys = parse_authkeys(sys.argv[1])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.bind(("", 694))
rx.settimeout(0.2)
got, t0 = [], time.monotonic()
while time.monotonic() - t0 < float(sys.argv[2]):
    try:
        got.append(rx.recv(65536))
    except socket.timeout:
        pass
time.sleep(0.5)
senders, types = {}, set()
for data in got:
    p = auth.open_sealed(data, keys)
    assert p.verdict is None, p.verdict
    senders[p.sender] = senders.get(p.sender, 0) + 1
    types.add(p.msg.get("t"))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
forged = bytearray(got[0]); forged[40] ^= 0x20
extra = [bytes(forged), got[0][:30]]
for ip in sys.argv[3:]:
    for data in got + extra:
        tx.sendto(data, (ip, 694))
        time.sleep(0.001)
print(json.dumps({"senders": senders, "types": sorted(types), "count": len(got)}))
"""


def test_replayed_envelopes_are_dropped_and_counted(lab_factory) -> None:
    c = cluster(lab_factory, auth=(1, "chacha20poly1305", KEY1))
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server1", "server2", "active")
        before = {n: dropped(c, n) for n in c.names}
        ips = [c.lab.node(n).ip for n in c.names]
        out = c.lab.client.run([sys.executable, "-c", textwrap.dedent(REPLAY), c.config.authkeys(),
                                "4.5", *ips], timeout=60)
        seen = json.loads(out.stdout)
        # Heartbeats and also unsequenced messages (which seq/generation checks do not cover).
        assert "status" in seen["types"] and "NS_ackmsg" in seen["types"], seen
        time.sleep(1.0)
        for me, peer in (("server1", "server2"), ("server2", "server1")):
            d = dropped(c, me)
            replays = d.get("replay", 0) - before[me].get("replay", 0)
            assert replays >= seen["senders"][peer], (me, d, seen)
            assert d.get("auth_mismatch", 0) >= 1 and d.get("truncated", 0) >= 1, d
        assert "is dead" not in c.log("server1") + c.log("server2")
        assert c.holders() == ["server1"]
    finally:
        c.stop_all()


# ----------------------------------------------------------------------------- rotation


class HolderWatch(threading.Thread):
    """Samples the address holders in the background; any sample but `expected` is kept."""

    def __init__(self, c: Cluster, expected: list[str]) -> None:
        super().__init__(daemon=True)
        self.c, self.expected, self.bad, self.samples = c, expected, [], 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            holders = self.c.holders()
            self.samples += 1
            if holders != self.expected:
                self.bad.append((time.monotonic(), holders))
            time.sleep(0.05)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=10)


def test_key_rotation_without_downtime(lab_factory) -> None:
    """The README procedure: add the new key everywhere, switch `auth` everywhere, remove the
    old one, with `heartbeat -r` after each step; nobody is declared dead, nothing moves."""
    c = cluster(lab_factory, auth=(1, "aes256gcm", KEY1))
    watch = HolderWatch(c, ["server1"])
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server1", "server2", "active")
        c.wait_status("server2", "server1", "active")
        watch.start()
        steps = [
            f"auth 1\n1 aes256gcm {KEY1}\n2 chacha20poly1305 {KEY2}\n",   # 1. add the new key
            f"auth 2\n1 aes256gcm {KEY1}\n2 chacha20poly1305 {KEY2}\n",   # 2. send with it
            f"auth 2\n2 chacha20poly1305 {KEY2}\n",                       # 3. drop the old one
        ]
        for text in steps:
            for n in c.names:          # one node after the other, as an operator would
                write_keys(c, n, text)
                reload(c, n)
                time.sleep(1.0)        # several keepalives with the nodes on different steps
        time.sleep(2.5)                # more than deadtime on the final keys
        watch.stop()
        assert watch.samples > 20 and not watch.bad, watch.bad[:5]
        for n in c.names:
            assert "is dead" not in c.log(n) and "Reload refused" not in c.log(n)
            assert not any(k.startswith("auth") for k in dropped(c, n)), dropped(c, n)
            assert [s["state"] for s in status_json(c, n)["nodes"]] == ["active", "active"]
        # The old key is gone for good: an envelope sealed with it is refused.
        inject = textwrap.dedent(f"""
            import os, socket
            from appliance.config.authkeys import parse_authkeys
            from appliance.wire.auth import sign
            from appliance.wire.message import Message
            m = Message.of(t="status", st="active", src="server2", seq="ffff", hg="1", ts="1")
            data = sign(m, parse_authkeys("auth 1\\n1 aes256gcm {KEY1}\\n"))
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(data, ("{c.lab.node('server1').ip}", 694))
        """)
        c.lab.client.run([sys.executable, "-c", inject])
        time.sleep(0.5)
        assert dropped(c, "server1").get("auth_bad_index", 0) == 1
    finally:
        watch.stop()
        c.stop_all()


# ----------------------------------------------------------------------------- privileges


def assert_reduced(pid: int, uid: int) -> None:
    st = proc(pid)
    assert int(st["CapEff"], 16) == KEEP and int(st["CapPrm"], 16) == KEEP, st
    assert int(st["CapBnd"], 16) == KEEP and int(st["CapInh"], 16) == 0 and st["NoNewPrivs"] == "1"
    assert int(st["Uid"].split()[0]) == uid
    for tid, (eff, prm) in caps.thread_caps(pid).items():     # every thread, not only the main one
        assert eff | prm == (eff | prm) & KEEP, (tid, hex(eff), hex(prm))
    with open(f"/proc/{pid}/limits") as f:
        assert core_limit(f.read()) == "0"


def assert_script_is_full_root(c: Cluster, node: str) -> None:
    n = c.lab.node(node)
    st = dict(line.split(":\t", 1) for line in n.read("/run/probe.status").splitlines() if ":\t" in line)
    assert int(st["CapEff"], 16) == FULL and st["Uid"].split()[0] == "0" and st["NoNewPrivs"] == "0"
    with open("/proc/self/limits") as f:
        assert core_limit(n.read("/run/probe.limits")) == core_limit(f.read())


def assert_gone(c: Cluster, node: str) -> None:
    """After `heartbeat -k`: the helper followed the daemon, and the pid file is gone."""
    for _ in range(40):
        if not helper_pids(c, node):
            break
        time.sleep(0.05)
    assert not helper_pids(c, node) and not c.daemon_pids(node)
    assert not c.lab.node(node).exists("/var/run/heartbeat.pid")


def privsep_pair(lab_factory) -> Cluster:
    c = cluster(lab_factory, haresources=f"server1 {VIP} probe httpd\n")
    for n in c.names:
        c.lab.node(n).write("/etc/ha.d/resource.d/probe", PROBE, mode=0o755)
    return c


def test_daemon_keeps_only_its_capabilities_scripts_stay_root(lab_factory, tmp_path) -> None:
    c = privsep_pair(lab_factory)
    try:
        for n in c.names:
            start(c, n)                              # the default: HBA_PRIVSEP unset
        c.wait_holders(["server1"])
        c.lab.client.wait_for(VIP, "server1", timeout=10)
        for n in c.names:
            [pid] = c.daemon_pids(n)                 # the helper is not another `heartbeat`
            assert_reduced(pid, uid=0)
            [helper] = helper_pids(c, n)
            assert int(proc(helper)["CapEff"], 16) == FULL and int(proc(helper)["PPid"]) == pid
            assert "Privilege separation (caps)" in c.log(n)
        assert_script_is_full_root(c, "server1")
        # Fail over through the reduced daemons: scripts via the helpers, netlink, gratuitous ARP.
        cap = c.lab.capture(str(tmp_path / "arp.pcap"), bpf="arp")
        c.stop("server1")
        c.wait_holders(["server2"])
        c.lab.client.wait_for(VIP, "server2", timeout=10)
        time.sleep(0.5)
        cap.stop()
        mac = c.lab.node("server2").mac.lower()
        assert any(is_gratuitous(f) and f.sender_ip == VIP and f.sender_mac.lower() == mac
                   for f in parse_arp_frames(cap.path))
        assert_script_is_full_root(c, "server2")
        assert_gone(c, "server1")
        c.lab.node("server2").kill_all()             # crash: server1, restarted, takes it back
        start(c, "server1")
        c.wait_holders(["server1"])
        c.lab.client.wait_for(VIP, "server1", timeout=10)
    finally:
        c.stop_all()


def test_unprivileged_user_mode(lab_factory) -> None:
    c = privsep_pair(lab_factory)
    uid = __import__("pwd").getpwnam("hacluster").pw_uid
    try:
        for n in c.names:
            start(c, n, mode="user")
        c.wait_holders(["server1"])
        c.lab.client.wait_for(VIP, "server1", timeout=10)
        for n in c.names:
            [pid] = c.daemon_pids(n)
            assert_reduced(pid, uid=uid)
            assert os.stat(f"/proc/{pid}/environ").st_uid == 0   # not dumpable: owned by root
            assert "Privilege separation (user)" in c.log(n)
        assert_script_is_full_root(c, "server1")
        # Reload re-reads the root-only authkeys through the helper: rotate to a new index.
        old = "2 sha1 lab-secret-2"
        for text in (f"auth 2\n{old}\n3 sha256 {KEY2}\n", f"auth 3\n{old}\n3 sha256 {KEY2}\n"):
            for n in c.names:
                write_keys(c, n, text)
                reload(c, n)
        time.sleep(1.0)
        c.wait_status("server1", "server2", "active")
        assert not any(k.startswith("auth") for k in dropped(c, "server1")), dropped(c, "server1")
        c.stop("server1")
        c.wait_holders(["server2"])
        c.lab.client.wait_for(VIP, "server2", timeout=10)
        # Gone without a trace although the daemon could not remove root's files itself.
        assert_gone(c, "server1")
        assert not c.lab.node("server1").exists("/var/run/heartbeat/hba.sock")
    finally:
        c.stop_all()


def test_privilege_separation_can_be_turned_off(lab_factory) -> None:
    c = privsep_pair(lab_factory)
    try:
        start(c, "server1", mode="off")
        c.wait_holders(["server1"], timeout=40)
        [pid] = c.daemon_pids("server1")
        assert int(proc(pid)["CapEff"], 16) == FULL and not helper_pids(c, "server1")
        assert "Privilege separation off" in c.log("server1")
        assert_script_is_full_root(c, "server1")
    finally:
        c.stop_all()


# ----------------------------------------------------------------------------- secrets


def test_secrets_never_reach_logs_or_status(lab_factory) -> None:
    c = cluster(lab_factory, auth=(1, "aes256gcm", SECRET))
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        c.wait_status("server1", "server2", "active")
        node = c.lab.node("server1")
        outputs = [node.run([c.binary, "-t"]).stdout, c.cl_status("server1", "--json").stdout]
        outputs += [c.cl_status("server1", *a).stdout for a in (("hbparameter", "-p", "keepalive"),
                                                                   ("listnodes",))]
        # Reloads that fail on the key line, and one that works.
        for bad in (f"auth 1\n1 sha512 {SECRET}\n", f"auth 1\n1 aes256gcm {SECRET[:8]}\n",
                    f"auth 1\n{SECRET}\n", f"auth 1\n1 crc {SECRET}\n"):
            write_keys(c, "server1", bad)
            node.run([c.binary, "-r"])
            outputs.append(node.run([c.binary, "-t"], check=False).stderr)
            time.sleep(0.3)
        write_keys(c, "server1", c.config.authkeys())
        reload(c, "server1")
        assert c.log("server1").count("Reload refused") == 4
        outputs += [c.log("server1"), node.read("/var/log/ha-debug")]
        outputs.append(c.cl_status("server1", "--json").stdout)
        for text in outputs:
            assert SECRET not in text and SECRET[:8] not in text
    finally:
        c.stop_all()


def test_hacf_secrets_never_reach_status(lab_factory) -> None:
    c = cluster(lab_factory, extra=["stonith_host * baytech 10.0.0.3 admin StonithPass99",
                                    "env DBPASS=EnvPass77"])
    try:
        c.start("server1")
        c.wait_status("server1", "server1", "active", timeout=30)
        outputs = [c.cl_status("server1", "--json").stdout, c.log("server1")]
        outputs += [c.cl_status("server1", "hbparameter", "-p", p).stdout for p in ("stonith_host", "env")]
        for text in outputs:
            assert "StonithPass99" not in text and "EnvPass77" not in text
    finally:
        c.stop_all()
