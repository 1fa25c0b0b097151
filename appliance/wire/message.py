"""Heartbeat 3.0.6 message model and its two wire encodings (spec sections 2 and 3).

A message is an ordered list of ``(name, type, value)`` fields. Two framings exist:

* netstring (what 3.0.6 sends on every medium)::

      "###\\n" { <len> ":" "(" <T> ")" <name> "=" <value> "," } "%%%\\n" [<len> ":" <auth> ","]

* classic (accepted on receipt; also the text the in-body ``auth`` field signs)::

      ">>>\\n" { ["(" <T> ")"] <name> "=" <value> "\\n" } "<<<\\n" [NUL]

Text (names, string values, list items) is decoded as UTF-8 with ``surrogateescape``
so any byte string survives ``decode -> encode`` byte for byte, while ordinary
ASCII/UTF-8 reads as normal ``str``.

``decode_packet`` never raises anything but :class:`DecodeError`. Its ``reason``
is one of :data:`DECODE_REASONS`, a stable set used as drop-counter keys:

==================  ===========================================================
``empty``           zero-length datagram
``too_large``       longer than :data:`MAX_PACKET`
``bad_magic``       does not start with ``###\\n`` or ``>>>\\n``
``truncated``       data ends before the closing marker or a declared length
``bad_length``      netstring length not canonical decimal, or no ``:``/``,``
``bad_field``       malformed field: no ``(T)`` or ``=``, empty name, NUL in
                    text, bad base64 or string list, junk inside a struct
``bad_type``        type digit other than 0..4 (or ``(0)`` in classic)
``too_deep``        nested structs deeper than :data:`MAX_DEPTH`
``compressed``      a type-4 (compressed) field: refused, as spec 3.3 advises
``bad_trailer``     netstring auth trailer present but not ``<len>:<idx> <hex>,``
``trailing_data``   bytes after the end of the message (one final NUL is fine)
``decoder_bug``     an unexpected internal error; should never be counted
==================  ===========================================================

A netstring packet without any trailer decodes (``trailer=None``); deciding that
this is unauthenticated is the job of :func:`appliance.wire.auth.verify`.

The encoders raise ``ValueError`` for messages 3.0.6 could not carry (empty names,
``=`` in a name, NUL in text, too deep, compressed fields, wrong value types).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Iterator

from appliance.errors import DecodeError

FT_STRING, FT_BINARY, FT_STRUCT, FT_LIST, FT_COMPRESSED = 0, 1, 2, 3, 4
# Largest IPv4 UDP payload: bigger cannot arrive (3.0.6's own limit, MAXMSG, is 256 KiB).
MAX_PACKET = 65507
# Struct nesting limit of cluster-glue (MAXDEPTH): 16 newline symbols exist for it.
MAX_DEPTH = 16

NETSTRING_START = b"###\n"
NETSTRING_END = b"%%%\n"
CLASSIC_START = b">>>\n"
CLASSIC_END = b"<<<\n"
AUTH_FIELD = "auth"

# Classic framing: a newline inside a string value travels as 0x13, and a nested
# struct's newlines as a depth-specific symbol (cluster-glue SPECIAL_SYM(S)).
STRING_NL_SYM = b"\x13"
STRUCT_NL_SYMS = bytes([20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 15, 16, 17, 18])

DECODE_REASONS = frozenset(
    "empty too_large bad_magic truncated bad_length bad_field bad_type too_deep"
    " compressed bad_trailer trailing_data decoder_bug".split()
)

_MAX_LEN_DIGITS = 7  # bounds the parse; no longer length can fit in MAX_PACKET
_TEXT = ("utf-8", "surrogateescape")


def to_text(raw: bytes) -> str:
    """Wire bytes -> str, reversibly (see module docstring)."""
    return raw.decode(*_TEXT)


def to_wire(text: str) -> bytes:
    """str -> wire bytes; the inverse of :func:`to_text`."""
    return text.encode(*_TEXT)


class Message:
    """Ordered list of (name, type, value); names may repeat; lookups return the first match.

    value is ``str`` for FT_STRING, ``bytes`` for FT_BINARY, ``Message`` for FT_STRUCT
    and ``list[str]`` for FT_LIST.
    """

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, fields: list[tuple[str, int, object]] | None = None) -> None:
        self.fields: list[tuple[str, int, object]] = list(fields) if fields else []

    @classmethod
    def of(cls, **kwargs: str) -> Message:
        """``Message.of(t="status", st="active")``: string fields in keyword order."""
        return cls([(name, FT_STRING, value) for name, value in kwargs.items()])

    def _first(self, name: str, ftype: int) -> object | None:
        for fname, t, value in self.fields:
            if fname == name and t == ftype:
                return value
        return None

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first string field called `name`."""
        value = self._first(name, FT_STRING)
        return default if value is None else value  # type: ignore[return-value]

    def get_bytes(self, name: str) -> bytes | None:
        """Value of the first binary field called `name`."""
        return self._first(name, FT_BINARY)  # type: ignore[return-value]

    def get_struct(self, name: str) -> Message | None:
        return self._first(name, FT_STRUCT)  # type: ignore[return-value]

    def get_list(self, name: str) -> list[str] | None:
        return self._first(name, FT_LIST)  # type: ignore[return-value]

    def add(self, name: str, value: str) -> Message:
        if not isinstance(value, str):
            raise TypeError(f"string field {name!r} needs str, got {type(value).__name__}")
        self.fields.append((name, FT_STRING, value))
        return self

    def add_bytes(self, name: str, value: bytes) -> Message:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"binary field {name!r} needs bytes, got {type(value).__name__}")
        self.fields.append((name, FT_BINARY, bytes(value)))
        return self

    def add_struct(self, name: str, value: Message) -> Message:
        if not isinstance(value, Message):
            raise TypeError(f"struct field {name!r} needs Message, got {type(value).__name__}")
        self.fields.append((name, FT_STRUCT, value))
        return self

    def add_list(self, name: str, value: list[str]) -> Message:
        if not all(isinstance(item, str) for item in value):
            raise TypeError(f"list field {name!r} needs a list of str")
        self.fields.append((name, FT_LIST, list(value)))
        return self

    def set(self, name: str, value: str) -> Message:
        """Replace the first string field `name` in place, or append it."""
        if not isinstance(value, str):
            raise TypeError(f"string field {name!r} needs str, got {type(value).__name__}")
        for i, (fname, t, _old) in enumerate(self.fields):
            if fname == name and t == FT_STRING:
                self.fields[i] = (name, FT_STRING, value)
                return self
        return self.add(name, value)

    def without(self, name: str) -> Message:
        """A copy minus every field called `name` (of any type)."""
        return Message([f for f in self.fields if f[0] != name])

    def copy(self) -> Message:
        """A shallow copy: the field list is new, nested values are shared."""
        return Message(self.fields)

    def names(self) -> list[str]:
        return [f[0] for f in self.fields]

    def __contains__(self, name: object) -> bool:
        return any(f[0] == name for f in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __iter__(self) -> Iterator[tuple[str, int, object]]:
        return iter(self.fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return self.fields == other.fields

    def __repr__(self) -> str:
        parts = []
        for name, t, value in self.fields:
            if t == FT_STRING:
                parts.append(f"{name}={value!r}")
            elif t == FT_BINARY:
                parts.append(f"({t}){name}={bytes(value).hex()}")  # type: ignore[arg-type]
            else:
                parts.append(f"({t}){name}={value!r}")
        return f"Message({', '.join(parts)})"


@dataclass
class Packet:
    """One decoded datagram."""

    msg: Message
    fmt: str  # "netstring" | "classic"
    signed: bytes | None  # netstring: exact bytes '###\n' .. '%%%\n' (what the trailer signs)
    trailer: tuple[int, str] | None  # netstring: (auth index, hexdigest) from the trailer


# --------------------------------------------------------------------------- encoding


def _name_bytes(name: object) -> bytes:
    if not isinstance(name, str):
        raise ValueError(f"field name must be str, got {type(name).__name__}")
    raw = to_wire(name)
    # '=' would split the name on receipt; NUL/newline break the C parser.
    if not raw or b"=" in raw or b"\0" in raw or b"\n" in raw:
        raise ValueError(f"field name {name!r} cannot be sent")
    return raw


def _string_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"string field {name!r} holds {type(value).__name__}")
    raw = to_wire(value)
    if b"\0" in raw:  # 3.0.6 keeps strings as C strings
        raise ValueError(f"string field {name!r} contains NUL")
    return raw


def _binary_bytes(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"binary field {name!r} holds {type(value).__name__}")
    return bytes(value)


def _struct_value(name: str, value: object, depth: int) -> Message:
    if not isinstance(value, Message):
        raise ValueError(f"struct field {name!r} holds {type(value).__name__}")
    if depth >= MAX_DEPTH:
        raise ValueError(f"struct field {name!r} nested deeper than {MAX_DEPTH}")
    return value


def _pack_list(name: str, value: object, classic: bool) -> bytes:
    """cluster-glue string-list packing: ``<len>:<item>,`` per item, at least one item."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"list field {name!r} must be a non-empty list of str")
    out = bytearray()
    for item in value:
        raw = _string_bytes(name, item)
        if not raw or (classic and b"\n" in raw):
            raise ValueError(f"list field {name!r} has an empty or multi-line item")
        out += b"%d:%s," % (len(raw), raw)
    return bytes(out)


def _netstring_block(msg: Message, depth: int) -> bytes:
    out = bytearray(NETSTRING_START)
    for name, ftype, value in msg.fields:
        if ftype == FT_STRING:
            raw = _string_bytes(name, value)
        elif ftype == FT_BINARY:
            raw = _binary_bytes(name, value)
        elif ftype == FT_STRUCT:
            raw = _netstring_block(_struct_value(name, value, depth), depth + 1)
        elif ftype == FT_LIST:
            raw = _pack_list(name, value, classic=False)
        else:
            raise ValueError(f"field {name!r}: type {ftype!r} cannot be encoded")
        body = b"(%d)%s=%s" % (ftype, _name_bytes(name), raw)
        out += b"%d:%s," % (len(body), body)
    out += NETSTRING_END
    return bytes(out)


def encode_netstring(msg: Message) -> bytes:
    """``###\\n`` + fields + ``%%%\\n``, without the auth trailer (see auth.sign)."""
    return _netstring_block(msg, 0)


def _classic_lines(msg: Message, depth: int, skip_auth: bool) -> bytes:
    out = bytearray()
    for name, ftype, value in msg.fields:
        if skip_auth and name == AUTH_FIELD:
            continue
        raw_name = _name_bytes(name)
        if ftype == FT_STRING:
            if raw_name.startswith(b"("):  # would read back as a typed field
                raise ValueError(f"string field name {name!r} cannot be sent classic")
            out += raw_name + b"=" + _string_bytes(name, value).replace(b"\n", STRING_NL_SYM) + b"\n"
            continue
        if ftype == FT_BINARY:
            raw = base64.b64encode(_binary_bytes(name, value))
        elif ftype == FT_STRUCT:
            inner = _classic_text(_struct_value(name, value, depth), depth + 1)
            sym = STRUCT_NL_SYMS[depth]
            if sym in inner:  # 3.0.6 refuses too: the symbol would read back as newline
                raise ValueError(f"struct field {name!r} contains byte 0x{sym:02x}")
            raw = inner.replace(b"\n", bytes([sym]))
        elif ftype == FT_LIST:
            raw = _pack_list(name, value, classic=True)
        else:
            raise ValueError(f"field {name!r}: type {ftype!r} cannot be encoded")
        out += b"(%d)%s=%s\n" % (ftype, raw_name, raw)
    return bytes(out)


def _classic_text(msg: Message, depth: int) -> bytes:
    return CLASSIC_START + _classic_lines(msg, depth, skip_auth=False) + CLASSIC_END


def encode_classic(msg: Message) -> bytes:
    """``>>>\\n`` + ``name=value\\n`` lines + ``<<<\\n`` (spec 3.2); no trailing NUL."""
    return _classic_text(msg, 0)


def classic_body(msg: Message) -> bytes:
    """The text the in-body auth field signs: classic lines of every field but ``auth``,
    without the ``>>>``/``<<<`` lines (spec 4.3)."""
    return _classic_lines(msg, 0, skip_auth=True)


# --------------------------------------------------------------------------- decoding


def _fail(reason: str, detail: str = "") -> DecodeError:
    return DecodeError(reason, detail)


def _peel(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Parse one ``<len>:<body>,`` at pos; return (body_start, body_end, next_pos)."""
    i = pos
    while i < end and i - pos <= _MAX_LEN_DIGITS and 0x30 <= data[i] <= 0x39:
        i += 1
    if i == end:
        raise _fail("truncated", f"length at {pos}")
    ndigits = i - pos
    if ndigits == 0 or ndigits > _MAX_LEN_DIGITS or data[i] != 0x3A:  # ':'
        raise _fail("bad_length", f"length at {pos}")
    if ndigits > 1 and data[pos] == 0x30:  # 3.0.6 prints %d: no leading zeros
        raise _fail("bad_length", f"leading zero at {pos}")
    start = i + 1
    stop = start + int(data[pos:i])
    if stop >= end:
        raise _fail("truncated", f"netstring at {pos} runs past the end")
    if data[stop] != 0x2C:  # ','
        raise _fail("bad_length", f"no ',' after netstring at {pos}")
    return start, stop, stop + 1


def _check_name(raw: bytes) -> str:
    if not raw or b"\0" in raw or b"\n" in raw:
        raise _fail("bad_field", "empty or unprintable field name")
    return to_text(raw)


def _check_string(raw: bytes) -> str:
    if b"\0" in raw:
        raise _fail("bad_field", "NUL in string value")
    return to_text(raw)


def _unpack_list(raw: bytes) -> list[str]:
    items: list[str] = []
    pos = 0
    try:
        while pos < len(raw):
            start, stop, pos = _peel(raw, pos, len(raw))
            if stop == start:
                raise _fail("bad_field", "empty list item")
            items.append(_check_string(raw[start:stop]))
    except DecodeError as exc:
        raise _fail("bad_field", f"string list: {exc}") from None
    if not items:
        raise _fail("bad_field", "empty string list")
    return items


def _check_type(digit: int, classic: bool) -> int:
    ftype = digit - 0x30
    if ftype == FT_COMPRESSED:
        raise _fail("compressed", "compressed fields are not accepted")
    if not FT_STRING <= ftype <= FT_LIST or (classic and ftype == FT_STRING):
        raise _fail("bad_type", f"field type {chr(digit)!r}")
    return ftype


def _netstring_field(data: bytes, start: int, stop: int, depth: int) -> tuple[str, int, object]:
    body = data[start:stop]
    if len(body) < 4 or body[0] != 0x28 or body[2] != 0x29:  # "(T)"
        raise _fail("bad_field", f"no (type) prefix at {start}")
    ftype = _check_type(body[1], classic=False)
    eq = body.find(b"=", 3)
    if eq < 0:
        raise _fail("bad_field", f"no '=' in field at {start}")
    name = _check_name(body[3:eq])
    raw = body[eq + 1 :]
    if ftype == FT_STRING:
        return name, ftype, _check_string(raw)
    if ftype == FT_BINARY:
        return name, ftype, raw
    if ftype == FT_LIST:
        return name, ftype, _unpack_list(raw)
    if depth >= MAX_DEPTH:
        raise _fail("too_deep", f"struct {name!r}")
    if not raw.startswith(NETSTRING_START):
        raise _fail("bad_field", f"struct {name!r} is not a netstring message")
    inner, used = _netstring_message(raw, 0, len(raw), depth + 1)
    if used != len(raw):
        raise _fail("bad_field", f"junk after struct {name!r}")
    return name, ftype, inner


def _netstring_message(data: bytes, pos: int, end: int, depth: int) -> tuple[Message, int]:
    """Parse ``###\\n`` .. ``%%%\\n`` starting at pos; return (message, end offset)."""
    pos += len(NETSTRING_START)
    fields = []
    while not data.startswith(NETSTRING_END, pos, end):
        if end - pos < len(NETSTRING_END) and NETSTRING_END.startswith(data[pos:end]):
            # nothing left, or only the start of a cut-off end marker
            raise _fail("truncated", "no '%%%' end marker")
        start, stop, pos = _peel(data, pos, end)
        fields.append(_netstring_field(data, start, stop, depth))
    return Message(fields), pos + len(NETSTRING_END)


def _trailer(data: bytes, pos: int) -> tuple[int, str]:
    try:
        start, stop, nxt = _peel(data, pos, len(data))
    except DecodeError as exc:
        raise _fail("bad_trailer", str(exc)) from None
    if nxt != len(data):
        raise _fail("trailing_data", f"{len(data) - nxt} bytes after the trailer")
    token = data[start:stop]
    idx, sep, digest = token.partition(b" ")
    if (
        not sep
        or not 1 <= len(idx) <= 2
        or not idx.isdigit()
        or not 1 <= len(digest) <= 128
        or not all(0x21 <= b <= 0x7E for b in digest)
    ):
        raise _fail("bad_trailer", "not '<index> <digest>'")
    return int(idx), digest.decode("ascii")


def _decode_netstring(data: bytes) -> Packet:
    fast = _fast_netstring(data)
    return fast if fast is not None else _decode_netstring_full(data)


def _decode_netstring_full(data: bytes) -> Packet:
    msg, end = _netstring_message(data, 0, len(data), 0)
    trailer = _trailer(data, end) if end < len(data) else None
    return Packet(msg=msg, fmt="netstring", signed=data[:end], trailer=trailer)


# `<len>:<idx> <digest>,` closing the datagram; the length is checked against the token below.
_FAST_TRAILER = re.compile(rb"([1-9][0-9]{0,6}):(([0-9]{1,2}) ([\x21-\x7e]{1,128})),")


def _fast_netstring(data: bytes) -> Packet | None:
    """The common case in one tight loop: a flat message of string and binary fields with a
    well-formed trailer (every heartbeat). Returns None for anything else, and the full parser
    above then decides, with its exact error reason; a result from here is always the one the
    full parser gives (the codec's property tests hold the two together)."""
    end = len(data)
    pos = len(NETSTRING_START)
    fields: list[tuple[str, int, object]] = []
    append, find = fields.append, data.find
    while not data.startswith(NETSTRING_END, pos):
        colon = find(b":", pos, pos + _MAX_LEN_DIGITS + 1)
        digits = data[pos:colon]
        if colon < 0 or not digits.isdigit() or (digits[0] == 0x30 and colon - pos > 1):
            return None
        start = colon + 1
        stop = start + int(digits)
        if stop >= end or stop - start < 4 or data[stop] != 0x2C:
            return None
        eq = find(b"=", start + 3, stop)
        if data[start] != 0x28 or data[start + 2] != 0x29 or eq <= start + 3:  # "(T)name="
            return None
        name = data[start + 3 : eq]
        if b"\0" in name or b"\n" in name:
            return None
        kind = data[start + 1]
        if kind == 0x30:  # (0) string
            value = data[eq + 1 : stop]
            if b"\0" in value:
                return None
            append((name.decode(*_TEXT), FT_STRING, value.decode(*_TEXT)))
        elif kind == 0x31:  # (1) binary
            append((name.decode(*_TEXT), FT_BINARY, data[eq + 1 : stop]))
        else:  # structs and lists: the full parser
            return None
        pos = stop + 1
    signed_end = pos + len(NETSTRING_END)
    trailer = None
    if signed_end < end:
        match = _FAST_TRAILER.fullmatch(data, signed_end)
        if match is None or int(match[1]) != len(match[2]):
            return None
        trailer = (int(match[3]), match[4].decode("ascii"))
    return Packet(msg=Message(fields), fmt="netstring", signed=data[:signed_end], trailer=trailer)


def _classic_field(line: bytes, depth: int) -> tuple[str, int, object]:
    eq = line.find(b"=")
    if eq < 0:
        raise _fail("bad_field", "line without '='")
    name, raw = line[:eq], line[eq + 1 :]
    ftype = FT_STRING
    if name.startswith(b"("):
        if len(name) < 4 or name[2] != 0x29:
            raise _fail("bad_field", "bad (type) prefix")
        ftype = _check_type(name[1], classic=True)
        name = name[3:]
    text_name = _check_name(name)
    if ftype == FT_STRING:
        return text_name, ftype, _check_string(raw.replace(STRING_NL_SYM, b"\n"))
    if ftype == FT_BINARY:
        try:
            return text_name, ftype, base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise _fail("bad_field", f"bad base64 in {text_name!r}") from None
    if ftype == FT_LIST:
        return text_name, ftype, _unpack_list(raw)
    if depth >= MAX_DEPTH:
        raise _fail("too_deep", f"struct {text_name!r}")
    inner = raw.replace(STRUCT_NL_SYMS[depth : depth + 1], b"\n")
    if not inner.startswith(CLASSIC_START):
        raise _fail("bad_field", f"struct {text_name!r} is not a classic message")
    return text_name, ftype, _classic_message(inner, depth + 1)


def _classic_message(text: bytes, depth: int) -> Message:
    """Parse a whole ``>>>\\n`` .. ``<<<\\n`` text; nothing may follow it."""
    pos, end = len(CLASSIC_START), len(text)
    fields = []
    while True:
        while pos < end and text[pos] in b"\r\n":  # 3.0.6 skips blank lines
            pos += 1
        nl = text.find(b"\n", pos)
        if nl < 0:
            raise _fail("truncated", "no '<<<' end line")
        line, pos = text[pos:nl], nl + 1
        if line == CLASSIC_END[:-1]:
            if pos != end:
                raise _fail("trailing_data", f"{end - pos} bytes after '<<<'")
            return Message(fields)
        fields.append(_classic_field(line, depth))


def _decode_classic(data: bytes) -> Packet:
    if b"\0" in data:
        raise _fail("bad_field", "NUL inside a classic message")
    return Packet(msg=_classic_message(data, 0), fmt="classic", signed=None, trailer=None)


# 3.0.6 and we both send an ACK as `t=NS_ackmsg` then `dest=...` (catalog.ackmsg).
_ACK_DEST = re.compile(rb"###\n1[0-9]:\(0\)t=NS_ackmsg,[0-9]{1,3}:\(0\)dest=([^,\0\n]{1,255}),")


def ack_dest(data: bytes) -> bytes | None:
    """The `dest` of an ACK, read from its first two fields without decoding or checking
    anything else; None when the datagram does not start like an ACK. For skipping other
    nodes' ACKs only: whatever this says, nothing may be believed before verification."""
    match = _ACK_DEST.match(data)
    return match[1] if match is not None else None


def decode_packet(data: bytes) -> Packet:
    """Decode one datagram; raises DecodeError (and only DecodeError) when it is not valid."""
    try:
        if not data:
            raise _fail("empty")
        if len(data) > MAX_PACKET:
            raise _fail("too_large", f"{len(data)} bytes")
        data = bytes(data)
        if data.endswith(b"\0"):  # 3.0.6 appends a NUL when it builds a C buffer
            data = data[:-1]
        if data.startswith(NETSTRING_START):
            return _decode_netstring(data)
        if data.startswith(CLASSIC_START):
            return _decode_classic(data)
        raise _fail("bad_magic", repr(data[:4]))
    except DecodeError:
        raise
    except Exception as exc:  # the receive path must never crash, whatever arrives
        raise DecodeError("decoder_bug", repr(exc)) from exc
