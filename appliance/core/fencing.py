"""STONITH before takeover: which dead nodes must be reset, and what waits for it (pure).

Heartbeat 3.0.6 (hb_rsc_recover_dead_resources, Initiate_Reset, StonithProcessDied): when a
node is declared dead and may still hold resources, a node with a STONITH device resets it
first and takes its resources over only once the reset succeeded; a failed reset is logged as
an error and retried, and nothing is taken meanwhile.  A node that gave its resources up (it
announced `shutdone`) needs no reset: `stonith result=unneeded`.

Here the same rule meets the ownership core: a dead node that may hold a group blocks every
`acquire` of that group (it becomes `wait`) until it is reset.  Only the node about to take a
group runs the device, and only then (as in 3.0.6, where only the survivor taking over does);
a `stonith result=OK` from another node counts as done.  Without a configured device nothing
here is used and takeovers are what they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from appliance.core.ownership import Decision

# Seconds before the next attempt after the n-th failure.  3.0.6 retries at once, for ever;
# a short back-off keeps a dead power switch from filling the log at the speed of the device.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


@dataclass
class Pending:
    node: str
    groups: frozenset[str] | None    # groups it may hold; None = unknown, so any of them
    attempts: int = 0                 # resets tried and failed
    running: bool = False
    next_try: float = 0.0
    wanted: bool = False              # an acquire is waiting for it


def may_hold(departed: bool, known: bool, held: frozenset[str], ready: bool,
             entitled: frozenset[str] = frozenset()) -> frozenset[str] | None:
    """What a node just declared dead may still hold: an empty set means a reset is unneeded,
    None means anything (we never learnt what it holds, or it was still starting up).
    `entitled` are the groups the rule gave it while it lived: it may have been starting one
    (address added) and died before a heartbeat could say so."""
    if departed:                      # sent shutdone: it released everything first
        return frozenset()
    if not known or not ready:
        return None
    return held | entitled


class Fencing:
    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}

    def node_died(self, node: str, groups: frozenset[str] | None) -> bool:
        """Record a death; True if a reset is needed before its groups move."""
        if groups is not None and not groups:
            self.pending.pop(node, None)
            return False
        self.pending[node] = Pending(node, groups)
        return True

    def node_back(self, node: str) -> None:
        """It is alive again (rebooted by the reset, or never gone): no reset to wait for."""
        self.pending.pop(node, None)

    def reset_reported(self, node: str, result: str) -> bool:
        """Another node's `stonith node=X result=...`; True if that settles X for us."""
        if result in ("OK", "unneeded") and node in self.pending and not self.pending[node].running:
            del self.pending[node]
            return True
        return False

    def gate(self, decisions: list[Decision]) -> list[Decision]:
        """Acquires of groups a pending node may hold become waits (and want that reset)."""
        out = []
        for d in decisions:
            blocker = self._blocker(d.key) if d.action == "acquire" else None
            if blocker is None:
                out.append(d)
                continue
            blocker.wanted = True
            why = f"waiting for STONITH of {blocker.node} before taking {d.key}"
            out.append(replace(d, action="wait", reason=why))
        return out

    def due(self, now: float) -> list[str]:
        """Resets to start now: wanted, not running, past their retry time."""
        return [p.node for p in self.pending.values() if p.wanted and not p.running and now >= p.next_try]

    def started(self, node: str) -> None:
        if node in self.pending:
            self.pending[node].running = True

    def finished(self, node: str, ok: bool, now: float) -> float | None:
        """Record an attempt; on failure returns the delay before the retry."""
        p = self.pending.get(node)
        if p is None:
            return None
        p.running = False
        if ok:
            del self.pending[node]
            return None
        delay = RETRY_DELAYS[min(p.attempts, len(RETRY_DELAYS) - 1)]
        p.attempts += 1
        p.next_try = now + delay
        return delay

    def next_due(self) -> float | None:
        """When the next retry is due (for the check loop's sleep), if any is waiting."""
        times = [p.next_try for p in self.pending.values() if p.wanted and not p.running]
        return min(times) if times else None

    def _blocker(self, key: str) -> Pending | None:
        for p in self.pending.values():
            if p.groups is None or key in p.groups:
                return p
        return None
