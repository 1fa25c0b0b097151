"""A socket filter (classic BPF) that drops other nodes' ACKs in the kernel.

Every node ACKs every peer's 10th heartbeat by broadcast (spec 5.5): N*(N-1)/20 ACKs per
keepalive, each delivered to all N nodes, which is most of the traffic in a big cluster and
nothing for us: ACKs serve us for link liveness only, and heartbeats give that. Without the
filter each of them wakes the daemon for a recvfrom and a prefix check (Daemon._receive skips
them unread: the same rule, kept for what the filter lets through).

The filter sees the UDP header (8 bytes) and then the payload. It drops a datagram only when the
payload starts exactly as 3.0.6 and we send an ACK, ``###\\n14:(0)t=NS_ackmsg,``, and the next
bytes are not ``<len>:(0)dest=<our name>,``. Everything else goes up untouched: other messages,
sealed envelopes, ACKs to us, datagrams too short to tell.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26
UDP_HEADER = 8
ACK_PREFIX = b"###\n14:(0)t=NS_ackmsg,"

# Classic BPF opcodes (linux/filter.h)
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS, _LD_W_LEN = 0x20, 0x28, 0x30, 0x80
_JEQ_K, _JGE_K, _RET_K = 0x15, 0x35, 0x06
_KEEP, _DROP = 0xFFFFFFFF, 0

Insn = tuple[int, int, int, int]   # (code, jt, jf, k)


def dest_field(local: bytes) -> bytes:
    """The `dest` field of an ACK to `local`, as it follows the type field on the wire."""
    body = b"(0)dest=" + local
    return b"%d:%s," % (len(body), body)


def _chunks(data: bytes, offset: int) -> list[tuple[int, int, int]]:
    """(load opcode, absolute offset, expected value) covering data at offset."""
    out = []
    pos = 0
    while pos < len(data):
        for size, op, fmt in ((4, _LD_W_ABS, ">I"), (2, _LD_H_ABS, ">H"), (1, _LD_B_ABS, ">B")):
            if len(data) - pos >= size:
                out.append((op, offset + pos, struct.unpack(fmt, data[pos : pos + size])[0]))
                pos += size
                break
    return out


def program(local: str | bytes) -> list[Insn]:
    """The filter for a node called `local` (the name it sends as `src`)."""
    name = local.encode() if isinstance(local, str) else local
    prefix = _chunks(ACK_PREFIX, UDP_HEADER)
    dest = _chunks(dest_field(name), UDP_HEADER + len(ACK_PREFIX))
    needed = UDP_HEADER + len(ACK_PREFIX) + len(dest_field(name))
    # Layout: length check, prefix compares (mismatch: keep), dest compares (mismatch: drop),
    # then "keep" (an ACK to us), "drop", "keep".
    body: list[tuple[int, int, int, str]] = [(_LD_W_LEN, 0, 0, ""), (_JGE_K, 0, needed, "keep")]
    for op, off, value in prefix:
        body += [(op, 0, off, ""), (_JEQ_K, 0, value, "keep")]
    for op, off, value in dest:
        body += [(op, 0, off, ""), (_JEQ_K, 0, value, "drop")]
    n = len(body)
    targets = {"keep": n + 2, "drop": n + 1}
    insns: list[Insn] = []
    for i, (code, _jt, k, miss) in enumerate(body):
        jf = targets[miss] - (i + 1) if miss else 0
        if jf > 255:
            raise ValueError("node name too long for the ACK filter")
        insns.append((code, 0, jf, k))
    insns += [(_RET_K, 0, 0, _KEEP), (_RET_K, 0, 0, _DROP), (_RET_K, 0, 0, _KEEP)]
    return insns


def attach(sock: socket.socket, insns: list[Insn]) -> None:
    """SO_ATTACH_FILTER; OSError if the kernel refuses the program."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in insns)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))   # struct sock_fprog
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
