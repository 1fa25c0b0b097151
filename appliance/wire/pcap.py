"""Minimal classic-pcap reader: pulls IPv4/UDP payloads out of a capture.

Used by the golden tests and by diagnostic tools that replay lab captures. It
understands only what tcpdump writes for our lab: the classic pcap container
(both byte orders, micro- or nanosecond timestamps), link types Ethernet
(optionally 802.1Q tagged), Linux cooked v1/v2, BSD loopback and raw IP, and
unfragmented IPv4 carrying UDP. Everything else is skipped, never guessed at.

`udp_datagrams` is pure (bytes in, records out); `read_udp_datagrams` is the
one convenience that touches the file system.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

HEARTBEAT_PORT = 694

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # bare IP packet
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = (0x8100, 0x88A8)


@dataclass(frozen=True)
class Frame:
    """One captured link-layer frame."""

    number: int  # 1-based, as Wireshark/tcpdump number them
    ts: float  # seconds since the epoch
    linktype: int
    data: bytes


@dataclass(frozen=True)
class UdpDatagram:
    """The UDP payload of one captured frame plus its addressing."""

    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def iter_frames(data: bytes) -> Iterator[Frame]:
    """Yield every frame of a classic pcap file; ValueError if it is not one."""
    fmt = _MAGIC.get(data[:4])
    if fmt is None or len(data) < 24:
        raise ValueError("not a classic pcap file (pcapng is not supported)")
    endian, tick = fmt
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF  # top bits: FCS info
    pos, number = 24, 0
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[pos : pos + 16])
        pos += 16
        if pos + incl > len(data):
            break  # file cut short mid-record (capture still running)
        number += 1
        yield Frame(number, sec + frac * tick, linktype, data[pos : pos + incl])
        pos += incl


def _ip_offset(linktype: int, frame: bytes) -> int | None:
    """Offset of the IPv4 header inside a frame, or None when it carries no IPv4."""
    if linktype == LINKTYPE_ETHERNET:
        off, etype = 14, int.from_bytes(frame[12:14], "big")
        while etype in _ETHERTYPE_VLAN and len(frame) >= off + 4:
            etype = int.from_bytes(frame[off + 2 : off + 4], "big")
            off += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        off, etype = 16, int.from_bytes(frame[14:16], "big")
    elif linktype == LINKTYPE_LINUX_SLL2:
        off, etype = 20, int.from_bytes(frame[0:2], "big")
    elif linktype == LINKTYPE_NULL:
        # The family is in the capturing host's byte order; 2 is AF_INET everywhere.
        family = frame[0:4]
        return 4 if family in (b"\x02\x00\x00\x00", b"\x00\x00\x00\x02") else None
    elif linktype == LINKTYPE_RAW:
        return 0
    else:
        return None
    return off if etype == _ETHERTYPE_IPV4 else None


def _udp_of(frame: Frame) -> UdpDatagram | None:
    off = _ip_offset(frame.linktype, frame.data)
    if off is None:
        return None
    ip = frame.data[off:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    if ihl < 20 or total < ihl + 8 or len(ip) < total:
        return None  # bad header or truncated by the snap length
    if int.from_bytes(ip[6:8], "big") & 0x3FFF:
        return None  # a fragment (MF set or non-zero offset): no reassembly here
    udp = ip[ihl:total]
    sport, dport, ulen = struct.unpack(">HHH", udp[:6])
    if ulen < 8 or ulen > len(udp):
        return None
    return UdpDatagram(
        frame=frame.number,
        ts=frame.ts,
        src=".".join(str(b) for b in ip[12:16]),
        sport=sport,
        dst=".".join(str(b) for b in ip[16:20]),
        dport=dport,
        payload=bytes(udp[8:ulen]),
    )


def udp_datagrams(data: bytes, port: int | None = HEARTBEAT_PORT) -> list[UdpDatagram]:
    """Every IPv4/UDP datagram in a capture, in capture order.

    With `port` set, only datagrams whose source or destination port matches.
    """
    out: list[UdpDatagram] = []
    for frame in iter_frames(data):
        dgram = _udp_of(frame)
        if dgram is not None and (port is None or port in (dgram.sport, dgram.dport)):
            out.append(dgram)
    return out


def read_udp_datagrams(path: str, port: int | None = HEARTBEAT_PORT) -> list[UdpDatagram]:
    """`udp_datagrams` over a file on disk."""
    with open(path, "rb") as fh:
        return udp_datagrams(fh.read(), port)
