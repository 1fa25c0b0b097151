"""What each peer holds and whether it is ready, learnt from its messages (pure).

Our own nodes state their facts explicitly (the hba_* fields of every heartbeat).  A Heartbeat
3.0.6 peer only says `rsc_hold=none|local|foreign|all` from its own point of view, in `resource`
messages, and finishes a hand-over with `ask_resources info=done`; its holdings are inferred.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.wire import catalog
from appliance.wire.message import Message


@dataclass
class PeerFacts:
    held: frozenset[str] = frozenset()
    ready: bool = False
    failed: frozenset[str] = frozenset()
    standby_scope: str = ""
    standby_epoch: int = 0
    replied_at: float = 0.0          # last `resource` message
    first_heard: float | None = None
    legacy: bool = False             # a real Heartbeat 3.0.6 node (no hba_* fields)
    seq: int = 0                     # sequence number of the message the facts came from
    ping: int | None = None          # ping nodes it reaches (None: unknown, e.g. a 3.0.6 node)
    known: bool = False              # it has told us what it holds since we (re)heard it

    def snapshot(self) -> tuple:
        """What the ownership decision reads (facts_now): equal snapshots, same decision."""
        return (self.held, self.ready, self.failed, self.standby_scope, self.standby_epoch,
                self.first_heard, self.legacy, self.ping, self.known)

    def newer(self, seq: int | None) -> bool:
        """Only a message newer than the last one we learnt from may change the facts:
        a retransmitted old message must not roll them back."""
        if seq is None or seq <= self.seq:
            return seq is None
        self.seq = seq
        return True

    def forget(self, now: float | None = None, restarted: bool = False) -> None:
        """The peer died or restarted: nothing it said before still holds."""
        self.held, self.ready, self.first_heard = frozenset(), False, now
        self.ping = None
        self.known = False
        self.standby_scope, self.standby_epoch = "", 0
        if restarted:
            self.seq = 0


def learn_ours(f: PeerFacts, msg: Message) -> bool:
    """Apply our own nodes' explicit facts; False if the message has none (a 3.0.6 sender)."""
    held = msg.get(catalog.X_HELD)
    if held is None:
        return False
    f.legacy = False
    f.known = True
    f.held = frozenset(held.split())
    f.ready = msg.get(catalog.X_READY) == "1"
    f.failed = frozenset((msg.get(catalog.X_FAILED) or "").split())
    scope, _, epoch = (msg.get(catalog.X_STANDBY) or "").partition(" ")
    f.standby_scope = scope
    f.standby_epoch = int(epoch) if epoch.isdigit() and len(epoch) < 12 else 0
    ping = msg.get(catalog.X_PING) or ""
    f.ping = int(ping) if ping.isdigit() and len(ping) < 6 else None
    return True


def scope_groups(scope: str, sender: str, groups: list[tuple[str, str]]) -> frozenset[str]:
    """Group keys that an rsc_hold / ask_resources scope names, seen from `sender`'s side."""
    mask = catalog.rsc_hold_mask(scope)
    return frozenset(
        key for key, home in groups if (mask & 1 and home == sender) or (mask & 2 and home != sender)
    )


def learn_306_resource(f: PeerFacts, msg: Message, sender: str, groups: list[tuple[str, str]]) -> None:
    """A 3.0.6 `resource` message: rsc_hold is what it holds, except while it stands down.

    3.0.6 announces `isstable=0 info=standby` with its *future* holdings before it stops the
    groups it gives away; we keep counting them as held until it says `ask_resources done`.
    """
    f.legacy = True
    f.known = True
    claimed = scope_groups(msg.get("rsc_hold") or "none", sender, groups)
    if msg.get("info") == "standby" and msg.get("isstable") != "1":
        f.held = f.held | claimed
    elif msg.get("info") == "mach_down":
        f.held = f.held | claimed
    else:
        f.held = claimed
    if msg.get("isstable") == "1":
        f.ready = True


def learn_306_done(f: PeerFacts, msg: Message, sender: str, groups: list[tuple[str, str]]) -> frozenset[str]:
    """`ask_resources info=done` from a 3.0.6 peer giving groups away: they are released."""
    released = scope_groups(msg.get("rsc_hold") or "all", sender, groups) & f.held
    f.held = f.held - released
    return released
