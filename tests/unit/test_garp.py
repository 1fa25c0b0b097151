"""Gratuitous ARP frame layout (spec §9.3): pure byte building, no sockets."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.net.garp import build_arp

macs = st.binary(min_size=6, max_size=6)
ipv4s = st.ip_addresses(v=4).map(str)

# Ethernet header, then the ARP body (RFC 826) at fixed offsets
DST, SRC, ETYPE = slice(0, 6), slice(6, 12), slice(12, 14)
HTYPE, PTYPE, HLEN, PLEN, OPER = slice(14, 16), slice(16, 18), 18, 19, slice(20, 22)
SHA, SPA, THA, TPA = slice(22, 28), slice(28, 32), slice(32, 38), slice(38, 42)


def _common(frame: bytes, mac: bytes, ip: str) -> None:
    assert len(frame) == 60
    assert frame[DST] == b"\xff" * 6
    assert frame[SRC] == mac
    assert frame[ETYPE] == b"\x08\x06"
    assert frame[HTYPE] == b"\x00\x01"
    assert frame[PTYPE] == b"\x08\x00"
    assert frame[HLEN] == 6 and frame[PLEN] == 4
    assert frame[SHA] == mac
    assert frame[SPA] == ipaddress.IPv4Address(ip).packed
    assert frame[TPA] == frame[SPA]
    assert frame[42:] == bytes(18)


@given(mac=macs, ip=ipv4s)
def test_request_fields(mac: bytes, ip: str) -> None:
    frame = build_arp(mac, ip, "request")
    _common(frame, mac, ip)
    assert struct.unpack("!H", frame[OPER])[0] == 1
    assert frame[THA] == bytes(6)


@given(mac=macs, ip=ipv4s)
def test_reply_fields(mac: bytes, ip: str) -> None:
    frame = build_arp(mac, ip, "reply")
    _common(frame, mac, ip)
    assert struct.unpack("!H", frame[OPER])[0] == 2
    assert frame[THA] == mac


def test_known_bytes() -> None:
    mac = bytes.fromhex("02fc00000001")
    frame = build_arp(mac, "10.231.0.100", "request")
    assert frame.hex() == (
        "ffffffffffff" "02fc00000001" "0806"
        "0001" "0800" "06" "04" "0001"
        "02fc00000001" "0ae70064" "000000000000" "0ae70064"
    ) + "00" * 18


@pytest.mark.parametrize(
    ("mac", "ip", "op"),
    [
        (b"\x00" * 5, "10.0.0.1", "request"),
        (b"\x00" * 7, "10.0.0.1", "reply"),
        (b"\x00" * 6, "10.0.0.256", "request"),
        (b"\x00" * 6, "fe80::1", "request"),
        (b"\x00" * 6, "10.0.0.1", "announce"),
    ],
)
def test_bad_input(mac: bytes, ip: str, op: str) -> None:
    with pytest.raises(ValueError):
        build_arp(mac, ip, op)
