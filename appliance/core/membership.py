"""Who is alive: per-peer sequence/generation tracking and dead detection (spec §5.4, §6).

Pure state: every method takes `now` (monotonic seconds) and returns what changed; the daemon
turns those into log lines and messages. No sockets, no clocks, no logging here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_GAP = 250          # 3.0.6: a larger gap resets tracking instead of asking for retransmission
MAX_MISSING = 500      # bound on remembered missing seqs per peer
TS_SLACK = 2           # s: a message stamped this much before the sender's last heartbeat is old

# Verdicts of accept(); anything but ACCEPT is counted by the caller under this name.
ACCEPT = "accept"
DUPLICATE = "duplicate"
REPLAY = "replay"
UNKNOWN_NODE = "unknown_node"
BAD_FIELDS = "bad_fields"
DEPARTED = "departed"


@dataclass
class Peer:
    """What we know of one configured node (including ourselves)."""

    name: str
    uuid: bytes | None = None
    state: str = "init"                  # init / up / active / dead, as cl_status shows it
    generation: int = 0
    last_seq: int = 0
    missing: set[int] = field(default_factory=set)
    last_heard: float | None = None      # any accepted message, any link
    last_status: float | None = None     # last `status` message (for warntime)
    dt_ms: int | None = None             # the peer's advertised deadtime
    links: dict[str, float] = field(default_factory=dict)   # link -> last packet on it
    link_up: dict[str, bool] = field(default_factory=dict)
    shutting_down: bool = False          # sent info=shutdown, waiting for shutdone
    departed: bool = False               # sent shutdone: dead until it restarts (new generation)
    last_ts: int | None = None           # sender's clock (ts) of its latest accepted sequenced message

    @property
    def alive(self) -> bool:
        return self.state in ("up", "active") and not self.shutting_down


@dataclass(frozen=True)
class Change:
    """One membership event, for logging, clients and the ownership core."""

    kind: str        # "state" | "restart" | "link" | "late" | "gap"
    node: str
    old: str = ""
    new: str = ""
    detail: str = ""


@dataclass
class Verdict:
    outcome: str                 # ACCEPT, DUPLICATE, REPLAY, UNKNOWN_NODE, BAD_FIELDS
    changes: list[Change] = field(default_factory=list)
    rexmit: list[int] = field(default_factory=list)   # seqs we should ask the sender to resend


class Membership:
    def __init__(
        self,
        local: str,
        nodes: list[str],
        links: list[str],
        deadtime_ms: int,
        warntime_ms: int,
        initdead_ms: int,
        started: float,
    ) -> None:
        self.local = local
        self.order = list(nodes)
        self.links = list(links)
        self.deadtime_ms = deadtime_ms
        self.warntime_ms = warntime_ms
        self.initdead_ms = initdead_ms
        self.started = started
        self.peers: dict[str, Peer] = {n: Peer(n) for n in nodes}
        self.comm_up = False
        me = self.peers[local]
        me.state = "up"

    # ---------------------------------------------------------------- receive path
    def lookup(self, src: str | None, uuid: bytes | None) -> Peer | None:
        """3.0.6 looks nodes up by uuid first, then by name; we only accept configured names."""
        if src is None:
            return None
        peer = self.peers.get(src.lower())
        if peer is None:
            return None
        if uuid and peer.uuid is None:
            peer.uuid = uuid
        return peer

    def accept(
        self,
        src: str,
        uuid: bytes | None,
        mtype: str,
        seq: int | None,
        generation: int | None,
        link: str,
        now: float,
        ts: int | None = None,
    ) -> Verdict:
        """Liveness comes only from sequenced messages (replay-proof by seq and generation): a
        captured ACK or retransmission request replayed after a node died must not keep it
        alive.  A copy of a message we already have (second link) or an unsequenced message
        still proves its *link* is up, when its timestamp is not older than the sender's last
        heartbeat (replays of old traffic are)."""
        peer = self.lookup(src, uuid)
        if peer is None:
            return Verdict(UNKNOWN_NODE)
        changes: list[Change] = []
        fresh = ts is None or peer.last_ts is None or ts >= peer.last_ts - TS_SLACK
        if mtype.startswith("NS_") or seq is None:
            if not fresh:
                return Verdict(REPLAY)
            self._heard_on_link(peer, link, now, changes)
            return Verdict(ACCEPT, changes)
        gen = generation or 0
        if gen < peer.generation:
            return Verdict(REPLAY, changes)
        if gen > peer.generation:
            if peer.generation:
                changes.append(Change("restart", peer.name, detail=f"generation {gen:x}"))
            peer.generation = gen
            peer.last_seq = 0
            peer.missing.clear()
            peer.departed = False
        if peer.departed:
            return Verdict(DEPARTED, changes)   # stragglers sent before its shutdone
        if peer.state == "dead" and seq > peer.last_seq:
            # Same generation back from the dead: a healed partition (or a false death).
            # Resynchronise instead of asking for everything we missed (3.0.6 does the same).
            changes.append(Change("heal", peer.name, detail=f"{seq - peer.last_seq - 1} missed"))
            peer.last_seq = seq
            peer.missing.clear()
            self._heard_on_link(peer, link, now, changes)
            self._touch(peer, now)
            peer.last_ts = ts if ts is not None else peer.last_ts
            return Verdict(ACCEPT, changes)
        verdict = self._sequence(peer, seq)
        if verdict.outcome == ACCEPT or fresh:
            self._heard_on_link(peer, link, now, changes)
        if verdict.outcome == ACCEPT:
            self._touch(peer, now)
            if ts is not None and seq == peer.last_seq:
                peer.last_ts = ts
        verdict.changes[:0] = changes
        return verdict

    def _sequence(self, peer: Peer, seq: int) -> Verdict:
        if peer.last_seq == 0 or seq == peer.last_seq + 1:
            peer.last_seq = seq
            return Verdict(ACCEPT)
        if seq > peer.last_seq + 1:
            gap = seq - peer.last_seq - 1
            first = peer.last_seq + 1
            peer.last_seq = seq
            if gap > MAX_GAP:
                peer.missing.clear()
                return Verdict(ACCEPT, [Change("gap", peer.name, detail=f"{gap} lost, reset")])
            new = [s for s in range(first, seq) if s not in peer.missing]
            peer.missing.update(new)
            while len(peer.missing) > MAX_MISSING:
                peer.missing.discard(min(peer.missing))
            return Verdict(ACCEPT, [Change("gap", peer.name, detail=f"{gap} lost")], new)
        if seq in peer.missing:
            peer.missing.discard(seq)
            return Verdict(ACCEPT)
        return Verdict(DUPLICATE)

    def _touch(self, peer: Peer, now: float) -> None:
        peer.last_heard = now

    def _heard_on_link(self, peer: Peer, link: str, now: float, changes: list[Change]) -> None:
        peer.links[link] = now
        if not peer.link_up.get(link):
            peer.link_up[link] = True
            changes.append(Change("link", peer.name, "dead", "up", link))

    def status(self, src: str, st: str, dt_ms: int | None, now: float) -> list[Change]:
        """Apply an accepted `status` message: mirror the sender's state, check lateness."""
        peer = self.peers[src]
        changes: list[Change] = []
        if peer.departed:
            return changes      # its last heartbeats after shutdone must not revive it
        if peer.last_status is not None and peer.state != "dead":
            gap_ms = int((now - peer.last_status) * 1000)
            if gap_ms > self.warntime_ms:
                changes.append(Change("late", peer.name, detail=str(gap_ms)))
        peer.last_status = now
        if dt_ms:
            peer.dt_ms = dt_ms
        if st in ("init", "up", "active") and st != peer.state:
            changes.append(Change("state", peer.name, peer.state, st))
            peer.state = st
            peer.shutting_down = False
        return changes

    def mark_dead(self, name: str, detail: str, departed: bool = False) -> list[Change]:
        peer = self.peers[name]
        changes: list[Change] = []
        peer.departed = peer.departed or departed
        if peer.state != "dead":
            changes.append(Change("state", name, peer.state, "dead", detail))
            peer.state = "dead"
        peer.shutting_down = False
        peer.missing.clear()
        for link, up in peer.link_up.items():
            if up:
                peer.link_up[link] = False
                changes.append(Change("link", name, "up", "dead", link))
        return changes

    def missing_of(self, name: str) -> list[int]:
        return sorted(self.peers[name].missing)

    def forget_missing(self, name: str, seq: int) -> None:
        self.peers[name].missing.discard(seq)

    # ---------------------------------------------------------------- timers
    def tick(self, now: float) -> list[Change]:
        """Dead detection: links and nodes silent for longer than their deadtime."""
        changes: list[Change] = []
        for peer in self.peers.values():
            if peer.name == self.local:
                continue
            limit = (peer.dt_ms or self.deadtime_ms) / 1000.0
            for link, last in peer.links.items():
                if peer.link_up.get(link) and now - last > limit:
                    peer.link_up[link] = False
                    changes.append(Change("link", peer.name, "up", "dead", link))
            if peer.state == "dead":
                continue
            if peer.last_heard is None:
                if not self.comm_up and now - self.started > self.initdead_ms / 1000.0:
                    changes += self.mark_dead(peer.name, "initdead")
                elif self.comm_up and now - self.started > self.initdead_ms / 1000.0:
                    changes += self.mark_dead(peer.name, "never heard")
                continue
            if now - peer.last_heard > limit:
                changes += self.mark_dead(peer.name, "deadtime")
        if not self.comm_up and all(
            p.name == self.local or p.last_heard is not None or p.state == "dead"
            for p in self.peers.values()
        ):
            self.comm_up = True
            changes.append(Change("comm", self.local, "down", "up"))
        return changes

    def next_deadline(self) -> float:
        """The earliest moment at which tick() could declare a link or a node dead (monotonic
        seconds; inf when nothing is pending), so the caller sleeps exactly until then."""
        due = float("inf")
        for peer in self.peers.values():
            if peer.name == self.local:
                continue
            limit = (peer.dt_ms or self.deadtime_ms) / 1000.0
            for link, last in peer.links.items():
                if peer.link_up.get(link):
                    due = min(due, last + limit)
            if peer.state == "dead":
                continue
            if peer.last_heard is None:
                due = min(due, self.started + self.initdead_ms / 1000.0)
            else:
                due = min(due, peer.last_heard + limit)
        return due

    # ---------------------------------------------------------------- views
    def alive_nodes(self) -> list[str]:
        return [n for n in self.order if self.peers[n].alive]

    def set_local_state(self, st: str) -> Change | None:
        me = self.peers[self.local]
        if me.state == st:
            return None
        old, me.state = me.state, st
        return Change("state", self.local, old, st)
