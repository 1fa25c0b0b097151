"""Ping nodes (ha.cf `ping` / `ping_group`): ICMP echo to routers or switches, so a node can
tell "my peer is gone" from "I lost my uplink" (spec §4: ping nodes are pseudo-members).

Heartbeat 3.0.6 pings them and leaves the decision to the separate `ipfail` client; we build
ipfail's rule into the ownership core instead: every node shares how many ping nodes it can
reach, and a node that reaches fewer than an eligible peer gives its groups to that peer.

Hysteresis: a ping node counts as lost only after `deadping` without a reply, and as back only
after RISE replies in a row, so one lost echo never moves a group.  A ping_group counts as one
ping node, reachable while any of its members is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from appliance.net.rawsock import internet_checksum

log = logging.getLogger("heartbeat")

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
RISE = 3
PAYLOAD = b"hb-appliance ping node check"


def echo_request(ident: int, seq: int) -> bytes:
    head = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    csum = internet_checksum(head + PAYLOAD)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ident, seq) + PAYLOAD


def parse_reply(packet: bytes, ident: int) -> tuple[str, int] | None:
    """(source address, seq) of an echo reply to us in a raw IPv4 packet, else None."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8 or icmp[0] != ICMP_ECHO_REPLY or internet_checksum(icmp) != 0:
        return None
    _t, _c, _s, rid, seq = struct.unpack("!BBHHH", icmp[:8])
    if rid != ident:
        return None
    return socket.inet_ntoa(packet[12:16]), seq


@dataclass
class Target:
    address: str                # as written in ha.cf (address or host name)
    ip: str = ""                # resolved once at start
    last_reply: float | None = None
    streak: int = 0             # replies in a row (an interval without one resets it)
    up: bool = False
    replied_since_send: bool = False


@dataclass(frozen=True)
class PingNode:
    """A ping node as cl_status shows it: one address, or a named ping_group."""
    name: str
    members: tuple[str, ...]


class Pinger:
    def __init__(self, nodes: list[PingNode], interval: float, deadping: float,
                 on_change: Callable[[str, bool], None]) -> None:
        self.nodes = nodes
        self.interval = interval
        self.deadping = deadping
        self.on_change = on_change
        self.targets = {a: Target(a) for n in nodes for a in n.members}
        self.by_ip: dict[str, Target] = {}
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.started = time.monotonic()
        self.state = {n.name: False for n in nodes}

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        try:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except OSError as exc:
            log.error("Cannot open ICMP socket for ping nodes: %s", exc)
            return
        self._sock.setblocking(False)
        for t in self.targets.values():
            try:
                t.ip = socket.gethostbyname(t.address)
            except OSError as exc:
                log.error("Ping node %s: cannot resolve: %s", t.address, exc)
        self.by_ip = {t.ip: t for t in self.targets.values() if t.ip}
        loop.add_reader(self._sock.fileno(), self._readable)
        self._task = asyncio.ensure_future(self._send_loop())

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def reachable(self) -> int:
        return sum(self.state.values())

    def node_states(self) -> dict[str, bool]:
        return dict(self.state)

    async def _send_loop(self) -> None:
        while True:
            self.tick(time.monotonic())
            self.seq = (self.seq + 1) & 0xFFFF
            packet = echo_request(self.ident, self.seq)
            for t in self.by_ip.values():
                t.replied_since_send = False
                try:
                    assert self._sock is not None
                    self._sock.sendto(packet, (t.ip, 0))
                except OSError as exc:
                    log.debug("ping %s: %s", t.address, exc)
            await asyncio.sleep(self.interval)

    def _readable(self) -> None:
        for _ in range(64):
            try:
                assert self._sock is not None
                packet = self._sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("ICMP receive: %s", exc)
                return
            got = parse_reply(packet, self.ident)
            if got is not None and got[0] in self.by_ip:
                self.reply(self.by_ip[got[0]].address, time.monotonic())

    def reply(self, address: str, now: float) -> None:
        t = self.targets[address]
        if not t.replied_since_send:
            t.streak += 1
            t.replied_since_send = True
        t.last_reply = now
        if not t.up and t.streak >= RISE:
            t.up = True
        self._update()

    def tick(self, now: float) -> None:
        """Before each round of echoes: streaks break on a silent interval, silence beyond
        deadping marks a target lost."""
        for t in self.targets.values():
            if not t.replied_since_send and self.seq:
                t.streak = 0
            if t.up and (t.last_reply is None or now - t.last_reply > self.deadping):
                t.up = False
                t.streak = 0
        self._update()

    def _update(self) -> None:
        for n in self.nodes:
            up = any(self.targets[a].up for a in n.members)
            if up != self.state[n.name]:
                self.state[n.name] = up
                log.info("Ping node %s: %s", n.name, "status ping (reachable)" if up else "is dead")
                self.on_change(n.name, up)


def ping_nodes(ping: list[str], groups: dict[str, list[str]]) -> list[PingNode]:
    return [PingNode(a, (a,)) for a in ping] + [PingNode(g, tuple(m)) for g, m in groups.items()]
