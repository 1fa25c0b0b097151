"""STONITH before takeover (`stonith_host`), on real namespaces with cluster-glue's `stonith`.

* A crashed holder is reset through the device, `t=stonith result=OK` goes out, and only then
  does the survivor take the address.
* A device that cannot reset: ERROR logged, retried, the address is NOT taken.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from appliance.lab.cluster import VIP, Cluster, ClusterConfig
from appliance.lab.realhb import wire_timeline

TIMERS = dict(keepalive="200ms", deadtime="2", warntime="1", initdead="4")
SECRET = "pw-Never-Logged"


def wait_log(c: Cluster, node: str, pattern: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = c.log(node)
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{node}: no /{pattern}/ in the log within {timeout:.0f}s:\n{c.log(node)[-3000:]}")


def crash(c: Cluster, name: str) -> None:
    """SIGKILL the daemon alone first: killing the node's processes in any order could let it
    see its helper or service die and release its group (a heartbeat saying "holds nothing")
    before it dies, and then no reset is needed. Then the rest, and the address goes."""
    node = c.lab.node(name)
    pid = int(node.read("/var/run/heartbeat.pid").split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.02)
    node.kill_all()


@pytest.mark.parametrize("privsep", [None, "user"])
def test_crashed_holder_is_reset_before_takeover(lab_factory, tmp_path, privsep) -> None:
    """Default privilege separation, and `user` (the root helper runs only the configured
    commands: the reset command lines must be among them)."""
    lab = lab_factory(["server1", "server2"])
    # null's parameter is its host list; SECRET stands in for a password that must not leak.
    extra = [f"stonith_host * null server1 server2 {SECRET}"]
    c = Cluster(lab, ClusterConfig(**TIMERS, extra=extra)).setup()
    cap = lab.capture(str(tmp_path / "switch.pcap"))
    try:
        for n in c.names:
            c.lab.node(n).run([c.binary], env={"HBA_PRIVSEP": privsep} if privsep else None, timeout=60)
        c.wait_holders(["server1"])
        if privsep:
            assert "Privilege separation (user)" in c.log("server2"), c.log("server2")
        crash(c, "server1")
        wait_log(c, "server2", r"node server1 now reset\.", timeout=15)
        c.wait_holders(["server2"], timeout=10)
        text = c.log("server2")
        dead = text.index("node server1: is dead")
        reset = text.index("Resetting node server1 with [NULL STONITH device]")
        done = text.index("node server1 now reset.")
        taken = text.index("IP address 192.168.56.200/24 added")
        assert dead < reset < done < taken
        for name in c.names:
            assert SECRET not in c.log(name)
            assert SECRET not in c.lab.node(name).read("/var/log/ha-debug")
        assert SECRET not in c.cl_status("server2", "--json").stdout
    finally:
        c.stop_all()
        cap.stop()
    results = [(e.get("node"), e.get("result")) for e in wire_timeline(str(tmp_path / "switch.pcap"))
               if e.type == "stonith"]
    assert ("server1", "OK") in results


def test_failing_device_blocks_takeover_and_retries(lab_factory) -> None:
    lab = lab_factory(["server1", "server2"])
    # `stonith TYPE CONFIGFILE` with a file that is not there: every reset fails (exit 1).
    extra = ["stonith null /etc/ha.d/no-such-stonith.cf"]
    c = Cluster(lab, ClusterConfig(**TIMERS, extra=extra)).setup()
    try:
        for n in c.names:
            c.start(n)
        c.wait_holders(["server1"])
        crash(c, "server1")
        wait_log(c, "server2", r"STONITH of server1 failed\.  Retrying", timeout=15)
        text = wait_log(c, "server2", r"(?s)Retrying.*Retrying", timeout=15)   # retried
        assert "ERROR: Host server1 not reset!" in text
        assert "waiting for STONITH of server1 before taking" in text
        assert c.holders() == []                  # never taken without a successful reset
        # The node comes back: no reset needed any more, it takes its group again.
        c.start("server1")
        c.wait_holders(["server1"], timeout=20)
        assert "Node server1 is back: no STONITH needed any more" in c.log("server2")
        assert c.holders(VIP) == ["server1"]
    finally:
        c.stop_all()
