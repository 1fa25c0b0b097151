"""Golden vectors: every heartbeat packet captured from real 3.0.6 nodes (tests/golden/).

These pin the wire codec and both signatures byte for byte against the lab
captures described in spec sections 3, 4 and 14.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from appliance.wire.auth import digest, sign, verify
from appliance.wire.message import (
    FT_BINARY,
    FT_STRING,
    Message,
    classic_body,
    decode_packet,
    encode_classic,
    encode_netstring,
)
from appliance.wire.pcap import UdpDatagram, read_udp_datagrams

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@dataclass
class KeyEntry:
    index: int
    method: str
    key: bytes


@dataclass
class Keys:
    active: int
    methods: dict[int, KeyEntry] = field(default_factory=dict)


def parse_authkeys(text: str) -> Keys:
    """Just enough of the authkeys grammar for the lab files: `auth N` / `N method [key]`."""
    keys = Keys(active=-1)
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "auth":
            keys.active = int(words[1])
        else:
            key = words[2].encode() if len(words) > 2 else b""
            keys.methods[int(words[0])] = KeyEntry(int(words[0]), words[1], key)
    return keys


CAPTURES = {
    "hb306-2node-sha1.pcap": "authkeys.sha1",
    "hb306-3node-md5.pcap": "authkeys.md5",
    "hb306-crc.pcap": "authkeys.crc",
}

# Frames node1 sent while configured with the key "WRONGkey" (verify_auth.py flags them BAD).
WRONG_KEY_FRAMES = {202, 203, 204, 208, 212, 213, 216, 219, 222, 223, 226}
WRONG_KEYS = Keys(active=1, methods={1: KeyEntry(1, "md5", b"WRONGkey")})

EXPECTED_TYPES = {
    "hb306-2node-sha1.pcap": {
        "status": 157,
        "NS_ackmsg": 35,
        "resource": 20,
        "ask_resources": 9,
        "stonith": 2,
        "shutdone": 1,
        "reqnodes": 1,
        "repnodes": 1,
        "starting": 1,
        "query-cstatus": 1,
        "respond-cstatus": 1,
        "ip-request-resp": 1,
    },
    "hb306-3node-md5.pcap": {
        "status": 229,
        "NS_ackmsg": 73,
        "resource": 44,
        "reqnodes": 8,
        "ask_resources": 6,
        "repnodes": 4,
        "starting": 4,
        "stonith": 2,
        "shutdone": 2,
        "ip-request-resp": 1,
    },
    "hb306-crc.pcap": {"status": 22, "NS_ackmsg": 4},
}

# Field order per message type exactly as 3.0.6 sent it ("(1)" marks binary fields).
_TAIL = ("src", "(1)srcuuid", "seq", "hg", "ts", "ld", "ttl", "auth")
_DEST_TAIL = ("(1)destuuid",) + _TAIL
EXPECTED_ORDERS = {
    "status": {("t", "st", "dt", "protocol") + _TAIL},
    "NS_ackmsg": {("t", "dest", "ackseq", "(1)destuuid", "src", "(1)srcuuid", "hg", "ts", "ttl", "auth")},
    "resource": {
        ("t", "rsc_hold", "rtype", "isstable") + _TAIL,
        ("t", "rsc_hold", "rtype", "isstable", "info") + _TAIL,
        ("t", "rsc_hold", "info") + _TAIL,
    },
    "ask_resources": {("t", "rsc_hold", "info") + _TAIL},
    "stonith": {("t", "node", "result") + _TAIL},
    "shutdone": {("t", "st") + _TAIL},
    "starting": {("t",) + _TAIL},
    "reqnodes": {("t", "dest") + _DEST_TAIL},
    # NB: 3.0.6 puts dest *before* t here (spec 5.2 says t is always first).
    "repnodes": {("dest", "t", "nodelist", "delnodelist") + _DEST_TAIL},
    "query-cstatus": {("t", "dest", "cn", "from_id") + _DEST_TAIL},
    "respond-cstatus": {("t", "dest", "result", "cn", "to_id", "cs") + _DEST_TAIL},
    "ip-request-resp": {("t", "dest", "ipaddr", "weown", "ok") + _DEST_TAIL},
}


@cache
def datagrams(capture: str) -> tuple[UdpDatagram, ...]:
    return tuple(read_udp_datagrams(str(GOLDEN / capture)))


@cache
def keys_for(capture: str) -> Keys:
    return parse_authkeys((GOLDEN / CAPTURES[capture]).read_text())


def keys_that_signed(capture: str, frame: int) -> Keys:
    if capture == "hb306-3node-md5.pcap" and frame in WRONG_KEY_FRAMES:
        return WRONG_KEYS
    return keys_for(capture)


def all_packets() -> list[tuple[str, UdpDatagram]]:
    return [(cap, d) for cap in CAPTURES for d in datagrams(cap)]


def test_golden_capture_contents() -> None:
    for capture, expected in EXPECTED_TYPES.items():
        types = Counter(decode_packet(d.payload).msg.get("t") for d in datagrams(capture))
        assert dict(types) == expected, capture
        assert all(d.dport == 694 for d in datagrams(capture))


def test_golden_field_orders() -> None:
    seen: dict[str, set[tuple[str, ...]]] = {}
    for _cap, d in all_packets():
        msg = decode_packet(d.payload).msg
        order = tuple(n if t == FT_STRING else f"({t}){n}" for n, t, _v in msg.fields)
        seen.setdefault(msg.get("t") or "", set()).add(order)
    assert seen == EXPECTED_ORDERS


@pytest.mark.parametrize("capture", list(CAPTURES))
def test_golden_reencode_is_byte_identical(capture: str) -> None:
    for d in datagrams(capture):
        packet = decode_packet(d.payload)
        assert packet.fmt == "netstring"
        assert packet.signed is not None and packet.trailer is not None
        assert encode_netstring(packet.msg) == packet.signed
        assert d.payload.startswith(packet.signed)
        idx, hexdigest = packet.trailer
        token = f"{idx} {hexdigest}".encode()
        assert d.payload[len(packet.signed) :] == b"%d:%s," % (len(token), token)
        # uuids are 16 raw bytes; everything else is text
        for _name, ftype, value in packet.msg.fields:
            assert ftype in (FT_STRING, FT_BINARY)
            if ftype == FT_BINARY:
                assert len(value) == 16


@pytest.mark.parametrize("capture", list(CAPTURES))
def test_golden_verify(capture: str) -> None:
    keys = keys_for(capture)
    bad = []
    for d in datagrams(capture):
        reason = verify(decode_packet(d.payload), keys)
        if d.frame in WRONG_KEY_FRAMES and capture == "hb306-3node-md5.pcap":
            assert reason == "auth_mismatch"
            bad.append(d.frame)
        else:
            assert reason is None, d.frame
    if capture == "hb306-3node-md5.pcap":
        assert set(bad) == WRONG_KEY_FRAMES


def test_golden_wrong_key_packets_were_signed_with_wrongkey() -> None:
    for d in datagrams("hb306-3node-md5.pcap"):
        if d.frame in WRONG_KEY_FRAMES:
            assert verify(decode_packet(d.payload), WRONG_KEYS) is None


@pytest.mark.parametrize("capture", list(CAPTURES))
def test_golden_sign_reproduces_every_packet(capture: str) -> None:
    for d in datagrams(capture):
        msg = decode_packet(d.payload).msg
        assert msg.names()[-1] == "auth"
        keys = keys_that_signed(capture, d.frame)
        assert sign(msg.without("auth"), keys) == d.payload, d.frame
        assert sign(msg, keys) == d.payload  # an existing auth field is replaced


@pytest.mark.parametrize("capture", list(CAPTURES))
def test_golden_body_auth_via_classic_framing(capture: str) -> None:
    """The in-body auth field verifies too: re-frame each message as classic and check it."""
    for d in datagrams(capture):
        msg = decode_packet(d.payload).msg
        classic = decode_packet(encode_classic(msg))
        assert classic.fmt == "classic" and classic.msg == msg
        expected = "auth_mismatch" if verify(decode_packet(d.payload), keys_for(capture)) else None
        assert verify(classic, keys_for(capture)) == expected


# ---------------------------------------------------------------- spec 3.1 / 4.3 / 14

SPEC_PACKET = (
    b"###\n11:(0)t=status,12:(0)st=active,10:(0)dt=1770,13:(0)protocol=1,12:(0)src=node2,"
    b"27:(1)srcuuid=~\xd6x^\xb4\x08BL\x81\x07T\x13/\xddr\xbe,9:(0)seq=57,14:(0)hg=6b07c755,"
    b"14:(0)ts=6b07c79f,31:(0)ld=0.74 0.41 0.18 1/98 12629,8:(0)ttl=3,"
    b"50:(0)auth=1 12f5cf3fcbee6d2166ed23300630ac660cdbf116,%%%\n"
    b"42:1 2ff5ba43ec5819a40dcf34fa16dd4fa1f44b0568,"
)
SPEC_SIGNED_TEXT = (
    b"t=status\nst=active\ndt=1770\nprotocol=1\nsrc=node2\n(1)srcuuid=ftZ4XrQIQkyBB1QTL91yvg==\n"
    b"seq=57\nhg=6b07c755\nts=6b07c79f\nld=0.74 0.41 0.18 1/98 12629\nttl=3\n"
)


def test_spec_worked_example_sha1() -> None:
    keys = parse_authkeys("auth 1\n1 sha1 pbSecret42\n")
    packet = decode_packet(SPEC_PACKET)
    msg = packet.msg
    assert msg.names() == [
        "t", "st", "dt", "protocol", "src", "srcuuid", "seq", "hg", "ts", "ld", "ttl", "auth",
    ]  # fmt: skip
    assert msg.get("t") == "status" and msg.get("ld") == "0.74 0.41 0.18 1/98 12629"
    assert msg.get_bytes("srcuuid") == bytes.fromhex("7ed6785eb408424c810754132fdd72be")
    assert classic_body(msg) == SPEC_SIGNED_TEXT
    body_digest = digest("sha1", b"pbSecret42", SPEC_SIGNED_TEXT)
    assert body_digest == "12f5cf3fcbee6d2166ed23300630ac660cdbf116"
    assert msg.get("auth") == "1 " + body_digest
    assert packet.trailer == (1, "2ff5ba43ec5819a40dcf34fa16dd4fa1f44b0568")
    assert digest("sha1", b"pbSecret42", packet.signed or b"") == packet.trailer[1]
    assert verify(packet, keys) is None
    assert sign(msg.without("auth"), keys) == SPEC_PACKET
    # and it is frame 2 of the sha1 capture
    assert datagrams("hb306-2node-sha1.pcap")[1].payload == SPEC_PACKET


def test_spec_worked_example_built_from_scratch() -> None:
    msg = Message.of(t="status", st="active", dt="1770", protocol="1", src="node2")
    msg.add_bytes("srcuuid", bytes.fromhex("7ed6785eb408424c810754132fdd72be"))
    for name, value in [
        ("seq", "57"), ("hg", "6b07c755"), ("ts", "6b07c79f"),
        ("ld", "0.74 0.41 0.18 1/98 12629"), ("ttl", "3"),
    ]:  # fmt: skip
        msg.add(name, value)
    assert sign(msg, parse_authkeys("auth 1\n1 sha1 pbSecret42")) == SPEC_PACKET


def test_spec_crc_example() -> None:
    keys = parse_authkeys("auth 2\n2 crc\n")
    first = datagrams("hb306-crc.pcap")[0]
    assert first.payload.endswith(b",8:(0)ttl=4,17:(0)auth=2 1d64a17,%%%\n10:2 326f362e,")
    packet = decode_packet(first.payload)
    assert packet.msg.get("src") == "node2" and packet.msg.get("seq") == "1"
    assert digest("crc", b"", classic_body(packet.msg)) == "1d64a17"  # 7 digits: %lx
    assert packet.trailer == (2, "326f362e")
    assert verify(packet, keys) is None
    assert sign(packet.msg.without("auth"), keys) == first.payload
    # the digest really is printed without leading zeros: some trailers are short
    lengths = {len(decode_packet(d.payload).trailer[1]) for d in datagrams("hb306-crc.pcap")}
    assert min(lengths) < 8
