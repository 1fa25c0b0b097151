"""The fuzzer's targets (appliance.lab.fuzz): the cluster configuration and keys each fuzzed
Daemon is built with (constructed, never run), and the per-sender sequence state used to reach
its handlers."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Dict

from appliance.config.authkeys import parse_authkeys
from appliance.config.hacf import parse_hacf
from appliance.config.haresources import parse_haresources
from appliance.paths import Paths

LOCAL = "fuzzlocal"
NODES = ["node1", "node2", "node3", LOCAL]
GROUPS_TEXT = "node1 192.168.56.200 httpd\nnode2 10.9.9.9/24/eth0 foo\nfuzzlocal 10.9.9.10 bar::x\n"
HACF = ("keepalive 200ms\ndeadtime 2\nwarntime 1\ninitdead 4\nudpport 694\nbcast eth0\n"
        "auto_failback {failback}\n" + "".join(f"node {n}\n" for n in NODES))
# (name, authkeys text, auto_failback): golden captures are signed with these keys.
TARGETS = [
    ("sha1", "auth 1\n1 sha1 pbSecret42\n2 md5 other-key\n3 crc\n", "on"),
    ("md5", "auth 1\n1 md5 md5Key-Xy\n", "off"),
    ("crc", "auth 2\n2 crc\n", "legacy"),
]
SRC_CHOICES = NODES + ["NODE1", "Node2", "intruder", "", "node1 ", "node9", LOCAL.upper()]


@dataclass
class Sender:
    seq: int = 0
    gen: int = 0x6b07c000
    uuid: bytes = b""


class Target:
    """One Daemon (never run) and the per-sender sequence state used to reach its handlers."""

    def __init__(self, name: str, keys_text: str, failback: str, tmp: str, rng: random.Random) -> None:
        from appliance.daemon import Daemon

        self.name = name
        cfg = parse_hacf(HACF.format(failback=failback), os.path.join(tmp, "ha.cf"), local_node=LOCAL,
                         udpport_default=694)
        self.keys = parse_authkeys(keys_text)
        groups = parse_haresources(GROUPS_TEXT, os.path.join(tmp, "haresources"), cfg.nodes)
        state = os.path.join(tmp, name)
        os.makedirs(state, exist_ok=True)
        paths = Paths(etc=state, state=state, run=state, pidfile=os.path.join(state, "pid"))
        self.daemon = Daemon(cfg, self.keys, groups, paths)
        d = self.daemon
        d.generation = 0x6b07d000
        d.uuid = os.urandom(16)
        # Half the time behave like a daemon past its start-up (facts sent, handlers live).
        if rng.random() < 0.5:
            d.ready, d.phase = True, "ready"
        self.senders: Dict[str, Sender] = {n: Sender(uuid=os.urandom(16)) for n in SRC_CHOICES}
        self.groups = [g.key for g in groups]

    def dropped_total(self) -> int:
        return sum(self.daemon.counters.dropped.values())

    def fingerprint(self) -> tuple:
        d = self.daemon
        peers = tuple((p.name, p.state, p.generation, p.last_seq, len(p.missing), p.last_heard,
                       p.uuid, p.shutting_down, p.departed, tuple(sorted(p.links.items())))
                      for p in d.mem.peers.values())
        # PeerFacts fields are immutable values (frozensets, numbers, str): a shallow copy is exact.
        facts = tuple((n, tuple(vars(f).values())) for n, f in sorted(d.facts.items()))
        return (peers, facts, d.seq, d.standby_scope, d.standby_epoch, d.max_epoch, len(d.rexmits),
                len(d.history), d.mem.comm_up)

    def sizes(self) -> Dict[str, int]:
        d = self.daemon
        return {
            "history": len(d.history),
            "rexmits": len(d.rexmits),
            "missing": sum(len(p.missing) for p in d.mem.peers.values()),
            "drop_keys": len(d.counters.dropped),
            "ip_requests": len(d.ip_requests),
            "owe_done": len(d.owe_done),
        }
