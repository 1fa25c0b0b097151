"""The kernel filter for other nodes' ACKs, run by the real kernel on loopback UDP sockets."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import DecodeError
from appliance.net import ackfilter
from appliance.wire import auth
from appliance.wire.catalog import ackmsg
from appliance.wire.message import Message, ack_dest, decode_packet, encode_netstring
from appliance.wire.pcap import read_udp_datagrams

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PAYLOADS = [d.payload for cap in sorted(GOLDEN.glob("*.pcap")) for d in read_udp_datagrams(str(cap))]
SENTINEL = b"sentinel"


class Filtered:
    """A receiving socket with the filter of node `local`, and a sender."""

    def __init__(self, local: str) -> None:
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rx.bind(("127.0.0.1", 0))
        self.rx.settimeout(5.0)
        ackfilter.attach(self.rx, ackfilter.program(local))
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def passed(self, datagrams: list[bytes]) -> list[bytes]:
        """Which of the datagrams the kernel delivered, in order. Sent in batches, each closed
        by a sentinel, so the receive buffer never overflows."""
        got: list[bytes] = []
        for start in range(0, len(datagrams), 32):
            batch = datagrams[start : start + 32]
            for d in batch:
                self.tx.sendto(d, self.rx.getsockname())
            self.tx.sendto(SENTINEL, self.rx.getsockname())
            for _ in range(len(batch) + 1):
                data = self.rx.recv(65536)
                if data == SENTINEL:
                    break
                got.append(data)
            else:
                raise AssertionError("sentinel never arrived")
        return got

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


@pytest.fixture
def node1():
    f = Filtered("node1")
    yield f
    f.close()


KEYS = SimpleNamespace(active=1, methods={1: SimpleNamespace(method="sha1", key=b"k")})


def signed(msg: Message) -> bytes:
    return auth.sign(msg, KEYS)


def ack(dest: str, src: str) -> bytes:
    msg = ackmsg(dest, 0x1A)
    msg.add("src", src)
    return signed(msg)


def test_other_nodes_acks_are_dropped_ours_and_the_rest_pass(node1) -> None:
    to_us = ack("node1", "node2")
    others = [ack("node2", "node1"), ack("node10", "node2"), ack("node", "x"), ack("NODE1", "node2")]
    status = signed(Message.of(t="status", st="active", src="node2"))
    short = [b"", b"###\n", ackfilter.ACK_PREFIX, ackfilter.ACK_PREFIX + b"13:(0)dest=node"]
    assert node1.passed([to_us, *others, status, *short]) == [to_us, status, *short]


def test_real_306_traffic(node1) -> None:
    """3.0.6's own captures: only its ACKs to nodes other than node1 are held back."""
    acks = [p for p in PAYLOADS if ack_dest(p) is not None]
    assert any(ack_dest(p) == b"node1" for p in acks) and any(ack_dest(p) != b"node1" for p in acks)
    assert node1.passed(PAYLOADS) == [p for p in PAYLOADS if ack_dest(p) in (None, b"node1")]


@given(st.binary(max_size=6), st.integers(0, 60), st.sampled_from(["node1", "node2", "node10", "n"]))
@settings(max_examples=200, deadline=None)
def test_drops_only_what_user_space_would_skip_or_reject(junk: bytes, cut: int, dest: str) -> None:
    """Exactly the datagrams shaped like an ACK and not addressed to us are dropped; user space
    would skip those as other nodes' ACKs, or fail to decode them."""
    f = Filtered("node1")
    try:
        ack = encode_netstring(Message.of(t="NS_ackmsg", dest=dest, ackseq="1a", src="node2"))
        mutated = ack[:cut] + junk + ack[cut + len(junk):]
        [delivered] = f.passed([mutated]) or [None]
    finally:
        f.close()
    prefix, ours = ackfilter.ACK_PREFIX, ackfilter.dest_field(b"node1")
    shaped = mutated.startswith(prefix) and len(mutated) >= len(prefix) + len(ours)
    assert (delivered is None) == (shaped and not mutated[len(prefix):].startswith(ours))
    if delivered is None and ack_dest(mutated) == b"node1":
        # Only with a wrong length in front of our name: user space would reject it as malformed.
        with pytest.raises(DecodeError):
            decode_packet(mutated)


def test_long_names_fit_and_too_long_is_refused() -> None:
    assert len(ackfilter.program("n" * 100)) < 4096
    with pytest.raises(ValueError):
        ackfilter.program("n" * 600)
