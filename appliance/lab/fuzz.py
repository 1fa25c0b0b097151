"""Bounded random + mutation fuzzer for the wire decoder and the daemon's receive path.

    python -m appliance.lab.fuzz --packets 1000000 --seed 1      (scripts/fuzz wraps this)

Every generated datagram goes through

1. ``appliance.wire.message.decode_packet`` + ``appliance.wire.auth.verify`` directly
   (counted as ``ok`` / ``decode:<reason>`` / ``verify:<reason>``), and
2. ``Daemon._receive(data, link)`` of a real :class:`appliance.daemon.Daemon`, constructed
   but never run (no sockets opened, no event loop, no resource ever started): the daemon's
   own drop counters (``counters.dropped``) give the drop reasons; what is not dropped reached
   a message handler and is counted by message type.

Inputs: the golden 3.0.6 captures (tests/golden/*.pcap) replayed and mutated byte-wise;
random and random-structured datagrams; and - so the handlers themselves get fuzzed -
structurally mutated messages that are RE-SIGNED with the target daemon's key and given
plausible sequence numbers / generations per sender (fresh, gaps, replays, restarts).

The daemon's check loop is emulated every few hundred packets (membership tick, rexmit
queue, the ownership core's decide(), the status snapshot cl_status reads, the 3.0.6
hand-over bookkeeping) - everything except starting or stopping resources.

Findings (exit status 1): an exception escaping ``decode_packet`` other than DecodeError,
``verify`` raising, ``_receive`` raising, a ``decoder_bug`` drop, a rejected packet (bad
decode/auth) that changed the daemon's state, or memory not staying flat.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import random
import sys
import tempfile
import time
import traceback
from typing import Callable, List, Optional, Tuple

from appliance.core import ownership
from appliance.errors import DecodeError
from appliance.lab.fuzz_report import Stats, _rss_kib, format_report
from appliance.lab.fuzz_target import LOCAL, NODES, SRC_CHOICES, TARGETS, Sender, Target
from appliance.wire import auth, catalog
from appliance.wire.message import (
    FT_BINARY,
    FT_LIST,
    FT_STRING,
    FT_STRUCT,
    Message,
    classic_body,
    decode_packet,
    encode_classic,
    encode_netstring,
)
from appliance.wire.pcap import read_udp_datagrams

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "tests", "golden")
MSG_TYPES = ["status", "starting", "resource", "shutdone", "hb_takeover", "ask_resources",
             "ip-request", "ip-request-resp", "NS_rexmit", "NS_nak_rexmit", "reqnodes",
             "repnodes", "NS_ackmsg", "stonith", "query-cstatus", "respond-cstatus",
             "unknown-type", "NS_unknown", ""]
KNOWN_TYPES = frozenset(MSG_TYPES[:-3] + ["ip-request-resp", "ask_resources"])
INTERESTING_INTS = ["0", "1", "-1", "7fffffff", "ffffffff", "ffffffffffffffff", "10000000000000000",
                    "00", "+1", "0x10", "1_0", " 1", "1 ", "9" * 30, "ff" * 9]
KEYS_FOR_FACTS = ["192.168.56.200", "10.9.9.9/24/eth0", "10.9.9.10", "bogus", "", "192.168.56.200 x"]


# ------------------------------------------------------------------------------ logging sink

class _CountingHandler(logging.Handler):
    """Formats every record the daemon logs (so formatting bugs show) and counts them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.levels: collections.Counter = collections.Counter()
        self.format_errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            record.getMessage()
            self.levels[record.levelname] += 1
        except Exception:  # noqa: BLE001 - a finding, counted
            self.format_errors += 1

    def handleError(self, record: logging.LogRecord) -> None:  # pragma: no cover
        self.format_errors += 1


# ------------------------------------------------------------------------------ the fuzzer

class Fuzzer:
    def __init__(self, seed: int = 1, golden_dir: str = GOLDEN_DIR) -> None:
        self.rng = random.Random(seed)
        self._tmp = tempfile.TemporaryDirectory(prefix="hba-fuzz-")
        self.log_sink = _CountingHandler()
        logger = logging.getLogger("heartbeat")
        # Restored by close(): the fuzzer may run inside a test session that inspects logs.
        self._saved_logger = (list(logger.handlers), logger.propagate, logger.level)
        logger.handlers[:] = [self.log_sink]
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        self.targets = [Target(n, k, fb, self._tmp.name, self.rng) for n, k, fb in TARGETS]
        self.corpus: List[bytes] = []
        for fname in sorted(os.listdir(golden_dir)) if os.path.isdir(golden_dir) else []:
            if fname.endswith(".pcap"):
                self.corpus += [d.payload for d in read_udp_datagrams(os.path.join(golden_dir, fname))]
        self.messages: List[Message] = []
        for data in self.corpus:
            try:
                self.messages.append(decode_packet(data).msg)
            except DecodeError:
                pass
        for t in self.targets:      # our own protocol's messages, signed by us
            for _ in range(20):
                m = self._crafted(t)
                self.messages.append(m)
                try:
                    self.corpus.append(auth.sign(m, t.keys))
                except ValueError:
                    pass
        if not self.corpus:
            raise RuntimeError(f"no seed packets (golden dir {golden_dir})")
        self.stats = Stats()
        self.generators: List[Tuple[float, str, Callable[[Target], Tuple[bytes, bool]]]] = [
            (0.08, "golden_replay", self.gen_replay),
            (0.30, "byte_mutation", self.gen_bytes),
            (0.42, "resigned_mutation", self.gen_resigned),
            (0.10, "crafted_valid", self.gen_crafted),
            (0.05, "random_structured", self.gen_structured),
            (0.05, "random_bytes", self.gen_random),
        ]
        self._weights = [w for w, _, _ in self.generators]

    def close(self) -> None:
        logger = logging.getLogger("heartbeat")
        handlers, propagate, level = self._saved_logger
        logger.handlers[:] = handlers
        logger.propagate = propagate
        logger.setLevel(level)
        self._tmp.cleanup()

    # -------------------------------------------------------------- generators
    def gen_replay(self, t: Target) -> Tuple[bytes, bool]:
        return self.rng.choice(self.corpus), False

    def gen_random(self, t: Target) -> Tuple[bytes, bool]:
        r = self.rng
        n = r.choice([0, 1, 3, 4, 5, 16, 64, 300, 1400, r.randrange(0, 9000)])
        head = r.choice([b"", b"###\n", b">>>\n", b"%%%\n", b"<<<\n"])
        return head + r.randbytes(max(0, n - len(head))), False

    def gen_structured(self, t: Target) -> Tuple[bytes, bool]:
        """Well-framed netstring or classic text with random fields, unsigned or junk-signed."""
        r = self.rng
        if r.random() < 0.5:
            out = bytearray(b"###\n")
            for _ in range(r.randrange(0, 12)):
                body = b"(%d)%s=%s" % (r.randrange(0, 6), self._rand_token(), self._rand_value())
                if r.random() < 0.05:
                    body = b"(2)s=" + b"###\n" * r.randrange(1, 40)
                out += b"%d:%s," % (len(body) + r.choice([0, 0, 0, 0, 1, -1]), body)
            out += b"%%%\n"
            if r.random() < 0.7:
                tok = b"%d %s" % (r.randrange(0, 100), r.randbytes(r.randrange(0, 50)).hex().encode())
                out += b"%d:%s," % (len(tok), tok)
            return bytes(out), False
        lines = [b">>>"]
        for _ in range(r.randrange(0, 12)):
            prefix = r.choice([b"", b"", b"(1)", b"(2)", b"(3)", b"(4)", b"(9)", b"("])
            lines.append(prefix + self._rand_token() + b"=" + self._rand_value().replace(b"\n", b""))
        lines.append(b"<<<")
        return b"\n".join(lines) + r.choice([b"\n", b"\n\0", b"", b"\nxx"]), False

    def gen_bytes(self, t: Target) -> Tuple[bytes, bool]:
        r = self.rng
        data = bytearray(r.choice(self.corpus))
        for _ in range(r.choice([1, 1, 1, 2, 3, 8])):
            op = r.randrange(9)
            if not data:
                data += r.randbytes(4)
            i = r.randrange(len(data))
            if op == 0:
                data[i] ^= 1 << r.randrange(8)
            elif op == 1:
                data[i] = r.randrange(256)
            elif op == 2:
                data[i:i] = r.randbytes(r.randrange(1, 16))
            elif op == 3:
                del data[i:i + r.randrange(1, 32)]
            elif op == 4:
                j = r.randrange(len(data))
                data[i:i] = data[j:j + r.randrange(1, 64)]
            elif op == 5:
                data = data[:i]
            elif op == 6:   # tamper with a netstring length
                k = data.find(b":", i)
                if k > 0:
                    data[k - 1:k] = str(r.randrange(10)).encode()
            elif op == 7:   # splice two packets
                other = r.choice(self.corpus)
                data = data[:i] + other[r.randrange(len(other)):]
            else:
                data[i:i] = r.choice([b"\0", b"\n", b",", b":", b"=", b"(", b")", b"###\n", b"%%%\n",
                                      b"\x13", b"\x14", b">>>\n", b"<<<\n", b"9999999:"])
        return bytes(data), False

    def gen_crafted(self, t: Target) -> Tuple[bytes, bool]:
        return self._sign(t, self._crafted(t))

    def gen_resigned(self, t: Target) -> Tuple[bytes, bool]:
        r = self.rng
        m = Message(list(r.choice(self.messages).fields))
        for _ in range(r.choice([0, 1, 1, 2, 3, 5])):
            self._mutate_message(m, t)
        self._sequence(m, t)
        return self._sign(t, m)

    # -------------------------------------------------------------- message helpers
    def _rand_token(self) -> bytes:
        r = self.rng
        return r.choice([b"t", b"src", b"seq", b"hg", b"ts", b"st", b"dt", b"dest", b"auth",
                         b"srcuuid", b"rsc_hold", b"info", b"firstseq", b"lastseq", b"hba_held",
                         b"hba_ready", b"hba_standby", b"hba_failed", b"x", b"", r.randbytes(5)])

    def _rand_value(self) -> bytes:
        r = self.rng
        return r.choice([b"", b"status", b"node1", b"1", b"ff", r.randbytes(r.randrange(0, 40)),
                         b"###\n%%%\n", b"3:a,b", b"active", b"a" * r.randrange(0, 3000)])

    def _rand_text(self) -> str:
        r = self.rng
        choice = r.randrange(6)
        if choice == 0:
            return ""
        if choice == 1:
            return r.choice(INTERESTING_INTS)
        if choice == 2:
            return r.randbytes(r.randrange(1, 24)).decode("utf-8", "surrogateescape").replace("\0", "")
        if choice == 3:
            return "x" * r.choice([1, 100, 5000])
        if choice == 4:
            return r.choice(KEYS_FOR_FACTS + SRC_CHOICES + MSG_TYPES)
        return " ".join(r.choice(KEYS_FOR_FACTS) for _ in range(r.randrange(0, 6)))

    def _mutate_message(self, m: Message, t: Target) -> None:
        r = self.rng
        op = r.randrange(14)
        if op == 0:
            m.set("t", r.choice(MSG_TYPES))
        elif op == 1:
            m.set("src", r.choice(SRC_CHOICES))
        elif op == 2 and m.fields:   # replace a value with random text of the same type
            i = r.randrange(len(m.fields))
            name, ftype, _ = m.fields[i]
            if ftype == FT_STRING:
                m.fields[i] = (name, ftype, self._rand_text())
            elif ftype == FT_BINARY:
                m.fields[i] = (name, ftype, r.randbytes(r.randrange(0, 40)))
            elif ftype == FT_LIST:
                m.fields[i] = (name, ftype, [self._rand_text() or "a" for _ in range(r.randrange(1, 5))])
        elif op == 3 and m.fields:
            del m.fields[r.randrange(len(m.fields))]
        elif op == 4 and m.fields:
            m.fields.insert(r.randrange(len(m.fields) + 1), r.choice(m.fields))
        elif op == 5:               # change a field's type
            if m.fields:
                i = r.randrange(len(m.fields))
                name = m.fields[i][0]
                m.fields[i] = r.choice([
                    (name, FT_BINARY, r.randbytes(8)),
                    (name, FT_LIST, ["a", "b"]),
                    (name, FT_STRUCT, Message.of(t="status", src="node1")),
                    (name, FT_STRING, self._rand_text()),
                ])
        elif op == 6:
            m.set(catalog.X_HELD, self._rand_text())
            m.set(catalog.X_READY, r.choice(["0", "1", "", "yes", "11"]))
        elif op == 7:
            m.set(catalog.X_STANDBY, f"{r.choice(['all', 'local', 'foreign', 'failback', '', 'zz'])} "
                                     f"{r.choice(INTERESTING_INTS + ['12', '99999999999', '-3'])}")
            m.set(catalog.X_FAILED, self._rand_text())
        elif op == 8:
            m.set("st", r.choice(["init", "up", "active", "dead", "", "ping", self._rand_text()]))
            m.set("dt", r.choice(INTERESTING_INTS + ["7d0", "0", "-7d0", "1"]))
        elif op == 9:
            m.set("rsc_hold", r.choice(["none", "local", "foreign", "all", "", "ALL", self._rand_text()]))
            m.set("info", r.choice(["shutdown", "me", "other", "done", "standby", "mach_down", "",
                                    self._rand_text()]))
            m.set("isstable", r.choice(["0", "1", ""]))
        elif op == 10:
            m.set("firstseq", r.choice(INTERESTING_INTS + [str(r.randrange(-5, 2000))]))
            m.set("lastseq", r.choice(INTERESTING_INTS + [str(r.randrange(-5, 10 ** 9))]))
        elif op == 11:
            m.set("dest", r.choice([LOCAL, "node1", "", "intruder", LOCAL.upper()]))
        elif op == 12:
            m.set("ipaddr", r.choice(KEYS_FOR_FACTS + [self._rand_text()]))
            m.set("nodelist", self._rand_text())
        else:
            nested = Message.of(t=r.choice(MSG_TYPES))
            inner = nested
            for _ in range(r.randrange(0, 18)):
                deeper = Message.of(x="1")
                inner.add_struct("s", deeper)
                inner = deeper
            m.add_struct(r.choice(["s", "t", "src", "seq"]), nested)

    def _sequence(self, m: Message, t: Target) -> None:
        """Plausible seq/hg for the sender so most re-signed messages pass membership."""
        r = self.rng
        src = (m.get("src") or "").lower()
        s = self._sender(t, src)
        p = r.random()
        if p < 0.70:
            s.seq += 1
        elif p < 0.78:
            s.seq += r.randrange(2, 400)          # a gap: rexmit requests / reset
        elif p < 0.86:
            m.set("seq", f"{max(1, s.seq - r.randrange(0, 30)):x}")   # duplicate / old
            m.set("hg", f"{s.gen:x}")
            return
        elif p < 0.90:
            s.gen += 1                            # restart
            s.seq = 1
        elif p < 0.93:
            m.set("hg", f"{s.gen - r.randrange(1, 5):x}")            # replay of an old generation
            m.set("seq", f"{s.seq + 1:x}")
            return
        else:
            return                                # leave whatever the mutation produced
        if not (m.get("t") or "").startswith("NS_"):
            m.set("seq", f"{s.seq:x}")
        m.set("hg", f"{s.gen:x}")
        if m.get("ts") is None or r.random() < 0.5:
            m.set("ts", f"{int(time.time()):x}")
        if m.get_bytes("srcuuid") is None and r.random() < 0.8:
            m.add_bytes("srcuuid", s.uuid)

    def _sender(self, t: Target, src: str) -> Sender:
        """The sender's state, caught up with what the daemon has accepted from it (golden
        replays may have moved the peer's generation or sequence past ours)."""
        s = t.senders.get(src) or t.senders.setdefault(src, Sender(uuid=os.urandom(16)))
        peer = t.daemon.mem.peers.get(src)
        if peer is not None:
            if peer.generation > s.gen:
                s.gen, s.seq = peer.generation, peer.last_seq
            elif peer.generation == s.gen and peer.last_seq > s.seq:
                s.seq = peer.last_seq
        return s

    def _crafted(self, t: Target) -> Message:
        """A well-formed message of our protocol (or 3.0.6's), stamped for a random peer."""
        r = self.rng
        kind = r.randrange(13)
        keys = t.groups + ["bogus"]
        if kind == 0:
            m = catalog.status(r.choice(["init", "up", "active"]), r.choice([2000, 4000, 0, 1]))
            if r.random() < 0.8:
                catalog.with_facts(m, r.sample(keys, r.randrange(0, len(keys) + 1)), r.random() < 0.7,
                                   r.choice(["", "all 1", "local 2", "foreign 3", f"all {r.randrange(99)}"]),
                                   r.sample(keys, r.randrange(0, 2)))
        elif kind == 1:
            m = catalog.resource(r.choice(["none", "local", "foreign", "all"]), r.random() < 0.5,
                                 r.choice([None, "shutdown", "standby", "mach_down"]))
        elif kind == 2:
            m = catalog.starting()
        elif kind == 3:
            m = catalog.shutdone()
        elif kind == 4:
            m = catalog.ask_resources(r.choice(["all", "local", "foreign", "none"]),
                                      r.choice(["me", "other", "done"]))
        elif kind == 5:
            m = catalog.hb_takeover(r.choice(["all", "local", "foreign"]))
        elif kind == 6:
            m = catalog.ip_request(r.choice(keys))
        elif kind == 7:
            m = catalog.ip_request_resp(LOCAL, r.choice(keys), r.random() < 0.5)
        elif kind == 8:
            m = catalog.ackmsg(LOCAL, r.randrange(1, 10 ** 6))
        elif kind == 9:
            first = r.randrange(0, 600)
            m = catalog.rexmit(LOCAL, first)
            m.set("lastseq", str(first + r.randrange(0, 100)))
        elif kind == 10:
            m = catalog.nak_rexmit(LOCAL, r.randrange(1, 1000), "not in history")
        elif kind == 11:
            m = catalog.reqnodes(LOCAL)
        else:
            m = catalog.repnodes(LOCAL, NODES)
        src = r.choice(NODES[:3] + [NODES[r.randrange(3)]] * 3 + ["intruder", LOCAL])
        s = self._sender(t, src)
        s.seq += 1
        catalog.stamp(m, src, s.uuid, s.seq, s.gen, int(time.time()), "0.10 0.20 0.30 1/100 42",
                      5, t.daemon.uuid if m.get("dest") else None)
        return m

    def _sign(self, t: Target, m: Message) -> Tuple[bytes, bool]:
        r = self.rng
        try:
            if r.random() < 0.1:     # classic framing with the in-body auth field
                body = m.without(auth.AUTH_FIELD)
                body.add(auth.AUTH_FIELD, auth.auth_token(t.keys, classic_body(body)))
                return encode_classic(body) + r.choice([b"", b"\0"]), True
            return auth.sign(m, t.keys, include_body_auth=r.random() < 0.7), True
        except (ValueError, TypeError):
            self.stats.sign_failures += 1
            try:
                return encode_netstring(m), False
            except (ValueError, TypeError):
                return self.gen_random(t)

    # -------------------------------------------------------------- driving
    def _check_loop(self, t: Target) -> None:
        """What the daemon's check loop does, minus starting/stopping resources."""
        from appliance.statusview import snapshot

        d = t.daemon
        now = time.monotonic()
        try:
            d._handle_changes(d.mem.tick(now), now)
            d._send_rexmits(now)
            decisions = ownership.decide(d.group_info, d.facts_now(now))
            d._start_handover(decisions)
            d._finish_handovers()
            snapshot(d)
            json.dumps(snapshot(d), default=str)
        except Exception as exc:  # noqa: BLE001 - a finding
            self._escape("check_loop", exc, b"")
        self.stats.check_loop_runs += 1

    def _escape(self, where: str, exc: BaseException, data: bytes) -> None:
        tb = traceback.extract_tb(exc.__traceback__)
        frame = tb[-1] if tb else None
        key = f"{where}: {type(exc).__name__} at " + (
            f"{os.path.basename(frame.filename)}:{frame.lineno}" if frame else "?")
        self.stats.escapes[key] += 1
        if key not in self.stats.escape_examples:
            self.stats.escape_examples[key] = f"{exc!r}; packet={data[:400].hex()}"

    def feed(self, data: bytes, t: Target) -> None:
        """One datagram through the direct decode+verify path and the daemon's receive path."""
        st = self.stats
        ok = False
        mtype = src = direct = None
        try:
            pkt = decode_packet(data)
            try:
                bad = auth.verify(pkt, t.keys)
            except Exception as exc:  # noqa: BLE001
                self._escape("verify", exc, data)
                bad = "raised"
            if bad:
                direct = f"verify:{bad}"
            else:
                direct, ok = "ok", True
                mtype, src = pkt.msg.get("t"), pkt.msg.get("src")
        except DecodeError as exc:
            direct = f"decode:{exc.reason}"
        except Exception as exc:  # noqa: BLE001
            self._escape("decode_packet", exc, data)
        before_drop = t.dropped_total()
        before_skip = t.daemon.counters.others_acks
        before_fp = None if ok else t.fingerprint()
        try:
            t.daemon._receive(data, "eth0")
        except Exception as exc:  # noqa: BLE001
            self._escape("Daemon._receive", exc, data)
            return
        if t.daemon.counters.others_acks != before_skip:
            st.others_acks += 1     # never decoded: the direct verdict has no daemon counterpart
        elif direct is not None:
            st.direct[direct] += 1
        dropped = t.dropped_total() != before_drop
        if before_fp is not None and t.fingerprint() != before_fp:
            st.rejected_state_changes += 1
            if len(st.rejected_examples) < 5:
                st.rejected_examples.append(data[:300].hex())
        if ok and not dropped:
            if src and src.lower() == LOCAL:
                st.own += 1
            else:
                st.accepted[mtype if mtype in KNOWN_TYPES else "(other type)"] += 1

    def run(self, packets: int, seconds: Optional[float] = None, progress: bool = False,
            warmup: float = 0.05, trace: bool = False) -> Stats:
        import tracemalloc

        st = self.stats
        st.rss_start_kib = _rss_kib()
        t0 = time.monotonic()
        warm_at = max(1, int(packets * warmup))
        snap = None
        next_report = t0 + 10
        gens = self.generators
        for i in range(packets):
            t = self.targets[i % len(self.targets)]
            _w, name, gen = self.rng.choices(gens, weights=self._weights)[0]
            data, _signed = gen(t)
            st.generators[name] += 1
            self.feed(data, t)
            st.packets += 1
            if i % 250 == 0:
                self._check_loop(t)
            if i + 1 == warm_at:
                st.rss_warm_kib = _rss_kib()
                st.sizes_warm = {x.name: x.sizes() for x in self.targets}
                if trace:
                    tracemalloc.start()
                    snap = tracemalloc.take_snapshot()
            if (i & 1023) == 0:
                now = time.monotonic()
                if seconds is not None and now - t0 >= seconds:
                    break
                if progress and now >= next_report:
                    rate = st.packets / (now - t0)
                    print(f"  {st.packets:>9} packets  {rate:7.0f}/s  escapes={sum(st.escapes.values())}"
                          f"  rss={_rss_kib() // 1024} MiB", file=sys.stderr, flush=True)
                    next_report = now + 10
        for t in self.targets:
            for reason, n in t.daemon.counters.dropped.items():
                st.daemon_drops[reason] += n
        st.seconds = time.monotonic() - t0
        if not st.rss_warm_kib:
            st.rss_warm_kib = st.rss_start_kib
        st.rss_end_kib = _rss_kib()
        st.sizes_end = {x.name: x.sizes() for x in self.targets}
        if snap is not None:
            end = tracemalloc.take_snapshot()
            st.traced_growth_kib = sum(s.size_diff for s in end.compare_to(snap, "filename")) / 1024
            tracemalloc.stop()
        st.log_levels = self.log_sink.levels
        st.log_format_errors = self.log_sink.format_errors
        return st


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=None, help="stop early after this long")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--golden", default=GOLDEN_DIR)
    p.add_argument("--rss-limit-mib", type=int, default=16, help="allowed RSS growth after warm-up")
    p.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    p.add_argument("--json", default="", help="write the counts as JSON here")
    p.add_argument("--quiet", action="store_true")
    o = p.parse_args(argv)
    fz = Fuzzer(seed=o.seed, golden_dir=o.golden)
    try:
        print(f"fuzzing {o.packets} packets, seed {o.seed}, {len(fz.corpus)} seed packets, "
              f"targets {[t.name for t in fz.targets]}", file=sys.stderr)
        st = fz.run(o.packets, o.seconds, progress=not o.quiet, trace=o.tracemalloc)
    finally:
        fz.close()
    print(format_report(st, o.rss_limit_mib * 1024))
    if o.json:
        with open(o.json, "w") as fh:
            json.dump(st.as_dict(), fh, indent=1, default=str)
    return 1 if st.findings(o.rss_limit_mib * 1024) else 0


if __name__ == "__main__":
    sys.exit(main())
