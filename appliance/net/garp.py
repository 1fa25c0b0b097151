"""Gratuitous ARP from a raw packet socket (spec §9.3).

After taking over an address, send ARP request+reply pairs to the Ethernet
broadcast address, as Heartbeat's send_arp does, so that neighbours and
switches update their caches:

* request: "who-has VIP tell VIP": sender = VIP/own MAC, target = VIP,
  target MAC 00:00:00:00:00:00;
* reply: sender = VIP/own MAC, target = VIP/own MAC.

IPaddr2's defaults are 5 pairs, 200 ms apart.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from typing import Any, Callable

from appliance.net.rawsock import ether_socket

log = logging.getLogger(__name__)

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
FRAME_LEN = 60  # minimum Ethernet frame without FCS

_OPS = {"request": ARPOP_REQUEST, "reply": ARPOP_REPLY}
_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


def _ipv4_bytes(ip: str) -> bytes:
    try:
        addr = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        raise ValueError(f"{ip!r} is not a valid IPv4 address") from None
    if addr.version != 4:
        raise ValueError(f"{ip} is not an IPv4 address; gratuitous ARP is IPv4 only")
    return addr.packed


def build_arp(sender_mac: bytes, ip: str, op: str) -> bytes:
    """A complete, padded Ethernet frame carrying a gratuitous ARP for `ip`.

    op "request": sender = ip/sender_mac, target = ip, target MAC all zeros;
    op "reply": sender = target = ip/sender_mac. Destination is broadcast.
    """
    mac = bytes(sender_mac)
    if len(mac) != 6:
        raise ValueError(f"MAC address must be 6 bytes, got {len(mac)}")
    if op not in _OPS:
        raise ValueError(f"ARP op must be 'request' or 'reply', not {op!r}")
    spa = _ipv4_bytes(ip)
    tha = ZERO_MAC if op == "request" else mac
    frame = _ETH.pack(BROADCAST_MAC, mac, ETH_P_ARP) + _ARP.pack(
        ARPHRD_ETHER, ETH_P_IP, 6, 4, _OPS[op], mac, spa, tha, spa)
    return frame.ljust(FRAME_LEN, b"\x00")


class GarpSender:
    """A non-blocking AF_PACKET socket bound to one interface, for sending only.

    Raises OSError when the interface does not exist (ENODEV), when we lack
    CAP_NET_RAW (EPERM), or when it is not an Ethernet interface (EINVAL).
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        sock = ether_socket(ifname, "ARP")
        self._sock: socket.socket | None = sock

    def mac(self) -> bytes:
        """The interface's current hardware address (re-read on every call)."""
        if self._sock is None:
            raise OSError(errno.EBADF, "GarpSender is closed")
        mac = bytes(self._sock.getsockname()[4][:6])
        if len(mac) != 6:  # the kernel unbinds the socket when the interface goes away
            raise OSError(errno.ENODEV, f"interface {self.ifname} is gone")
        return mac

    def send_pair(self, ip: str) -> None:
        """Send one ARP request then one ARP reply for `ip`, immediately.

        Raises ValueError for a bad address, OSError when a frame cannot be
        sent (interface down or gone, queue full).
        """
        mac = self.mac()
        request = build_arp(mac, ip, "request")
        reply = build_arp(mac, ip, "reply")
        assert self._sock is not None
        self._sock.send(request)
        self._sock.send(reply)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> GarpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RateLimit:
    """Announcement packets per second per interface (token bucket): when dozens of addresses
    move at once, their bursts are spread out instead of flooding the switch.  The bucket
    starts full, so a single takeover's first pair always goes out at once."""

    def __init__(self, per_second: int = 0) -> None:
        self.per_second = per_second
        self.capacity = max(2.0, per_second / 4.0)
        self._tokens: dict[str, tuple[float, float]] = {}   # ifname -> (tokens, at)

    def delay(self, ifname: str, packets: int, now: float) -> float:
        """Take `packets` tokens; seconds to wait before sending them (0 = now)."""
        if self.per_second <= 0:
            return 0.0
        tokens, at = self._tokens.get(ifname, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.per_second) - packets
        self._tokens[ifname] = (tokens, now)
        return 0.0 if tokens >= 0 else -tokens / self.per_second


LIMIT = RateLimit()


async def _paced(ifname: str, packets: int) -> None:
    wait = LIMIT.delay(ifname, packets, asyncio.get_running_loop().time())
    if wait > 0:
        await asyncio.sleep(wait)


async def announce(ifname: str, ip: str, count: int = 5, interval: float = 0.2) -> int:
    """Send `count` request+reply pairs `interval` seconds apart; the first at once.

    Returns the number of pairs sent in full. The first pair raises on error
    (ValueError for a bad address, OSError if the interface is missing or down).
    Later errors are logged at debug level and show up only in the return value.
    The socket is re-opened before the next pair, so an interface that was
    re-created gets the rest. Never blocks the loop.
    """
    if count <= 0:
        return 0
    _ipv4_bytes(ip)
    return await burst(ifname, ip, count, interval, 2, GarpSender, GarpSender.send_pair, "gratuitous ARP")


async def burst(ifname: str, ip: str, count: int, interval: float, packets: int,
                open_sender: Callable[[str], Any], send: Callable[[Any, str], None], what: str) -> int:
    """The announcement loop shared by gratuitous ARP and neighbour advertisements: `count`
    sends `interval` s apart (the first at once), each paced by the interface's rate limit
    (`packets` per send). The first send raises; later errors are logged at debug level, count
    as unsent, and re-open the sender for the next one (the interface may have been re-created)."""
    loop = asyncio.get_running_loop()
    sender = open_sender(ifname)
    try:
        start = loop.time()
        await _paced(ifname, packets)
        send(sender, ip)
        sent = 1
        for k in range(1, count):
            await asyncio.sleep(max(0.0, start + k * interval - loop.time()))
            await _paced(ifname, packets)
            try:
                if sender is None:
                    sender = open_sender(ifname)
                send(sender, ip)
                sent += 1
            except OSError as exc:
                log.debug("%s %d/%d for %s on %s failed: %s", what, k + 1, count, ip, ifname, exc)
                if sender is not None:
                    sender.close()
                    sender = None
        return sent
    finally:
        if sender is not None:
            sender.close()
