"""The hb-appliance-only auth methods: sha256 framing, the AEAD envelope, replay windows."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config.authkeys import parse_authkeys
from appliance.errors import DecodeError
from appliance.wire import auth, sealed
from appliance.wire.message import MAX_PACKET, Message, Packet, decode_packet, encode_netstring

K1 = "0123456789abcdef-one"
K2 = "fedcba9876543210-two"
AEAD = ("aes256gcm", "chacha20poly1305")


def keys(text: str):
    return parse_authkeys(text, "authkeys")


def aead_keys(method: str, active: int = 1, key: str = K1):
    return keys(f"auth {active}\n{active} {method} {key}\n")


def msg(src: str = "node1", seq: int = 1, hg: str = "6b07c755", **extra: str) -> Message:
    m = Message.of(t="status", st="active", dt="7d0", protocol="1", src=src)
    m.add_bytes("srcuuid", bytes(range(16)))
    for k, v in (("seq", f"{seq:x}"), ("hg", hg), ("ts", "6b07c79f"), ("ttl", "3"), *extra.items()):
        m.add(k, v)
    return m


def opened(data: bytes, k) -> sealed.SealedPacket:
    assert auth.is_sealed(data)
    return auth.open_sealed(data, k)


# ------------------------------------------------------------------ key derivation


def test_hkdf_rfc5869_test_case_1() -> None:
    okm = sealed.hkdf_sha256(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_matches_cryptography() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for method in AEAD:
        info = f"hb-appliance {method} index 3".encode()
        ref = HKDF(hashes.SHA256(), 32, sealed.KEY_SALT, info).derive(K1.encode())
        assert sealed.derive_key(method, 3, K1.encode()) == ref
    assert sealed.derive_key("aes256gcm", 1, b"k") != sealed.derive_key("aes256gcm", 2, b"k")
    assert sealed.derive_key("aes256gcm", 1, b"k") != sealed.derive_key("chacha20poly1305", 1, b"k")


# ------------------------------------------------------------------ sha256


def test_sha256_is_hmac_sha256_in_the_306_framing() -> None:
    # RFC 4231 test case 2
    assert auth.digest("sha256", b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    k = keys(f"auth 4\n4 sha256 {K1}\n")
    packet = auth.sign(msg(), k)
    pkt = decode_packet(packet)
    assert pkt.fmt == "netstring" and pkt.trailer is not None
    index, hexdigest = pkt.trailer
    assert index == 4 and hexdigest == hmac.new(K1.encode(), pkt.signed, hashlib.sha256).hexdigest()
    assert auth.verify(pkt, k) is None
    assert auth.verify(pkt, keys(f"auth 4\n4 sha256 {K2}\n")) == "auth_mismatch"
    assert auth.verify(pkt, keys(f"auth 4\n4 sha1 {K1}\n")) == "auth_mismatch"


# ------------------------------------------------------------------ envelope


@pytest.mark.parametrize("method", AEAD)
def test_round_trip_and_layout(method: str) -> None:
    k = aead_keys(method, active=5)
    m = msg(seq=7)
    data = auth.sign(m, k)
    magic, version, index, alg, nonce = sealed.HEADER.unpack_from(data)
    assert (magic, version, index, alg) == (b"\x89HBA", 1, 5, sealed.ALGORITHMS[method])
    assert b"node1" not in data and b"status" not in data     # the content is encrypted
    pkt = opened(data, k)
    assert pkt.verdict is None and auth.verify(pkt, k) is None
    assert pkt.msg == m.without("auth") and pkt.sender == "node1" and pkt.generation == 0x6B07C755
    assert pkt.index == 5
    # every datagram gets its own nonce and a larger counter
    again = opened(auth.sign(m, k), k)
    assert again.counter > pkt.counter and auth.sign(m, k)[7:19] != data[7:19]


def test_a_306_decoder_drops_an_envelope() -> None:
    data = auth.sign(msg(), aead_keys("aes256gcm"))
    with pytest.raises(DecodeError) as info:
        decode_packet(data)
    assert info.value.reason == "bad_magic"   # 3.0.6 chooses by "###\n" / ">>>\n" as we do


@pytest.mark.parametrize("method", AEAD)
def test_wrong_key_index_and_method(method: str) -> None:
    data = auth.sign(msg(), aead_keys(method, active=1))
    assert opened(data, aead_keys(method, 1, K2)).verdict == "auth_mismatch"
    assert opened(data, aead_keys(method, 2)).verdict == "auth_bad_index"
    other = "chacha20poly1305" if method == "aes256gcm" else "aes256gcm"
    assert opened(data, aead_keys(other, 1)).verdict == "auth_mismatch"
    assert opened(data, keys(f"auth 1\n1 sha1 {K1}\n")).verdict == "auth_mismatch"
    # several indices: the one in the envelope is used, whatever the active one is
    both = keys(f"auth 2\n1 {method} {K1}\n2 {other} {K2}\n")
    assert opened(data, both).verdict is None


def test_plain_packet_for_an_aead_index_is_rejected() -> None:
    plain = auth.sign(msg(), keys(f"auth 1\n1 sha256 {K1}\n"))
    assert auth.verify(decode_packet(plain), aead_keys("aes256gcm")) == "auth_mismatch"


def test_sender_must_be_the_message_src() -> None:
    k = aead_keys("aes256gcm")
    entry = k.methods[1]
    header = sealed.HEADER.pack(sealed.MAGIC, 1, 1, 1, b"\0" * 12)
    body = encode_netstring(msg(src="node2"))
    plain = bytes([5]) + b"node1" + struct.pack(">QQ", 1, 1) + body
    cipher = sealed._cipher("aes256gcm", 1, entry.key)
    data = header + cipher.encrypt(header[7:], plain, header)
    assert opened(data, k).verdict == "auth_mismatch"


def test_authentic_but_malformed_inner_is_a_decode_error() -> None:
    k = aead_keys("chacha20poly1305")
    header = sealed.HEADER.pack(sealed.MAGIC, 1, 1, 2, b"\1" * 12)
    cipher = sealed._cipher("chacha20poly1305", 1, k.methods[1].key)
    for plain, reason in ((bytes([5]) + b"node1" + b"\0" * 16 + b"junk-junk", "bad_magic"),
                          (b"\0" * 30, "bad_envelope")):
        with pytest.raises(DecodeError) as info:
            opened(header + cipher.encrypt(header[7:], plain, header), k)
        assert info.value.reason == reason


def test_too_large_message_is_refused_when_sealing() -> None:
    with pytest.raises(ValueError):
        auth.sign(msg(big="x" * MAX_PACKET), aead_keys("aes256gcm"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(AEAD),
    fields=st.lists(st.tuples(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
                              st.text(st.characters(blacklist_categories=("Cs",),
                                                    blacklist_characters="\0"), max_size=40)),
                    max_size=8),
    src=st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=30),
)  # fmt: skip
def test_any_message_round_trips(method: str, fields: list[tuple[str, str]], src: str) -> None:
    k = aead_keys(method)
    m = msg(src=src)
    for name, value in fields:
        m.add(name, value)
    pkt = opened(auth.sign(m, k), k)
    assert pkt.verdict is None and pkt.msg == m and pkt.sender == src


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(AEAD), position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_any_altered_byte_is_rejected(method: str, position: int, flip: int) -> None:
    k = aead_keys(method)
    data = bytearray(auth.sign(msg(), k))
    data[position % len(data)] ^= flip
    try:
        pkt = auth.open_sealed(bytes(data), k) if auth.is_sealed(bytes(data)) else decode_packet(bytes(data))
    except DecodeError:
        return
    assert auth.verify(pkt, k) is not None


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(AEAD), cut=st.integers(0, 10_000))
def test_any_truncation_is_rejected(method: str, cut: int) -> None:
    k = aead_keys(method)
    data = auth.sign(msg(), k)
    short = data[: cut % len(data)]
    if not auth.is_sealed(short):
        return   # fewer than 4 bytes: the magic is gone, the receiver takes it for a bad packet
    try:
        pkt = auth.open_sealed(short, k)
    except DecodeError as exc:
        assert exc.reason == "truncated"
        return
    assert pkt.verdict == "auth_mismatch"


def test_crypto_missing_is_reported_per_method(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sealed, "_unavailable", {})
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers", None)
    why = sealed.unavailable("aes256gcm")
    assert why is not None and "cryptography" in why


# ------------------------------------------------------------------ replay


def sealed_pkt(sender: str = "node1", generation: int = 1, counter: int = 1) -> sealed.SealedPacket:
    return sealed.SealedPacket(Message(), "sealed", None, None, sender=sender, generation=generation,
                               counter=counter)


def test_replay_of_the_same_datagram_on_the_same_link() -> None:
    k = aead_keys("aes256gcm")
    guard = auth.ReplayGuard()
    data = auth.sign(msg(), k)
    assert guard.check(opened(data, k), "eth0") is None
    assert guard.check(opened(data, k), "eth0") == "replay"
    # the same datagram on a second heartbeat link is the normal redundancy, not a replay
    assert guard.check(opened(data, k), "eth1") is None
    # a failed or plain packet is not the guard's business
    assert guard.check(Packet(Message(), "netstring", b"", None), "eth0") is None
    refused = sealed.SealedPacket(Message(), "sealed", None, None, verdict="auth_mismatch")
    assert guard.check(refused, "eth0") is None


def test_generations_and_window() -> None:
    guard = sealed.ReplayGuard(window=8)
    assert guard.check(sealed_pkt(generation=5, counter=100), "l") is None
    assert guard.check(sealed_pkt(generation=4, counter=1000), "l") == "replay"    # older start
    assert guard.check(sealed_pkt(generation=5, counter=95), "l") is None          # reordered
    assert guard.check(sealed_pkt(generation=5, counter=95), "l") == "replay"
    assert guard.check(sealed_pkt(generation=5, counter=92), "l") == "replay"      # left the window
    assert guard.check(sealed_pkt(generation=5, counter=200), "l") is None
    assert guard.check(sealed_pkt(generation=6, counter=1), "l") is None           # restarted sender
    assert guard.check(sealed_pkt(generation=5, counter=300), "l") == "replay"
    assert guard.check(sealed_pkt("node2", 5, 1), "l") is None                     # per sender


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=200))
def test_window_model(counters: list[int]) -> None:
    """Against a plain model: accepted iff not seen before and within `window` of the newest."""
    window = 16
    guard = sealed.ReplayGuard(window=window)
    seen: set[int] = set()
    newest = 0
    for c in counters:
        expect_ok = c not in seen and (c > newest or newest - c < window)
        got = guard.check(sealed_pkt(counter=c), "eth0")
        assert (got is None) == expect_ok, (c, newest, sorted(seen))
        if expect_ok:
            seen.add(c)
            newest = max(newest, c)


def test_tracked_pairs_are_bounded() -> None:
    guard = sealed.ReplayGuard(max_tracked=4)
    for i in range(10):
        guard.check(sealed_pkt(f"n{i}"), "eth0")
    assert len(guard._state) == 4
