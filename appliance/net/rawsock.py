"""Shared by the announcement and ping senders: a send-only raw Ethernet socket and the
Internet checksum (RFC 1071)."""

from __future__ import annotations

import errno
import socket
import struct

ARPHRD_ETHER = 1


def internet_checksum(data: bytes) -> int:
    """One's complement of the one's complement sum of 16-bit words (odd length: zero-padded)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether_socket(ifname: str, purpose: str) -> socket.socket:
    """An AF_PACKET socket bound to `ifname` that receives nothing (protocol 0, so no input
    ever queues up), non-blocking.  OSError: no such interface (ENODEV), no CAP_NET_RAW
    (EPERM), or not Ethernet (EINVAL, naming `purpose`)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))
        sock.setblocking(False)
        hatype = sock.getsockname()[3]
        if hatype != ARPHRD_ETHER:
            raise OSError(errno.EINVAL, f"{ifname} is not an Ethernet interface "
                                        f"(ARPHRD {hatype}); cannot send {purpose}")
    except BaseException:
        sock.close()
        raise
    return sock
