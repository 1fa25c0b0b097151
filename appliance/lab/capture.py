"""Bridge captures (tcpdump in the switch namespace) and a tiny pcap/ARP parser (no scapy)."""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

from ._proc import LabError

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node

ETH_P_ARP = 0x0806
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113


class Capture:
    """`tcpdump -U -w PATH` on br0 inside the switch namespace. Use Lab.capture()."""

    def __init__(self, switch_ns: str, path: str, bpf: str, iface: str = "br0") -> None:
        self.path = os.path.abspath(path)
        self.bpf = bpf
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        # -Z root: keep root so the file can be written wherever the caller wants.
        # --immediate-mode: without it (-w) libpcap's TPACKET_V3 ring hands packets over
        # only per block / 1 s timeout, and the last second is lost at SIGTERM.
        argv = ["ip", "netns", "exec", switch_ns, "tcpdump", "-U", "--immediate-mode", "-n", "-Z", "root",
                "-i", iface, "-w", self.path]
        if bpf:
            argv.append(bpf)
        self._proc: Optional[subprocess.Popen] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # Wall clock <-> monotonic at start, to convert pcap timestamps (CLOCK_REALTIME).
        self.t_wall = time.time()
        self.t_mono = time.monotonic()
        self._stderr = b""
        self._wait_listening(timeout=10.0)

    def _wait_listening(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        fd = proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            self._stderr += chunk
            if b"listening on" in self._stderr:
                return
        self.stop()
        raise LabError(f"tcpdump did not start: {self._stderr.decode(errors='replace').strip()}")

    def to_monotonic(self, wall: float) -> float:
        """Convert a pcap (wall-clock) timestamp to this process's time.monotonic() scale."""
        return wall - self.t_wall + self.t_mono

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> str:
        """Stop tcpdump (flushes the file) and return the capture path. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if proc.stderr is not None:
                try:
                    proc.stderr.close()
                except OSError:
                    pass
        return self.path

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---- pcap -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PcapPacket:
    time: float          # wall-clock seconds (pcap timestamps)
    data: bytes
    linktype: int


def _pcap_format(head: bytes, path: str) -> Tuple[str, float, int]:
    """(byte order, time unit, linktype) from a classic pcap file header (24 bytes)."""
    for endian in ("<", ">"):
        magic = struct.unpack(endian + "I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            frac = 1e-9 if magic == 0xA1B23C4D else 1e-6
            return endian, frac, struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
    raise ValueError(f"{path}: not a pcap file (pcapng is not supported)")


def _records(blob: bytes, fmt: Tuple[str, float, int]) -> Tuple[List[PcapPacket], int]:
    """The complete records at the start of blob, and how many bytes they took (a record still
    being written is left for later)."""
    endian, frac, linktype = fmt
    rec = struct.Struct(endian + "IIII")
    out: List[PcapPacket] = []
    off = 0
    while off + 16 <= len(blob):
        sec, sub, incl, _orig = rec.unpack_from(blob, off)
        if off + 16 + incl > len(blob):
            break
        out.append(PcapPacket(sec + sub * frac, blob[off + 16:off + 16 + incl], linktype))
        off += 16 + incl
    return out, off


def read_pcap(path: str) -> List[PcapPacket]:
    """All records of a classic pcap file (µs or ns, either byte order); a truncated tail
    record (capture still being written) is ignored."""
    with open(path, "rb") as fh:
        blob = fh.read()
    if len(blob) < 24:
        return []
    return _records(blob[24:], _pcap_format(blob[:24], path))[0]


class PcapTail:
    """The records appended to a growing capture since the last read(): a big run writes
    thousands of packets a second, too many to re-read the whole file every time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 24
        self.fmt: Optional[Tuple[str, float, int]] = None

    def read(self) -> List[PcapPacket]:
        """New complete records; [] while the file is missing or has no header yet. ValueError
        if it is not a classic pcap file."""
        try:
            with open(self.path, "rb") as fh:
                if self.fmt is None:
                    head = fh.read(24)
                    if len(head) < 24:
                        return []
                    self.fmt = _pcap_format(head, self.path)
                fh.seek(self.offset)
                blob = fh.read()
        except OSError:
            return []
        packets, used = _records(blob, self.fmt)
        self.offset += used
        return packets


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _ip(b: bytes) -> str:
    return ".".join(str(x) for x in b)


@dataclass(frozen=True)
class ArpFrame:
    time: float          # wall-clock (pcap); Capture.to_monotonic() converts
    op: str              # "request" | "reply" | "op<N>"
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    src_mac: str         # Ethernet source
    dst_mac: str = ""    # Ethernet destination


def is_gratuitous(frame: ArpFrame) -> bool:
    """Gratuitous ARP: sender IP == target IP."""
    return frame.sender_ip == frame.target_ip


def parse_arp_frames(pcap_path: str) -> List[ArpFrame]:
    """Every IPv4-over-Ethernet ARP frame of a pcap (Ethernet or Linux cooked link type)."""
    frames: List[ArpFrame] = []
    for pkt in read_pcap(pcap_path):
        d = pkt.data
        if pkt.linktype == LINKTYPE_ETHERNET:
            if len(d) < 14:
                continue
            dst, src, etype, off = d[0:6], d[6:12], struct.unpack(">H", d[12:14])[0], 14
            if etype == 0x8100 and len(d) >= 18:          # one 802.1Q tag
                etype, off = struct.unpack(">H", d[16:18])[0], 18
        elif pkt.linktype == LINKTYPE_LINUX_SLL:
            if len(d) < 16:
                continue
            dst, src = b"", d[6:12]
            etype, off = struct.unpack(">H", d[14:16])[0], 16
        else:
            continue
        if etype != ETH_P_ARP or len(d) < off + 28:
            continue
        htype, ptype, hlen, plen, op = struct.unpack(">HHBBH", d[off:off + 8])
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            continue
        a = d[off + 8:off + 28]
        frames.append(ArpFrame(
            time=pkt.time,
            op={1: "request", 2: "reply"}.get(op, f"op{op}"),
            sender_mac=_mac(a[0:6]), sender_ip=_ip(a[6:10]),
            target_mac=_mac(a[10:16]), target_ip=_ip(a[16:20]),
            src_mac=_mac(src), dst_mac=_mac(dst) if dst else "",
        ))
    return frames


# ---- sending ARP by hand (no arping needed) -----------------------------------------------

_GARP_SCRIPT = r"""
import socket, struct, sys
dev, ip, op, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(f"/sys/class/net/{dev}/address") as fh:
    mac = bytes.fromhex(fh.read().strip().replace(":", ""))
ipb = socket.inet_aton(ip)
bcast = b"\xff" * 6
tmac = b"\x00" * 6 if op == 1 else bcast
frame = bcast + mac + struct.pack(">H", 0x0806)
frame += struct.pack(">HHBBH", 1, 0x0800, 6, 4, op) + mac + ipb + tmac + ipb
frame += b"\x00" * (60 - len(frame))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
for _ in range(count):
    s.send(frame)
s.close()
"""


def send_gratuitous_arp(node: Node, ip: str, dev: str = "eth0", op: str = "request",
                        count: int = 1) -> None:
    """Broadcast `count` gratuitous ARP frames (sender = target = ip) from node's dev."""
    code = {"request": 1, "reply": 2}[op]
    node.run([sys.executable, "-c", _GARP_SCRIPT, dev, ip, str(code), str(count)], timeout=15)
