"""Heartbeat media: bcast, mcast and ucast UDP sockets (spec §1), and 3.0.6's IPv6 plugins
mcast6 and ucast6.

Each medium has a receive socket bound to the UDP port on its interface (SO_BINDTODEVICE, so
the link a packet came in on is known) and a send socket.  Every outbound datagram goes out on
every medium, as in 3.0.6; receivers de-duplicate by sequence number.

IPv6 receive sockets are IPV6_V6ONLY, so they never compete with an IPv4 medium for the same
port. A link-local ucast6 peer (fe80::/10) is reached through the medium's interface, as
ucast6.so does by setting the scope id.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import time
from typing import Callable

from appliance.config.hacf import Medium
from appliance.net import ackfilter

log = logging.getLogger("heartbeat")

SIOCGIFBRDADDR = 0x8919
SIOCGIFADDR = 0x8915
RECV_SIZE = 65536
BRD_REFRESH = 1.0


def interface_ipv4(ifname: str, request: int) -> str | None:
    """The interface's address or broadcast address, via ioctl (no netlink needed here)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s.fileno(), request, struct.pack("256s", ifname.encode()[:15]))
        return socket.inet_ntoa(res[20:24])
    except OSError:
        return None
    finally:
        s.close()


IPV6_KINDS = ("mcast6", "ucast6")


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return 0  # gone: sends fail (and are counted) until it is back


def open_ipv6(m: Medium) -> tuple[socket.socket, socket.socket]:
    """(receive, send) sockets of an mcast6/ucast6 medium, as mcast6.c / ucast6.c make them."""
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, m.interface.encode())
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("::", m.port))
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, m.interface.encode())
        if m.kind == "mcast6" and m.group:
            index = socket.if_nametoindex(m.interface)
            mreq = socket.inet_pton(socket.AF_INET6, m.group) + struct.pack("@I", index)
            rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, m.ttl)
            tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, m.loop)
        rx.setblocking(False)
        tx.setblocking(False)
    except BaseException:
        rx.close()
        tx.close()
        raise
    return rx, tx


def destination_ipv6(m: Medium) -> tuple[str, int, int, int] | None:
    """sockaddr_in6 of an mcast6 group or ucast6 peer; link-local ones get the interface as
    scope id (multicast groups always, so the kernel never has to guess the link)."""
    target = m.group if m.kind == "mcast6" else m.peer
    if not target:
        return None
    scoped = m.kind == "mcast6" or target.lower().startswith(("fe8", "fe9", "fea", "feb"))
    return (target, m.port, 0, _ifindex(m.interface) if scoped else 0)


class Link:
    """One medium: its sockets and where it sends to."""

    def __init__(self, medium: Medium) -> None:
        self.medium = medium
        self.name = medium.interface
        self.rx: socket.socket | None = None
        self.tx: socket.socket | None = None
        self.errors = 0
        self._brd: str | None = None
        self._dest6: tuple | None = None  # mcast6/ucast6 sockaddr, refreshed like _brd
        self._brd_at = float("-inf")

    def open(self) -> None:
        if self.medium.kind in IPV6_KINDS:
            self.rx, self.tx = open_ipv6(self.medium)
            return
        m = self.medium
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, m.interface.encode())
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("", m.port))
        if m.kind == "mcast" and m.group:
            local = interface_ipv4(m.interface, SIOCGIFADDR) or "0.0.0.0"
            mreq = socket.inet_aton(m.group) + socket.inet_aton(local)
            rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        rx.setblocking(False)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, m.interface.encode())
        if m.kind == "bcast":
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        elif m.kind == "mcast":
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, m.ttl)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, m.loop)
        tx.setblocking(False)
        self.rx, self.tx = rx, tx

    def destination(self) -> tuple | None:
        m = self.medium
        if m.kind in IPV6_KINDS:
            # The scope id (an ifindex lookup) is as stable as the broadcast address below.
            now = time.monotonic()
            if now - self._brd_at > BRD_REFRESH:
                self._dest6, self._brd_at = destination_ipv6(m), now
            return self._dest6
        if m.kind == "bcast":
            # The broadcast address rarely changes: ask the kernel once a second, not per packet.
            now = time.monotonic()
            if now - self._brd_at > BRD_REFRESH:
                self._brd, self._brd_at = interface_ipv4(m.interface, SIOCGIFBRDADDR), now
            if not self._brd or self._brd == "0.0.0.0":
                return None
            return (self._brd, m.port)
        if m.kind == "mcast" and m.group:
            return (m.group, m.port)
        if m.kind == "ucast" and m.peer:
            return (m.peer, m.port)
        return None

    def send(self, data: bytes) -> bool:
        dest = self.destination()
        if self.tx is None or dest is None:
            self.errors += 1
            return False
        try:
            self.tx.sendto(data, dest)
            return True
        except OSError:
            # ENETDOWN etc. while the link is down: heartbeats are periodic, the next one retries.
            self.errors += 1
            return False

    def close(self) -> None:
        for s in (self.rx, self.tx):
            if s is not None:
                s.close()
        self.rx = self.tx = None


class Media:
    def __init__(self, media: list[Medium], on_packet: Callable[[bytes, str, tuple], None],
                 local: str | None = None) -> None:
        self.links = [Link(m) for m in media]
        self.on_packet = on_packet
        self.local = local      # our node name: other nodes' ACKs are dropped in the kernel
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        try:
            insns = ackfilter.program(self.local) if self.local else None
        except ValueError as exc:           # a name too long for BPF jumps (ha.cf allows 100)
            log.warning("no kernel filter for other nodes' ACKs: %s", exc)
            insns = None
        for link in self.links:
            link.open()
            assert link.rx is not None
            if insns is not None:
                try:
                    ackfilter.attach(link.rx, insns)
                except OSError as exc:      # user space skips them too, at some CPU cost
                    log.warning("%s: no kernel filter for other nodes' ACKs: %s", link.name, exc)
            loop.add_reader(link.rx.fileno(), self._readable, link)
            log.info("%s %s: port %d", link.medium.kind, link.name, link.medium.port)

    def _readable(self, link: Link) -> None:
        sock = link.rx
        if sock is None:
            return
        for _ in range(64):   # bounded drain so one busy link cannot starve the loop
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.on_packet(data, link.name, addr)

    def drain(self) -> None:
        """Read what is queued now. Called before dead detection: after the process was stalled
        (SIGSTOP, swap, overload) the timer can fire before the sockets are read, and peers whose
        heartbeats sit in our queue would be declared dead."""
        for link in self.links:
            self._readable(link)

    def send(self, data: bytes) -> int:
        return sum(1 for link in self.links if link.send(data))

    def interfaces(self) -> list[str]:
        seen: list[str] = []
        for link in self.links:
            if link.name not in seen:
                seen.append(link.name)
        return seen

    def close(self) -> None:
        for link in self.links:
            if self._loop is not None and link.rx is not None:
                try:
                    self._loop.remove_reader(link.rx.fileno())
                except (ValueError, OSError):
                    pass
            link.close()
