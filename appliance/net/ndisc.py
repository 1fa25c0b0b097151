"""Unsolicited IPv6 neighbour advertisements: the IPv6 counterpart of gratuitous ARP.

After taking over an IPv6 address we tell the link that it now lives at our MAC, as the
IPv6addr agent's send_ua and the kernel's own ndisc_notify do (RFC 4861 §7.2.6):

* Ethernet 33:33:00:00:00:01 <- our MAC, IPv6 from the address itself to ff02::1 (all nodes),
  hop limit 255 (receivers drop neighbour discovery that crossed a router);
* ICMPv6 type 136 code 0: override flag set (replace cached MACs), solicited flag clear (nobody
  asked), router flag only when configured (a host that claims to be a router changes its
  neighbours' default-router handling);
* target = the address, option 2 (target link-layer address) = our MAC.

Frames are built whole (checksum included) and sent from an AF_PACKET socket, like garp.py:
no dependency on source-address selection, and the bytes are testable.  Note that Linux
receivers update an existing neighbour entry from an unsolicited advertisement but do not
create one (net.ipv6.conf.*.accept_untracked_na = 0), which is all a takeover needs.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

# One token bucket per interface for ARP and advertisements alike ([announce] max_rate).
from appliance.net.garp import burst
from appliance.net.rawsock import ether_socket, internet_checksum

log = logging.getLogger(__name__)

ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LINKADDR = 2
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000
HOP_LIMIT = 255
ALL_NODES = "ff02::1"
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"  # 33:33 + low 32 bits of ff02::1 (RFC 2464)

_ETH = struct.Struct("!6s6sH")
_IP6 = struct.Struct("!IHBB16s16s")
_NA = struct.Struct("!BBHI16s")
_OPT = struct.Struct("!BB6s")
NA_LEN = _NA.size + _OPT.size  # 32: the IPv6 payload length
FRAME_LEN = _ETH.size + _IP6.size + NA_LEN  # 86


def _target(ip: str) -> bytes:
    try:
        addr = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        raise ValueError(f"{ip!r} is not a valid IPv6 address") from None
    if addr.version != 6:
        raise ValueError(f"{ip} is not an IPv6 address; neighbour advertisements are IPv6 only")
    if addr.is_multicast or addr.is_unspecified:
        raise ValueError(f"{ip} cannot be advertised (multicast or unspecified)")
    return addr.packed


def checksum(src: bytes, dst: bytes, payload: bytes, next_header: int = IPPROTO_ICMPV6) -> int:
    """The ICMPv6 checksum: one's complement sum over the IPv6 pseudo-header and the message
    (RFC 8200 §8.1, RFC 4443 §2.3); the message's own checksum field must be zero."""
    return internet_checksum(src + dst + struct.pack("!I3xB", len(payload), next_header) + payload)


def build_na(src_mac: bytes, ip: str, router: bool = False) -> bytes:
    """A complete Ethernet frame carrying an unsolicited neighbour advertisement for `ip`.

    Override set, solicited clear, router as given; sent from `ip` to ff02::1 with hop limit
    255 and a target link-layer address option holding src_mac.
    """
    mac = bytes(src_mac)
    if len(mac) != 6:
        raise ValueError(f"MAC address must be 6 bytes, got {len(mac)}")
    target = _target(ip)
    dst = ipaddress.IPv6Address(ALL_NODES).packed
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    option = _OPT.pack(ND_OPT_TARGET_LINKADDR, 1, mac)  # length is in units of 8 octets
    body = _NA.pack(ND_NEIGHBOR_ADVERT, 0, 0, flags, target) + option
    body = body[:2] + struct.pack("!H", checksum(target, dst, body)) + body[4:]
    ip6 = _IP6.pack(6 << 28, len(body), IPPROTO_ICMPV6, HOP_LIMIT, target, dst)
    return _ETH.pack(ALL_NODES_MAC, mac, ETH_P_IPV6) + ip6 + body


@dataclass(frozen=True)
class Advert:
    """A decoded neighbour advertisement (see parse_na)."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    hop_limit: int
    target: str
    router: bool
    solicited: bool
    override: bool
    lladdr: str  # from the target link-layer address option, "" if absent
    checksum_ok: bool


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def parse_na(frame: bytes) -> Advert | None:
    """Decode an Ethernet frame holding an ICMPv6 neighbour advertisement; None otherwise.

    No extension headers are followed (neighbour discovery never uses them).
    """
    if len(frame) < _ETH.size + _IP6.size + _NA.size:
        return None
    dst_mac, src_mac, etype = _ETH.unpack_from(frame)
    if etype != ETH_P_IPV6:
        return None
    vtf, plen, nxt, hops, src, dst = _IP6.unpack_from(frame, _ETH.size)
    body = frame[_ETH.size + _IP6.size:][:plen]
    if vtf >> 28 != 6 or nxt != IPPROTO_ICMPV6 or len(body) < _NA.size or len(body) != plen:
        return None
    kind, code, _csum, flags, target = _NA.unpack_from(body)
    if kind != ND_NEIGHBOR_ADVERT or code != 0:
        return None
    lladdr = ""
    off = _NA.size
    while off + 2 <= len(body):
        opt, units = body[off], body[off + 1]
        if units == 0 or off + 8 * units > len(body):
            break
        if opt == ND_OPT_TARGET_LINKADDR and units == 1:
            lladdr = _mac(body[off + 2:off + 8])
        off += 8 * units
    zeroed = body[:2] + b"\x00\x00" + body[4:]
    return Advert(
        src_mac=_mac(src_mac), dst_mac=_mac(dst_mac),
        src_ip=str(ipaddress.IPv6Address(src)), dst_ip=str(ipaddress.IPv6Address(dst)),
        hop_limit=hops, target=str(ipaddress.IPv6Address(target)),
        router=bool(flags & NA_FLAG_ROUTER), solicited=bool(flags & NA_FLAG_SOLICITED),
        override=bool(flags & NA_FLAG_OVERRIDE), lladdr=lladdr,
        checksum_ok=checksum(src, dst, zeroed) == _csum,
    )


class NaSender:
    """A non-blocking AF_PACKET socket bound to one Ethernet interface, for sending only.

    Raises OSError when the interface does not exist (ENODEV), when we lack CAP_NET_RAW
    (EPERM), or when it is not an Ethernet interface (EINVAL).
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        sock = ether_socket(ifname, "advertisements")
        self._sock: socket.socket | None = sock

    def send(self, ip: str, router: bool = False) -> None:
        """Send one advertisement for `ip` now, with the interface's current MAC."""
        if self._sock is None:
            raise OSError(errno.EBADF, "NaSender is closed")
        mac = bytes(self._sock.getsockname()[4][:6])
        if len(mac) != 6:  # the kernel unbinds the socket when the interface goes away
            raise OSError(errno.ENODEV, f"interface {self.ifname} is gone")
        self._sock.send(build_na(mac, ip, router))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> NaSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def announce(ifname: str, ip: str, count: int = 5, interval: float = 0.2,
                   router: bool = False) -> int:
    """Send `count` advertisements `interval` seconds apart, the first at once.

    Returns how many were sent. The first one raises on error (ValueError for a bad address,
    OSError if the interface is missing or down); later errors are logged at debug level and
    show only in the count, and the socket is re-opened for the next one (the interface may
    have been re-created). Paced by garp's per-interface rate limit. Never blocks the loop.
    """
    if count <= 0:
        return 0
    _target(ip)
    return await burst(ifname, ip, count, interval, 1, NaSender,
                       lambda sender, addr: sender.send(addr, router), "neighbour advertisement")
