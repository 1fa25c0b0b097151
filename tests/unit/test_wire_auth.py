"""Digest algorithms, signing and verification (spec section 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import DecodeError
from appliance.wire.auth import VERIFY_REASONS, auth_token, crc, digest, sign, verify
from appliance.wire.message import (
    MAX_PACKET,
    Message,
    Packet,
    classic_body,
    decode_packet,
    encode_classic,
    encode_netstring,
)
from appliance.wire.pcap import read_udp_datagrams

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@dataclass
class Entry:
    index: int
    method: str
    key: bytes | str | None


@dataclass
class Keys:
    active: int
    methods: dict[int, Entry] = field(default_factory=dict)


def keys(active: int, *entries: tuple[int, str, bytes | str | None]) -> Keys:
    return Keys(active, {i: Entry(i, m, k) for i, m, k in entries})


SHA1 = keys(1, (1, "sha1", b"pbSecret42"))
MD5 = keys(1, (1, "md5", b"md5Key-Xy"))
CRC = keys(2, (2, "crc", None))
ALL_KEYS = [SHA1, MD5, CRC]


def sample() -> Message:
    msg = Message.of(t="status", st="active", dt="1770", protocol="1", src="node2")
    return msg.add_bytes("srcuuid", bytes(range(16))).add("seq", "1").add("ttl", "3")


# ---------------------------------------------------------------- digests


def test_crc_matches_the_crc32_cksum_catalogue_entry() -> None:
    # poly 04C11DB7, init 0, no reflection, xorout ffffffff: reveng "CRC-32/CKSUM"
    assert crc(b"123456789") == "765e7680"
    assert crc(b"") == "ffffffff"
    assert digest("crc", b"ignored", b"123456789") == "765e7680"


def test_crc_is_printed_without_leading_zeros() -> None:
    # 3.0.6 formats with %lx: one value in 16 has fewer than 8 digits (spec 14: "1d64a17").
    short = next(d for d in (i.to_bytes(2, "big") for i in range(1 << 16)) if len(crc(d)) < 8)
    assert int(crc(short), 16) < 0x10000000 and not crc(short).startswith("0")


def test_hmac_rfc2202_vectors() -> None:
    data = b"what do ya want for nothing?"
    assert digest("md5", b"Jefe", data) == "750c783e6ab0b503eaa86e310a5db738"
    assert digest("sha1", b"Jefe", data) == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    long_key = b"\xaa" * 80  # longer than the block: hashed first
    assert (
        digest("sha1", long_key, b"Test Using Larger Than Block-Size Key - Hash Key First")
        == "aa4ae5e15272d00e95705637ce8a3b55ed402112"
    )


def test_unknown_method() -> None:
    with pytest.raises(ValueError):
        digest("sha512", b"k", b"data")


# ---------------------------------------------------------------- sign


def test_sign_layout() -> None:
    msg = sample()
    packet = sign(msg, SHA1)
    body = msg.copy().add("auth", "1 " + digest("sha1", b"pbSecret42", classic_body(msg)))
    signed = encode_netstring(body)
    token = b"1 " + digest("sha1", b"pbSecret42", signed).encode()
    assert packet == signed + b"%d:%s," % (len(token), token)
    assert msg.names()[-1] == "ttl"  # sign() does not modify its argument


def test_sign_without_body_auth() -> None:
    packet = sign(sample().add("auth", "stale"), MD5, include_body_auth=False)
    decoded = decode_packet(packet)
    assert "auth" not in decoded.msg
    assert decoded.msg == sample()
    assert verify(decoded, MD5) is None


def test_sign_uses_the_active_index_and_str_keys() -> None:
    multi = keys(3, (1, "md5", b"other"), (3, "sha1", "pbSecret42"))
    decoded = decode_packet(sign(sample(), multi))
    assert decoded.trailer is not None and decoded.trailer[0] == 3
    assert decoded.msg.get("auth", "").startswith("3 ")
    assert verify(decoded, keys(1, (3, "sha1", b"pbSecret42"))) is None


def test_sign_errors() -> None:
    with pytest.raises(ValueError):
        sign(sample(), keys(4, (1, "sha1", b"k")))  # active index undefined
    with pytest.raises(ValueError):
        sign(sample(), keys(1, (1, "rot13", b"k")))
    with pytest.raises(ValueError):
        sign(Message.of(big="x" * MAX_PACKET), SHA1)
    with pytest.raises(ValueError):
        sign(Message.of(**{"a=b": "x"}), SHA1)


def test_auth_token() -> None:
    assert auth_token(CRC, b"123456789") == "2 765e7680"


# ---------------------------------------------------------------- verify


@pytest.mark.parametrize("good", ALL_KEYS)
def test_verify_roundtrip_and_failures(good: Keys) -> None:
    packet = sign(sample(), good)
    assert verify(decode_packet(packet), good) is None
    wrong_key = keys(good.active, (good.active, good.methods[good.active].method, b"WRONGkey"))
    if good is not CRC:  # crc has no key
        assert verify(decode_packet(packet), wrong_key) == "auth_mismatch"
    assert verify(decode_packet(packet), keys(9, (9, "sha1", b"k"))) == "auth_bad_index"
    assert (
        verify(decode_packet(packet), keys(good.active, (good.active, "sha512", b"k")))
        == "auth_unknown_method"
    )
    # no trailer
    end = packet.index(b"%%%\n") + 4
    assert verify(decode_packet(packet[:end]), good) == "auth_missing"


def test_verify_netstring_ignores_the_body_auth_field() -> None:
    """3.0.6 checks only the trailer of a netstring packet (spec 4.4)."""
    msg = sample().add("auth", "1 not-a-real-digest")
    signed = encode_netstring(msg)
    token = auth_token(SHA1, signed).encode()
    packet = decode_packet(signed + b"%d:%s," % (len(token), token))
    assert verify(packet, SHA1) is None


def test_verify_detects_any_change_to_signed_bytes() -> None:
    packet = sign(sample(), SHA1)
    end = packet.index(b"%%%\n") + 4
    for pos in range(end):
        mutated = bytearray(packet)
        mutated[pos] ^= 0x01
        try:
            decoded = decode_packet(bytes(mutated))
        except DecodeError:
            continue
        assert verify(decoded, SHA1) == "auth_mismatch", pos


def test_verify_classic_framing() -> None:
    msg = decode_packet(sign(sample(), SHA1)).msg
    classic = decode_packet(encode_classic(msg))
    assert classic.fmt == "classic"
    assert verify(classic, SHA1) is None
    assert verify(classic, keys(1, (1, "sha1", b"WRONGkey"))) == "auth_mismatch"
    assert verify(classic, keys(1, (1, "crc", None))) == "auth_mismatch"
    assert verify(classic, keys(2, (2, "sha1", b"pbSecret42"))) == "auth_bad_index"
    tampered = decode_packet(encode_classic(msg.copy().set("st", "dead")))
    assert verify(tampered, SHA1) == "auth_mismatch"
    assert verify(decode_packet(encode_classic(msg.without("auth"))), SHA1) == "auth_missing"
    for bad in ["", "1", "1  ab", "x ab", "123 ab", "1 a b", "1 \u00e9", "1 ab\n"]:
        odd = decode_packet(encode_classic(msg.without("auth").add("auth", bad)))
        assert verify(odd, SHA1) == "auth_missing", bad


def test_verify_classic_signed_by_hand() -> None:
    msg = sample()
    msg.add("auth", "2 " + crc(classic_body(msg)))
    text = encode_classic(msg) + b"\0"
    assert verify(decode_packet(text), CRC) is None


def test_verify_never_raises_on_odd_packets() -> None:
    odd = Packet(msg=Message(), fmt="netstring", signed=None, trailer=(1, "ab"))
    assert verify(odd, SHA1) == "auth_missing"
    assert verify(Packet(Message(), "classic", None, None), SHA1) == "auth_missing"
    weird = Packet(Message.of(auth="1 \udcff"), "classic", None, None)
    assert verify(weird, SHA1) == "auth_missing"
    assert verify(decode_packet(sign(sample(), SHA1)), Keys(1, {})) == "auth_bad_index"


def test_reasons_are_documented() -> None:
    assert VERIFY_REASONS == {
        "auth_missing",
        "auth_bad_index",
        "auth_mismatch",
        "auth_unknown_method",
    }


NAMES = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@given(
    st.lists(st.tuples(NAMES, st.text(st.characters(blacklist_categories=("Cs",),
                                                    blacklist_characters="\0"), max_size=30)),
             max_size=12),
    st.sampled_from(ALL_KEYS),
)  # fmt: skip
@settings(max_examples=200)
def test_sign_verify_property(pairs: list[tuple[str, str]], good: Keys) -> None:
    msg = Message([(n, 0, v) for n, v in pairs])
    packet = sign(msg, good)
    decoded = decode_packet(packet)
    assert verify(decoded, good) is None
    assert decoded.msg.without("auth") == msg.without("auth")
    assert sign(decoded.msg, good) == packet  # re-signing is deterministic
    # 0x13 reads back as newline in classic, which renders as 0x13 again: still verifies
    assert verify(decode_packet(encode_classic(decoded.msg)), good) is None


@given(st.binary(max_size=300), st.sampled_from(ALL_KEYS))
@settings(max_examples=200)
def test_verify_of_random_decodable_input_never_raises(data: bytes, good: Keys) -> None:
    for candidate in (data, b"###\n" + data, b">>>\n" + data):
        try:
            packet = decode_packet(candidate)
        except DecodeError:
            continue
        assert verify(packet, good) in VERIFY_REASONS | {None}


def test_golden_packets_verify_only_with_their_own_keys() -> None:
    for name, good in [("hb306-2node-sha1.pcap", SHA1), ("hb306-crc.pcap", CRC)]:
        for d in read_udp_datagrams(str(GOLDEN / name)):
            packet = decode_packet(d.payload)
            assert verify(packet, good) is None
            for other in ALL_KEYS:
                if other is not good:
                    assert verify(packet, other) in ("auth_bad_index", "auth_mismatch")
