"""Authenticated encryption of whole heartbeat messages: the ``aes256gcm`` and
``chacha20poly1305`` authkeys methods, usable only when every node runs hb-appliance.

Envelope (one UDP datagram; integers big-endian)::

    offset  size   field
    0       4      magic b"\\x89HBA"  (3.0.6 decodes only "###\\n" and ">>>\\n": it drops this)
    4       1      version, 1
    5       1      authkeys index the sender used (0..15)
    6       1      algorithm: 1 = aes256gcm, 2 = chacha20poly1305
    7       12     nonce, random for every datagram
    19      n+16   ciphertext + tag; the associated data is bytes 0..18 (the header above)

Plaintext inside::

    1       L, length of the sender's node name (1..255)
    L       sender node name: must equal the `src` field of the message
    8       sender generation (its heartbeat generation `hg`, which grows on every start)
    8       counter, strictly increasing per sending process (starts at the start time in us)
    rest    the heartbeat message in netstring encoding, without `auth` field or trailer

Key: HKDF-SHA256 (RFC 5869) of the authkeys key token, salt ``hb-appliance authkeys v1``,
info ``hb-appliance <method> index <N>``: 32 bytes, so a pass phrase never is the cipher key
and one secret under two methods or indices gives unrelated keys.

Replay: a captured envelope replayed later carries a (generation, counter) the receiver has
seen; :class:`ReplayGuard` keeps, per (sender, link), the newest generation and a sliding
window of counters, so replays of *every* message type are dropped (NS_ackmsg, NS_rexmit and
the other unsequenced ones included, which the membership layer's seq/generation checks do
not cover).  Reflection: the sender's name is inside the authenticated plaintext and must be
the message's `src`, so an envelope is never taken as coming from another node, and one sent
back to its own sender is a replay there.  Per link, because the same datagram legitimately
arrives once on each heartbeat medium.  Not covered (documented in README): a receiver that
restarts has no window yet, so until the sender's next live datagram, a recording of that
sender's current incarnation could be replayed to it.  No wall clocks are involved: a node
with a wrong clock must never be cut off (that would make a split brain).

`cryptography` is imported only when an AEAD index is used (sealing, opening, or checking
availability at configuration time): the EL6 build has none, and the import costs RSS.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import itertools
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

from appliance.errors import DecodeError
from appliance.wire.message import AUTH_FIELD, MAX_PACKET, Message, Packet, decode_packet, encode_netstring

MAGIC = b"\x89HBA"
VERSION = 1
ALGORITHMS = {"aes256gcm": 1, "chacha20poly1305": 2}   # authkeys method -> algorithm byte
AEAD_METHODS = frozenset(ALGORITHMS)
HEADER = struct.Struct(">4sBBB12s")                     # magic, version, index, algorithm, nonce
TAG = 16
KEY_SALT = b"hb-appliance authkeys v1"
MIN_PLAIN = 1 + 1 + 8 + 8 + 8   # name length, a 1-byte name, generation, counter, "###\n%%%\n"
MIN_SEALED = HEADER.size + MIN_PLAIN + TAG
# DecodeError reasons of open_envelope (drop-counter keys, like message.DECODE_REASONS).
ENVELOPE_REASONS = frozenset({"truncated", "bad_envelope"})

REPLAY_WINDOW = 256          # counters behind the newest one still accepted once (reordering)
REPLAY_MAX_TRACKED = 1024    # (sender, link) pairs remembered; only key holders can add any


@dataclass
class SealedPacket(Packet):
    """An opened envelope: `msg` is the inner message once `verdict` is None.

    `verdict` is the reason from appliance.wire.auth.VERIFY_REASONS when authentication
    failed (then `msg` is empty); auth.verify() returns it, so the daemon's drop counting and
    logging are the same for every method."""

    verdict: str | None = None
    index: int = -1
    sender: str = ""
    generation: int = 0
    counter: int = 0


def is_sealed(data: bytes) -> bool:
    return data[:4] == MAGIC


# ------------------------------------------------------------------ keys and ciphers


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 HKDF with SHA-256 (stdlib only, so sha256 builds need no `cryptography`)."""
    if length > 255 * 32:
        raise ValueError("HKDF output too long")
    prk = hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range((length + 31) // 32):
        block = hmac.new(prk, block + info + bytes([i + 1]), hashlib.sha256).digest()
        out += block
    return out[:length]


def derive_key(method: str, index: int, secret: bytes) -> bytes:
    return hkdf_sha256(secret, KEY_SALT, f"hb-appliance {method} index {index}".encode())


_unavailable: dict[str, str | None] = {}


def unavailable(method: str) -> str | None:
    """None when `method` can be used in this build, else why not (imports `cryptography`)."""
    if method not in _unavailable:
        try:
            _cipher_class(method)
            _unavailable[method] = None
        except ImportError as exc:
            _unavailable[method] = f"no `cryptography` module ({exc.name or exc})"
        except Exception as exc:  # noqa: BLE001 - a broken binding is "not available" too
            _unavailable[method] = f"`cryptography` does not work here: {exc!r}"
    return _unavailable[method]


def _cipher_class(method: str) -> Any:
    from cryptography.hazmat.primitives.ciphers import aead

    return {"aes256gcm": aead.AESGCM, "chacha20poly1305": aead.ChaCha20Poly1305}[method]


_ciphers: collections.OrderedDict[tuple[str, int, bytes], Any] = collections.OrderedDict()


def _cipher(method: str, index: int, secret: bytes) -> Any:
    """Cipher objects are cached: HKDF and key set-up once per key, not per datagram."""
    k = (method, index, secret)
    c = _ciphers.get(k)
    if c is None:
        c = _cipher_class(method)(derive_key(method, index, secret))
        _ciphers[k] = c
        while len(_ciphers) > 16:   # old keys after rotations
            _ciphers.popitem(last=False)
    return c


def _secret(entry: Any) -> bytes:
    key = entry.key
    if isinstance(key, str):
        return key.encode("utf-8", "surrogateescape")
    return bytes(key or b"")


# ------------------------------------------------------------------ sending

# Per sending process; starts at the wall clock in microseconds so a restart that keeps the
# same generation (hbgenmethod time, within one second) still counts upwards.
_counter = itertools.count(time.time_ns() // 1000)


def seal(msg: Message, keys: Any) -> bytes:
    """The datagram for `msg` with the active AEAD index of `keys`.

    The sender name and generation are the message's own `src` and `hg` fields (the daemon
    stamps every message before sending). ValueError if it cannot be encoded or is too large.
    """
    entry = keys.methods.get(keys.active)
    if entry is None or entry.method not in ALGORITHMS:
        raise ValueError(f"active auth index {keys.active} is not an AEAD method")
    name = (msg.get("src") or "").encode("utf-8", "surrogateescape")
    if not 1 <= len(name) <= 255:
        raise ValueError("a sealed message needs a src field of 1..255 bytes")
    generation = _hex64(msg.get("hg"))
    body = encode_netstring(msg.without(AUTH_FIELD))
    plain = bytes([len(name)]) + name + struct.pack(">QQ", generation, next(_counter)) + body
    header = HEADER.pack(MAGIC, VERSION, entry.index, ALGORITHMS[entry.method], os.urandom(12))
    sealed = header + _cipher(entry.method, entry.index, _secret(entry)).encrypt(
        header[7:], plain, header
    )
    if len(sealed) > MAX_PACKET:
        raise ValueError(f"message too large for one datagram ({len(sealed)} bytes)")
    return sealed


def _hex64(text: str | None) -> int:
    try:
        value = int(text or "0", 16)
    except ValueError:
        return 0
    return value if 0 <= value < 1 << 64 else 0


# ------------------------------------------------------------------ receiving


def _refused(verdict: str, index: int = -1) -> SealedPacket:
    return SealedPacket(Message(), "sealed", None, None, verdict=verdict, index=index)


def open_envelope(data: bytes, keys: Any) -> SealedPacket:
    """Authenticate and decrypt one envelope.

    Raises DecodeError (reason "truncated" or "bad_envelope", or the inner decoder's reason
    for an authentic but malformed message); returns a SealedPacket whose `verdict` says why
    authentication failed, or None with the inner message.
    """
    if len(data) < MIN_SEALED:
        raise DecodeError("truncated", f"{len(data)} bytes, an envelope has at least {MIN_SEALED}")
    if len(data) > MAX_PACKET:
        raise DecodeError("too_large", f"{len(data)} bytes")
    magic, version, index, algorithm, nonce = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise DecodeError("bad_envelope", f"version {version}")
    entry = (getattr(keys, "methods", None) or {}).get(index)
    if entry is None:
        return _refused("auth_bad_index", index)
    if ALGORITHMS.get(entry.method) != algorithm:
        # Our index N is another method (or a legacy one): never a downgrade, always a drop.
        return _refused("auth_mismatch", index)
    try:
        cipher = _cipher(entry.method, index, _secret(entry))
    except ImportError:
        return _refused("auth_unknown_method", index)
    header = data[: HEADER.size]
    try:
        plain = cipher.decrypt(nonce, data[HEADER.size :], header)
    except Exception:  # noqa: BLE001 - cryptography's InvalidTag: wrong key or altered bytes
        return _refused("auth_mismatch", index)
    return _inner(plain, index)


def _inner(plain: bytes, index: int) -> SealedPacket:
    # Authentic from here on: anything wrong is a bug or a hostile key holder, not noise.
    n = plain[0] if plain else 0
    if n == 0 or len(plain) < 1 + n + 16:
        raise DecodeError("bad_envelope", "plaintext too short")
    sender = plain[1 : 1 + n].decode("utf-8", "surrogateescape")
    generation, counter = struct.unpack_from(">QQ", plain, 1 + n)
    inner = decode_packet(plain[1 + n + 16 :])
    if inner.fmt != "netstring" or inner.trailer is not None:
        raise DecodeError("bad_envelope", "inner message is not a bare netstring message")
    pkt = SealedPacket(inner.msg, "sealed", None, None, index=index, sender=sender,
                       generation=generation, counter=counter)
    if inner.msg.get("src") != sender:
        return _refused("auth_mismatch", index)   # a message never speaks for another node
    return pkt


class ReplayGuard:
    """Anti-replay windows per (sender, link), as IPsec/DTLS do it for one peer.

    A newer generation (the sender restarted) resets the window; an older one is a replay.
    Within a generation, counters up to REPLAY_WINDOW behind the newest are accepted once.
    """

    def __init__(self, window: int = REPLAY_WINDOW, max_tracked: int = REPLAY_MAX_TRACKED) -> None:
        self.window = window
        self.max_tracked = max_tracked
        self._mask = (1 << window) - 1
        # (sender, link) -> [generation, newest counter, bitmap: bit i = newest - i seen]
        self._state: collections.OrderedDict[tuple[str, str], list[int]] = collections.OrderedDict()

    def check(self, pkt: Packet, link: str) -> str | None:
        """None to accept (and remember) an authenticated packet, "replay" to drop it.
        Packets that are not sealed are left to the membership layer (None)."""
        if not isinstance(pkt, SealedPacket) or pkt.verdict is not None:
            return None
        key = (pkt.sender, link)
        st = self._state.get(key)
        if st is None or pkt.generation > st[0]:
            self._state[key] = [pkt.generation, pkt.counter, 1]
            self._state.move_to_end(key)
            while len(self._state) > self.max_tracked:
                self._state.popitem(last=False)
            return None
        generation, newest, bits = st
        if pkt.generation < generation:
            return "replay"
        c = pkt.counter
        if c > newest:
            shift = c - newest
            st[1], st[2] = c, ((bits << shift) | 1) & self._mask if shift < self.window else 1
            return None
        offset = newest - c
        if offset >= self.window or (bits >> offset) & 1:
            return "replay"
        st[2] = bits | (1 << offset)
        return None
