"""Message model, netstring/classic encoders and the hostile-input-proof decoder."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.errors import DecodeError
from appliance.wire.message import (
    DECODE_REASONS,
    FT_BINARY,
    FT_COMPRESSED,
    FT_LIST,
    FT_STRING,
    FT_STRUCT,
    MAX_DEPTH,
    MAX_PACKET,
    Message,
    _decode_netstring_full,
    _fast_netstring,
    ack_dest,
    classic_body,
    decode_packet,
    encode_classic,
    encode_netstring,
    to_wire,
)
from appliance.wire.pcap import read_udp_datagrams

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_PAYLOADS = [
    d.payload for cap in sorted(GOLDEN.glob("*.pcap")) for d in read_udp_datagrams(str(cap))
]


def reason_of(data: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        decode_packet(data)
    return info.value.reason


# ---------------------------------------------------------------- Message


def test_message_lookup_returns_first_match_of_the_right_type() -> None:
    msg = Message([("x", FT_BINARY, b"raw"), ("x", FT_STRING, "one"), ("x", FT_STRING, "two")])
    assert msg.get("x") == "one"
    assert msg.get_bytes("x") == b"raw"
    assert msg.get("missing") is None and msg.get("missing", "d") == "d"
    assert msg.get_bytes("missing") is None
    assert "x" in msg and "y" not in msg
    assert msg.names() == ["x", "x", "x"]


def test_message_builders() -> None:
    msg = Message.of(t="status", st="active", dt="1770")
    assert msg.names() == ["t", "st", "dt"]
    assert msg.add("a", "1").add_bytes("u", bytearray(b"\x00\x01")) is msg
    assert msg.fields[-1] == ("u", FT_BINARY, b"\x00\x01")
    assert msg.without("st").names() == ["t", "dt", "a", "u"]
    assert msg.names() == ["t", "st", "dt", "a", "u"]  # without() copies
    msg.set("st", "dead").set("new", "v")
    assert msg.get("st") == "dead" and msg.names()[-1] == "new"
    assert msg.copy() == msg and msg.copy() is not msg
    assert Message.of(a="1") != Message.of(a="2")
    assert len(msg) == 6 and list(msg)[0] == ("t", FT_STRING, "status")
    with pytest.raises(TypeError):
        msg.add("x", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        msg.add_bytes("x", "text")  # type: ignore[arg-type]


def test_message_struct_and_list_helpers() -> None:
    inner = Message.of(a="1")
    msg = Message().add_struct("s", inner).add_list("l", ["x", "y"])
    assert msg.get_struct("s") == inner and msg.get_list("l") == ["x", "y"]
    assert msg.get("s") is None


def test_message_repr() -> None:
    msg = Message.of(t="status").add_bytes("u", b"\xab\xcd")
    assert repr(msg) == "Message(t='status', (1)u=abcd)"


# ---------------------------------------------------------------- encoders


def test_encode_netstring_exact() -> None:
    msg = Message.of(t="x", empty="").add_bytes("b", b"\x00,\n=")
    assert encode_netstring(msg) == b"###\n6:(0)t=x,9:(0)empty=,9:(1)b=\x00,\n=,%%%\n"


def test_encode_netstring_nested_struct_and_list() -> None:
    msg = Message.of(t="x").add_struct("s", Message.of(a="1")).add_list("l", ["ab", "c"])
    inner = b"###\n6:(0)a=1,%%%\n"
    assert encode_netstring(msg) == (
        b"###\n6:(0)t=x,%d:(2)s=%s,14:(3)l=2:ab,1:c,,%%%%%%\n" % (5 + len(inner), inner)
    )


def test_encode_classic_exact() -> None:
    msg = Message.of(t="x", multi="a\nb").add_bytes("u", b"\xff\x00")
    msg.add_struct("s", Message.of(a="1").add_struct("d", Message.of(b="2")))
    msg.add_list("l", ["ab"]).add("auth", "1 00")
    assert encode_classic(msg) == (
        b">>>\nt=x\nmulti=a\x13b\n(1)u=/wA=\n"
        b"(2)s=>>>\x14a=1\x14(2)d=>>>\x15b=2\x15<<<\x15\x14<<<\x14\n"
        b"(3)l=2:ab,\nauth=1 00\n<<<\n"
    )


def test_classic_body_skips_only_top_level_auth() -> None:
    msg = Message.of(t="x", auth="1 ff").add_struct("s", Message.of(auth="kept"))
    assert classic_body(msg) == b"t=x\n(2)s=>>>\x14auth=kept\x14<<<\x14\n"


@pytest.mark.parametrize(
    "msg",
    [
        Message([("", FT_STRING, "x")]),
        Message([("a=b", FT_STRING, "x")]),
        Message([("a\nb", FT_STRING, "x")]),
        Message([("a", FT_STRING, "nul\0")]),
        Message([("a", FT_STRING, b"bytes")]),
        Message([("a", FT_BINARY, "text")]),
        Message([("a", FT_LIST, [])]),
        Message([("a", FT_LIST, [""])]),
        Message([("a", FT_STRUCT, "not a message")]),
        Message([("a", FT_COMPRESSED, Message())]),
        Message([("a", 9, "x")]),
        Message([(1, FT_STRING, "x")]),  # type: ignore[list-item]
    ],
)
def test_encoders_reject_what_cannot_be_sent(msg: Message) -> None:
    with pytest.raises(ValueError):
        encode_netstring(msg)
    with pytest.raises(ValueError):
        encode_classic(msg)


def nested(depth: int) -> Message:
    msg = Message.of(leaf="1")
    for _ in range(depth):
        msg = Message().add_struct("s", msg)
    return msg


def test_depth_limit_is_symmetric() -> None:
    ok = nested(MAX_DEPTH)
    assert decode_packet(encode_netstring(ok)).msg == ok
    assert decode_packet(encode_classic(ok)).msg == ok
    with pytest.raises(ValueError):
        encode_netstring(nested(MAX_DEPTH + 1))
    with pytest.raises(ValueError):
        encode_classic(nested(MAX_DEPTH + 1))
    inner = b"###\n6:(0)a=1,%%%\n"
    for _ in range(MAX_DEPTH + 1):
        body = b"(2)s=" + inner
        inner = b"###\n%d:%s,%%%%%%\n" % (len(body), body)
    assert reason_of(inner) == "too_deep"


def test_classic_rejects_struct_containing_its_newline_symbol() -> None:
    msg = Message().add_struct("s", Message.of(a="has\x14"))
    with pytest.raises(ValueError):
        encode_classic(msg)
    assert decode_packet(encode_netstring(msg)).msg == msg  # netstring carries it fine


# ---------------------------------------------------------------- decoder


def test_decode_classic_variants() -> None:
    msg = Message.of(t="x", v="a\nb").add_bytes("u", b"\x01")
    text = encode_classic(msg)
    assert decode_packet(text).msg == msg
    assert decode_packet(text + b"\0").msg == msg  # 3.0.6 may append a NUL
    assert decode_packet(b">>>\n\r\nt=x\n\nv=a\x13b\n(1)u=AQ==\n<<<\n").msg == msg
    packet = decode_packet(text)
    assert packet.fmt == "classic" and packet.signed is None and packet.trailer is None
    assert decode_packet(b">>>\nt=\n<<<\n").msg == Message.of(t="")
    assert decode_packet(b">>>\n<<<\n").msg == Message()


def test_decode_netstring_without_trailer() -> None:
    packet = decode_packet(T)
    assert packet.msg == Message.of(t="x") and packet.trailer is None
    assert packet.signed == T
    assert decode_packet(T + b"5:1 abc,\0").trailer == (1, "abc")
    assert decode_packet(T + b"5:1 abc,").signed == T


def ns(*bodies: bytes, trailer: bytes = b"") -> bytes:
    """A netstring message with correct lengths around each field body."""
    return b"###\n" + b"".join(b"%d:%s," % (len(b), b) for b in bodies) + b"%%%\n" + trailer


T = b"###\n6:(0)t=x,%%%\n"  # a minimal valid message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"###\n" + b"x" * MAX_PACKET, "too_large"),
        (b"##", "bad_magic"),
        (b"\0", "bad_magic"),
        (b"GET / HTTP/1.0\r\n", "bad_magic"),
        (b"###\n", "truncated"),
        (b"###\n6:(0)t=x,", "truncated"),
        (b"###\n6:(0)t=x,%%", "truncated"),
        (b"###\n6:(0)t=x", "truncated"),
        (b"###\n60:(0)t=x,%%%\n", "truncated"),
        (b"###\n12", "truncated"),
        (b"###\n06:(0)t=x,%%%\n", "bad_length"),
        (b"###\n6x(0)t=x,%%%\n", "bad_length"),
        (b"###\n:(0)t=x,%%%\n", "bad_length"),
        (b"###\n5:(0)t=x,%%%\n", "bad_length"),
        (b"###\n-6:(0)t=x,%%%\n", "bad_length"),
        (b"###\n99999999:x,%%%\n", "bad_length"),
        (ns(b"[0]t=x"), "bad_field"),
        (ns(b"(0)t-x"), "bad_field"),
        (ns(b"(0)=x"), "bad_field"),
        (ns(b"(0)"), "bad_field"),
        (ns(b"(0)t=\0"), "bad_field"),
        (ns(b"(0)\0=x"), "bad_field"),
        (ns(b"(0)a\nb=x"), "bad_field"),
        (ns(b"(2)s=xx"), "bad_field"),
        (ns(b"(2)s=" + T + b"!"), "bad_field"),
        (ns(b"(2)s=" + T[:-1]), "truncated"),
        (ns(b"(3)l="), "bad_field"),
        (ns(b"(3)l=0:,"), "bad_field"),
        (ns(b"(3)l=2:a,"), "bad_field"),
        (ns(b"(3)l=1:a"), "bad_field"),
        (ns(b"(3)l=1:\0,"), "bad_field"),
        (ns(b"(9)t=x"), "bad_type"),
        (ns(b"(x)t=x"), "bad_type"),
        (ns(b"(5)t=x"), "bad_type"),
        (ns(b"(4)t=x"), "compressed"),
        (T + b"5:1abc,", "bad_trailer"),
        (T + b"4:1 ab", "bad_trailer"),
        (T + b"5:x abc,", "bad_trailer"),
        (T + b"7:123 abc,", "bad_trailer"),
        (T + b"5:1 a c,", "bad_trailer"),
        (T + b"2:1 ,", "bad_trailer"),
        (T + b"5:1 \xffbc,", "bad_trailer"),
        (T + b"junk", "bad_trailer"),
        (T + b"5:1 abc,more", "trailing_data"),
        (b">>>\nt=x\n", "truncated"),
        (b">>>\nt=x", "truncated"),
        (b">>>\nt=x\n<<<", "truncated"),
        (b">>>\nt=x\n<<<\nmore", "trailing_data"),
        (b">>>\nno equals\n<<<\n", "bad_field"),
        (b">>>\n=x\n<<<\n", "bad_field"),
        (b">>>\nt=x\0y\n<<<\n", "bad_field"),
        (b">>>\n(1)u=not base64!\n<<<\n", "bad_field"),
        (b">>>\n(1)u=AQ\n<<<\n", "bad_field"),
        (b">>>\n(1=x\n<<<\n", "bad_field"),
        (b">>>\n(1)=x\n<<<\n", "bad_field"),
        (b">>>\n(2)s=t=x\n<<<\n", "bad_field"),
        (b">>>\n(2)s=>>>\x14t=x\x14\n<<<\n", "truncated"),
        (b">>>\n(3)l=\n<<<\n", "bad_field"),
        (b">>>\n(0)t=x\n<<<\n", "bad_type"),
        (b">>>\n(7)t=x\n<<<\n", "bad_type"),
        (b">>>\n(4)t=eJw=\n<<<\n", "compressed"),
    ],
)
def test_decode_reasons(data: bytes, reason: str) -> None:
    assert reason in DECODE_REASONS
    assert reason_of(data) == reason


def test_decode_accepts_any_bytes_like() -> None:
    data = encode_netstring(Message.of(t="x"))
    assert decode_packet(bytearray(data)).msg == decode_packet(memoryview(data)).msg


def test_text_is_byte_exact_for_non_utf8() -> None:
    raw = ns(b"(0)n\xff=\xc3\x28\xe9")
    msg = decode_packet(raw).msg
    assert encode_netstring(msg) == raw
    assert msg.get("n\udcff") == "\udcc3(\udce9"
    assert decode_packet(ns("(0)n=café €".encode())).msg.get("n") == "café €"


# ---------------------------------------------------------------- properties

NAME = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=10)
# Any text 3.0.6 can carry: no NUL, no lone surrogates that did not come off the wire.
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))
ESCAPED = st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape"))
NS_TEXT = st.one_of(ANY_TEXT, ESCAPED.filter(lambda s: "\0" not in s))
# Classic reads 0x13 back as newline and reserves 0x0f..0x1f inside structs.
CLASSIC_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r\x0f\x10\x11\x12"
                  "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"),
)  # fmt: skip


def messages(text: st.SearchStrategy[str], item: st.SearchStrategy[str]) -> st.SearchStrategy:
    leaf = st.one_of(
        st.tuples(NAME, st.just(FT_STRING), text),
        st.tuples(NAME, st.just(FT_BINARY), st.binary(max_size=24)),
        st.tuples(NAME, st.just(FT_LIST), st.lists(item, min_size=1, max_size=3)),
    )
    return st.recursive(
        st.lists(leaf, max_size=6).map(Message),
        lambda inner: st.lists(
            st.one_of(leaf, st.tuples(NAME, st.just(FT_STRUCT), inner)), max_size=5
        ).map(Message),
        max_leaves=12,
    )


NS_MESSAGES = messages(NS_TEXT, NS_TEXT.filter(bool))
CLASSIC_MESSAGES = messages(CLASSIC_TEXT, CLASSIC_TEXT.filter(lambda s: s and "\n" not in s))


@given(NS_MESSAGES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_netstring_roundtrip(msg: Message) -> None:
    data = encode_netstring(msg)
    packet = decode_packet(data)
    assert packet.msg == msg and packet.signed == data and packet.trailer is None
    assert encode_netstring(packet.msg) == data


@given(CLASSIC_MESSAGES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_classic_roundtrip(msg: Message) -> None:
    data = encode_classic(msg)
    assert decode_packet(data).msg == msg
    assert encode_classic(decode_packet(data).msg) == data
    assert data == b">>>\n" + classic_body(msg) + b"<<<\n" or "auth" in msg


def fast_path_agrees(data: bytes) -> bool:
    """The heartbeat fast path may only ever give what the full netstring parser gives."""
    body = data[:-1] if data.endswith(b"\0") else data
    if not body.startswith(b"###\n"):
        return False
    fast = _fast_netstring(body)
    if fast is None:
        return False
    assert fast == _decode_netstring_full(body)
    return True


def decodes_or_drops(data: bytes) -> None:
    """The only acceptable outcomes: a Packet, or a DecodeError with a documented reason."""
    fast_path_agrees(data)
    try:
        packet = decode_packet(data)
    except DecodeError as exc:
        assert exc.reason in DECODE_REASONS and exc.reason != "decoder_bug", exc
        return
    assert packet.fmt in ("netstring", "classic")
    # Whatever decoded must be encodable again (the daemon may log or relay it).
    encode_netstring(packet.msg)


def test_fast_path_takes_every_flat_golden_packet() -> None:
    flat = [p for p in GOLDEN_PAYLOADS if p.startswith(b"###\n") and not re.search(rb":\([23]\)", p)]
    assert len(flat) > 100
    assert all(fast_path_agrees(p) for p in flat)
    # Anything else goes to the full parser: nested structs, lists, junk after the trailer.
    nested = encode_netstring(Message([("s", FT_STRUCT, Message.of(a="1"))]))
    assert _fast_netstring(nested) is None and decode_packet(nested).msg.get_struct("s") is not None
    assert _fast_netstring(flat[0] + b"x") is None and reason_of(flat[0] + b"x") == "trailing_data"


def test_ack_dest_reads_what_the_decoder_reads() -> None:
    acks = [p for p in GOLDEN_PAYLOADS if b"t=NS_ackmsg" in p]
    assert acks and all(ack_dest(p) == to_wire(decode_packet(p).msg.get("dest")) for p in acks)
    others = [p for p in GOLDEN_PAYLOADS if b"t=NS_ackmsg" not in p]
    assert all(ack_dest(p) is None for p in others)


@given(NAME, NAME, st.sampled_from(GOLDEN_PAYLOADS), st.data())
@settings(max_examples=300)
def test_ack_dest_agrees_with_any_decodable_packet(dest: str, other: str, golden: bytes,
                                                   data: st.DataObject) -> None:
    packets = [encode_netstring(Message.of(t="NS_ackmsg", dest=dest, ackseq="1a", src=other)),
               encode_netstring(Message.of(t="NS_ackmsg", src=other, dest=dest)),
               encode_netstring(Message.of(t="status", dest=dest))]
    cut = data.draw(st.integers(0, len(golden) - 1))
    packets.append(golden[:cut] + data.draw(st.binary(max_size=4)) + golden[cut + 1 :])
    for raw in packets:
        found = ack_dest(raw)
        try:
            msg = decode_packet(raw).msg
        except DecodeError:
            continue
        if found is not None:   # whatever the prefix says is what the decoder reads
            assert msg.get("t") == "NS_ackmsg" and to_wire(msg.get("dest") or "") == found
    assert ack_dest(packets[0]) == to_wire(dest) and ack_dest(packets[2]) is None


@given(NS_MESSAGES, st.binary(max_size=3))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_agrees_on_any_message(msg: Message, trailer: bytes) -> None:
    data = encode_netstring(msg)
    fast_path_agrees(data)
    fast_path_agrees(data + b"%d:1 %s," % (len(trailer) + 2, trailer))


@given(st.binary(max_size=400))
@settings(max_examples=500)
def test_random_bytes_never_crash(data: bytes) -> None:
    decodes_or_drops(data)


@given(st.sampled_from([b"###\n", b">>>\n"]), st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bodies_never_crash(magic: bytes, data: bytes) -> None:
    decodes_or_drops(magic + data)


@given(st.sampled_from(GOLDEN_PAYLOADS), st.data())
@settings(max_examples=500)
def test_golden_bit_flips(payload: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(payload) - 1))
    bit = data.draw(st.integers(0, 7))
    mutated = bytearray(payload)
    mutated[pos] ^= 1 << bit
    decodes_or_drops(bytes(mutated))


@given(st.sampled_from(GOLDEN_PAYLOADS), st.data())
@settings(max_examples=300)
def test_golden_truncations(payload: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(payload)))
    decodes_or_drops(payload[:cut])
    decodes_or_drops(payload[cut:])


@given(st.sampled_from(GOLDEN_PAYLOADS), st.data())
@settings(max_examples=500)
def test_golden_insertions_and_deletions(payload: bytes, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(payload)))
    junk = data.draw(
        st.one_of(
            st.binary(min_size=1, max_size=8),
            st.sampled_from([b",", b":", b"=", b"(", b")", b"\n", b"%%%\n", b"###\n", b"\0"]),
        )
    )
    decodes_or_drops(payload[:pos] + junk + payload[pos:])
    span = data.draw(st.integers(1, 16))
    decodes_or_drops(payload[:pos] + payload[pos + span :])


LENGTHS = re.compile(rb"\d+(?=:)")


@given(st.sampled_from(GOLDEN_PAYLOADS), st.data())
@settings(max_examples=500)
def test_golden_length_field_edits(payload: bytes, data: st.DataObject) -> None:
    spans = [m.span() for m in LENGTHS.finditer(payload)]
    start, stop = data.draw(st.sampled_from(spans))
    new = data.draw(
        st.one_of(
            st.integers(0, 100_000).map(lambda n: b"%d" % n),
            st.sampled_from([b"", b"-1", b"0", b"00", b"1e3", b" 7", b"4294967297"]),
        )
    )
    decodes_or_drops(payload[:start] + new + payload[stop:])


def test_golden_every_single_truncation() -> None:
    payload = GOLDEN_PAYLOADS[0]
    for cut in range(len(payload)):
        decodes_or_drops(payload[:cut])


def test_classic_golden_roundtrip() -> None:
    for payload in GOLDEN_PAYLOADS:
        msg = decode_packet(payload).msg
        assert decode_packet(encode_classic(msg)).msg == msg
        assert encode_netstring(msg) == payload[: payload.index(b"%%%\n") + 4]
