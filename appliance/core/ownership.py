"""Who should hold each resource group: a pure decision core, the same on every node.

Heartbeat 3.0.6 has no election in haresources mode: with three nodes every survivor takes a
dead node's group (spec §8.8). This core replaces that with one deterministic rule that every
node evaluates on the same shared facts (who is alive, who is ready, who claims what, who asked
for standby), so they agree without extra messages:

* Each group has a takeover order: its home node (haresources), then the other `node` lines
  of ha.cf in order, wrapping around after the home node.
* A node is *eligible* when it is alive, finished start-up and its heartbeat link has carrier.
* Candidates are ranked by (failed this group, ping nodes it cannot reach that another
  candidate can, standby epoch, takeover order): a node that could not start or keep the group
  running, that lost its uplink (ipfail's rule), or that asked for standby, goes to the back.
* auto_failback on / legacy: the group belongs to the best-ranked eligible node, so it moves
  back home when home returns.  auto_failback off: it stays with its current holder unless a
  better-ranked node exists by the first three criteria (the holder failed it, lost ping
  nodes another node still reaches, or went standby).
* Release before acquire: a node only takes a group when no live node claims it, and gives it
  up as soon as another node is the rightful owner.  Two claimants (after a partition heals)
  resolve by the same ranking: the loser releases, the winner re-announces.

`decide()` returns, per group, the action for the local node and a one-line reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Standby scopes, as hb_standby names them (spec §8.4).
SCOPES = ("all", "foreign", "local", "failback")


@dataclass(frozen=True)
class NodeView:
    """The facts about one node that every node shares (through status/resource messages)."""

    name: str
    alive: bool = False
    ready: bool = False          # finished start-up negotiation
    link_ok: bool = True         # its heartbeat link has carrier (only known for ourselves)
    held: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    standby_scope: str = ""      # "", "all", "local", "foreign"
    standby_epoch: int = 0
    pending_since: float | None = None   # alive but not ready yet, since when
    grace: float = 0.0                   # wait this long for it to finish starting (0 = default)
    ping: int | None = None              # ping nodes it reaches; None = unknown (no ping nodes, 3.0.6)
    claims_unknown_since: float | None = None   # alive, but has not said what it holds yet


@dataclass(frozen=True)
class GroupInfo:
    key: str
    home: str


@dataclass(frozen=True)
class Decision:
    key: str
    action: str          # "acquire" | "release" | "keep" | "reassert" | "wait" | "none"
    owner: str | None    # who should hold it, by the rule
    reason: str
    rivals: tuple[str, ...] = ()   # other live nodes claiming it (reassert / wait)


@dataclass
class Facts:
    nodes: list[str]                       # ha.cf order
    views: dict[str, NodeView]
    local: str
    auto_failback: str                     # on / off / legacy
    now: float = 0.0
    start_grace: float = 5.0               # how long to wait for a better-ranked node starting up
    extra: dict[str, str] = field(default_factory=dict)


def in_scope(scope: str, group: GroupInfo, node: str) -> bool:
    """Whether a standby of `scope` issued by `node` covers `group` (local = homed at node)."""
    if scope == "all":
        return True
    if scope == "local":
        return group.home == node
    if scope in ("foreign", "failback"):
        return group.home != node
    return False


def takeover_order(nodes: list[str], home: str) -> list[str]:
    """Home first, then the ha.cf node order after it, wrapping around."""
    if home not in nodes:
        return list(nodes)
    i = nodes.index(home)
    return nodes[i:] + nodes[:i]


def rank(
    group: GroupInfo, view: NodeView, order: list[str], best_ping: int = 0
) -> tuple[int, int, int, int]:
    standby = view.standby_epoch if in_scope(view.standby_scope, group, view.name) else 0
    # Unknown reachability (a 3.0.6 peer, no ping nodes) is neutral, never a deficit.
    deficit = best_ping - view.ping if view.ping is not None else 0
    return (1 if group.key in view.failed else 0, max(0, deficit), standby, order.index(view.name))


def eligible(view: NodeView) -> bool:
    return view.alive and view.ready and view.link_ok


def owner_of(group: GroupInfo, facts: Facts) -> str | None:
    """The node that should hold `group` under the rule, or None if nobody can."""
    order = takeover_order(facts.nodes, group.home)
    views = [facts.views[n] for n in order if n in facts.views]
    elig = [v for v in views if eligible(v)]
    best_ping = max((v.ping for v in elig if v.ping is not None), default=0)
    key = lambda v: rank(group, v, order, best_ping)  # noqa: E731
    cands = sorted(elig, key=key)
    if not cands:
        return None
    best = cands[0]
    if facts.auto_failback == "off":
        holders = [v for v in cands if group.key in v.held]
        if holders:
            holder = min(holders, key=key)
            # Sticky, unless the holder failed the group, lost its uplink or stood down and
            # someone better exists.
            if key(best)[:3] < key(holder)[:3]:
                return best.name
            return holder.name
    return best.name


def claimants(group: GroupInfo, facts: Facts, exclude: str = "") -> list[str]:
    """Nodes (other than `exclude`) that say they hold the group and may still have it up."""
    return [
        v.name
        for v in facts.views.values()
        if v.name != exclude and group.key in v.held and (v.alive or v.name == facts.local)
    ]


def decide_group(group: GroupInfo, facts: Facts) -> Decision:
    me = facts.views[facts.local]
    owner = owner_of(group, facts)
    mine = group.key in me.held
    others = claimants(group, facts, exclude=facts.local)
    if mine and owner != facts.local:
        if not eligible(me):
            why = "our heartbeat link is down" if not me.link_ok else "we are not eligible"
            return Decision(group.key, "release", owner, f"{why}; releasing {group.key}")
        who = owner or "nobody"
        why = _why(group, facts, owner)
        return Decision(group.key, "release", owner, f"{who} should hold {group.key} ({why})")
    if mine:
        if others:
            return Decision(
                group.key, "reassert", owner,
                f"{', '.join(others)} also claim {group.key}; we outrank them, keeping it",
                tuple(others),
            )
        return Decision(group.key, "keep", owner, f"we hold {group.key} and should")
    if owner != facts.local:
        return Decision(group.key, "none", owner, f"{owner or 'nobody'} should hold {group.key}")
    if others:
        return Decision(
            group.key, "wait", owner, f"waiting for {', '.join(others)} to release {group.key}", tuple(others)
        )
    unknown = _claims_unknown(facts)
    if unknown:
        why = f"waiting to hear what {unknown} holds before taking {group.key}"
        return Decision(group.key, "wait", owner, why)
    pending = _better_pending(group, facts)
    if pending:
        return Decision(group.key, "wait", owner, f"waiting for {pending} (better ranked) to finish starting")
    return Decision(group.key, "acquire", owner, f"taking {group.key}: {_why(group, facts, facts.local)}")


def decide(groups: list[GroupInfo], facts: Facts) -> list[Decision]:
    return [decide_group(g, facts) for g in groups]


def _claims_unknown(facts: Facts) -> str | None:
    """A live node that has not told us what it holds (only heard an ACK or a retransmission
    from it, say): it may hold the group, so wait for its heartbeat, within the start grace."""
    for v in facts.views.values():
        since = v.claims_unknown_since
        if v.name != facts.local and v.alive and since is not None and facts.now - since < facts.start_grace:
            return v.name
    return None


def _better_pending(group: GroupInfo, facts: Facts) -> str | None:
    """A live node that ranks before us by order but has not finished starting, within grace."""
    order = takeover_order(facts.nodes, group.home)
    mine = order.index(facts.local)
    for name in order[:mine]:
        v = facts.views.get(name)
        if v is None or v.ready or v.pending_since is None:   # pending: heard, not dead, not ready
            continue
        if facts.now - v.pending_since < max(facts.start_grace, v.grace):
            return name
    return None


def _why(group: GroupInfo, facts: Facts, owner: str | None) -> str:
    if owner is None:
        return "no eligible node"
    v = facts.views[owner]
    order = takeover_order(facts.nodes, group.home)
    if owner == group.home and rank(group, v, order)[:3] == (0, 0, 0):
        return f"home node, auto_failback {facts.auto_failback}"
    pings = {n: w.ping for n, w in facts.views.items() if eligible(w) and w.ping is not None}
    if pings and min(pings.values()) < max(pings.values()) and v.ping == max(pings.values()):
        worse = ", ".join(f"{n} {p}" for n, p in sorted(pings.items()) if p < max(pings.values()))
        return f"reaches {v.ping} ping node(s), more than {worse}"
    if facts.auto_failback == "off" and group.key in v.held:
        return "current holder, auto_failback off"
    return f"first eligible node in takeover order {' '.join(order)}"
