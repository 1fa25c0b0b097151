"""Packet authentication exactly as Heartbeat 3.0.6 computes it (spec section 4).

Every packet 3.0.6 sends carries two signatures:

* the in-body string field ``auth="<idx> <digest>"`` (last field), a digest over
  :func:`appliance.wire.message.classic_body` of the other fields;
* the netstring trailer ``<len>:<idx> <digest>,`` after ``%%%\\n``, a digest over
  the raw bytes from ``###\\n`` through ``%%%\\n`` (which include the auth field).

On receipt 3.0.6 checks only the trailer of a netstring packet, and the in-body
field of a classic one; :func:`verify` does the same. Unlike 3.0.6 (which always
uses the key of its own active index) the algorithm *and* the key are looked up
by the packet's index, as spec 4.4 recommends; the two agree whenever peers
share their keys.

``sha256`` (hb-appliance only) is HMAC-SHA256 in exactly this framing: 64 hex digits
instead of 40. The AEAD methods (``aes256gcm``, ``chacha20poly1305``) replace the framing
by an encrypted envelope, see :mod:`appliance.wire.sealed`: :func:`sign` seals when the
active index is one of them, and :func:`verify` returns the verdict the envelope got when it
was opened. A plain packet naming an AEAD index is an ``auth_mismatch`` (no downgrade).

``keys`` is duck-typed (``appliance.config.authkeys.AuthKeys``): ``.active`` is the
index used for signing and ``.methods`` maps index -> an entry with ``.index``,
``.method`` (one of :data:`METHODS` or an AEAD method) and ``.key`` (bytes, or str encoded
as UTF-8; ignored for crc).

:func:`verify` returns None or one of :data:`VERIFY_REASONS`, used as drop-counter keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from appliance.wire import sealed
from appliance.wire.message import (
    AUTH_FIELD,
    MAX_PACKET,
    Message,
    Packet,
    classic_body,
    encode_netstring,
    to_wire,
)
from appliance.wire.sealed import AEAD_METHODS, SealedPacket, seal

METHODS = ("crc", "md5", "sha1", "sha256")   # digest methods; sha256 is ours only
VERIFY_REASONS = frozenset(
    {
        "auth_missing",  # no trailer / no auth field, or one that does not parse
        "auth_bad_index",  # index not defined in our authkeys
        "auth_unknown_method",  # index defined with an algorithm we cannot compute
        "auth_mismatch",  # digest differs: wrong key, or the packet was altered
    }
)

# The receive path reaches the AEAD envelope through this module: is_sealed(data) picks
# open_sealed() instead of decode_packet(), and a ReplayGuard drops replayed envelopes.
is_sealed = sealed.is_sealed
open_sealed = sealed.open_envelope
ReplayGuard = sealed.ReplayGuard

# The in-body field is parsed like 3.0.6's sscanf("%d %s"), but strictly.
_AUTH_VALUE = re.compile(r"([0-9]{1,2}) ([\x21-\x7e]{1,128})")


def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc(data: bytes) -> str:
    """3.0.6 "crc" auth: MSB-first CRC-32, poly 0x04C11DB7, init 0, no length
    appended, final inversion, printed with %lx (no leading zeros). Not zlib's crc32."""
    value = 0
    table = _CRC_TABLE
    for byte in data:
        value = ((value << 8) & 0xFFFFFFFF) ^ table[(value >> 24) ^ byte]
    return "%x" % (~value & 0xFFFFFFFF)


def digest(method: str, key: bytes, data: bytes) -> str:
    """Lower-case hex digest of `data`; ValueError for an unknown method."""
    if method == "sha1":
        return hmac.new(key, data, hashlib.sha1).hexdigest()
    if method == "sha256":
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    if method == "md5":
        return hmac.new(key, data, hashlib.md5).hexdigest()
    if method == "crc":
        return crc(data)
    raise ValueError(f"unknown auth method {method!r}")


def _key_bytes(key: object) -> bytes:
    if key is None:
        return b""
    if isinstance(key, str):
        return to_wire(key)
    return bytes(key)  # type: ignore[arg-type]


def _entry(keys: Any, index: int) -> Any | None:
    methods = getattr(keys, "methods", None) or {}
    return methods.get(index)


def _compute(entry: Any, data: bytes) -> str:
    return digest(entry.method, _key_bytes(entry.key), data)


def auth_token(keys: Any, data: bytes) -> str:
    """``"<active index> <digest>"`` over `data` with the active key."""
    index = keys.active
    entry = _entry(keys, index)
    if entry is None:
        raise ValueError(f"active auth index {index} has no key")
    return f"{index} {_compute(entry, data)}"


def sign(msg: Message, keys: Any, include_body_auth: bool = True) -> bytes:
    """Full outbound datagram, as 3.0.6 builds it (spec 4.5).

    Any existing ``auth`` field is dropped; with `include_body_auth` (3.0.6's
    default, ``msgfmt classic``) a fresh one is appended as the last field. The
    message is netstring-encoded and the trailer appended. ValueError if the
    message cannot be encoded or would not fit in one datagram. An AEAD active index
    gives a sealed envelope instead (`include_body_auth` does not apply).
    """
    active = _entry(keys, keys.active)
    if active is not None and active.method in AEAD_METHODS:
        return seal(msg, keys)
    body = msg.without(AUTH_FIELD)
    if include_body_auth:
        body.add(AUTH_FIELD, auth_token(keys, classic_body(body)))
    signed = encode_netstring(body)
    token = auth_token(keys, signed).encode("ascii")
    packet = signed + b"%d:%s," % (len(token), token)
    if len(packet) > MAX_PACKET:
        raise ValueError(f"message too large for one datagram ({len(packet)} bytes)")
    return packet


def _check(keys: Any, index: int, claimed: str, data: bytes) -> str | None:
    entry = _entry(keys, index)
    if entry is None:
        return "auth_bad_index"
    if entry.method in AEAD_METHODS:
        return "auth_mismatch"   # signed in clear for an index that must be encrypted
    try:
        mine = _compute(entry, data)
    except ValueError:
        return "auth_unknown_method"
    # Constant-time compare; bytes because `claimed` may hold non-ASCII text.
    if hmac.compare_digest(mine.encode("ascii"), to_wire(claimed)):
        return None
    return "auth_mismatch"


def verify(packet: Packet, keys: Any) -> str | None:
    """None if authentic, else a reason from :data:`VERIFY_REASONS`.

    netstring: only the trailer counts (spec 4.4); the in-body auth field is
    left alone. classic: the in-body auth field against classic_body(). sealed: the
    verdict :func:`appliance.wire.sealed.open_envelope` reached.
    """
    if isinstance(packet, SealedPacket):
        return packet.verdict
    if packet.fmt == "netstring":
        if packet.trailer is None or packet.signed is None:
            return "auth_missing"
        index, claimed = packet.trailer
        return _check(keys, index, claimed, packet.signed)
    value = packet.msg.get(AUTH_FIELD)
    match = _AUTH_VALUE.fullmatch(value) if value is not None else None
    if match is None:
        return "auth_missing"
    try:
        data = classic_body(packet.msg)
    except ValueError:  # cannot be rendered the way the sender signed it
        return "auth_mismatch"
    return _check(keys, int(match.group(1)), match.group(2), data)
