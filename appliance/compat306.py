"""Speaking to real Heartbeat 3.0.6 nodes: the hand-over exchanges they need (spec §8.3, §8.7).

Between our own nodes the ownership core and the facts in every heartbeat are enough.  A 3.0.6
peer instead waits for `ask_resources` me/other/done before it takes groups we give away, and in
`auto_failback legacy` mode asks for its groups with `ip-request`.  Mixed into the Daemon.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from appliance.core import ownership
from appliance.core.peerfacts import learn_306_done
from appliance.wire import catalog
from appliance.wire.message import Message

if TYPE_CHECKING:
    from appliance.core.membership import Membership
    from appliance.core.peerfacts import PeerFacts
    from appliance.rsc.manager import GroupManager

log = logging.getLogger("heartbeat")

OTHER_WAIT = 5.0   # how long we wait for a 3.0.6 peer's `ask_resources other` before releasing anyway


class Compat306:
    # Provided by the Daemon.
    facts: dict[str, PeerFacts]
    mem: Membership
    manager: GroupManager
    groups: list
    group_homes: list[tuple[str, str]]
    local: str
    ready: bool
    stopping: bool
    handing_over: str
    handover_asked_at: float | None
    owe_done: dict[str, str]
    ip_requests: dict[str, str]
    max_epoch: int

    def _send(self, msg: Message) -> None:
        raise NotImplementedError

    def _hold_name(self, keys: list[str]) -> str:
        raise NotImplementedError

    def _schedule_reconcile(self) -> None:
        raise NotImplementedError

    def _announce(self) -> None:
        raise NotImplementedError

    def _request_home_groups(self) -> None:
        """Legacy mode: ask 3.0.6 peers for our groups (ip-request); until they answer, they may
        hold them, so they count as claimed."""
        peers = [n for n, f in self.facts.items() if f.legacy and self.mem.peers[n].alive]
        if not peers:
            return
        for g in self.groups:
            if g.home == self.local and g.key not in self.manager.held():
                for n in peers:
                    self.facts[n].held |= {g.key}
                self._send(catalog.ip_request(g.key))

    def _on_ip_request(self, src: str, msg: Message, now: float) -> None:
        """Legacy mode: a 3.0.6 peer asks for its group; it is ready by asking."""
        key = msg.get("ipaddr") or ""
        self.facts[src].ready = True
        if key in self.manager.held():
            self.ip_requests[key] = src      # answered once the group is stopped
        else:
            self._send(catalog.ip_request_resp(src, key, False))

    def _on_ip_request_resp(self, src: str, msg: Message, now: float) -> None:
        key = msg.get("ipaddr") or ""
        f = self.facts[src]
        f.held = f.held - {key}

    def _on_ask_resources(self, src: str, msg: Message, now: float) -> None:
        """3.0.6's hand-over exchange (spec §8.3): me -> other -> done -> done."""
        info, scope = msg.get("info"), msg.get("rsc_hold") or "all"
        if info == "me":
            # The peer wants to give groups away: agree, and rank it last for them (its standby),
            # so that our ownership core takes them once it says `done`.
            if self.ready and not self.stopping:
                f = self.facts[src]
                if f.legacy:
                    self.max_epoch += 1
                    f.standby_scope = "foreign" if scope == "failback" else scope
                    f.standby_epoch = self.max_epoch
                self._send(catalog.ask_resources(scope, "other"))
        elif info == "other":
            if self.handover_asked_at is not None:
                self.handover_asked_at = None      # the peer agreed: release now
                self._schedule_reconcile()
        elif info == "done":
            released = learn_306_done(self.facts[src], msg, src, self.group_homes)
            if released:
                log.info("%s released %s", src, " ".join(sorted(released)))
            if self.facts[src].legacy:
                self.owe_done[src] = scope     # 3.0.6 always completes the exchange with our done

    def _start_handover(self, decisions: list[ownership.Decision]) -> None:
        """Before giving groups away, say so the 3.0.6 way so a real peer will take them."""
        releasing = [
            d.key for d in decisions
            if d.action == "release" and not self.manager.in_transition(d.key)
            and self.manager.state[d.key] in ("running", "stop_failed")
        ]
        if not releasing or self.handing_over or not self._legacy_peer_alive():
            return
        keep = [k for k in self.manager.held() if k not in releasing]
        self._begin_handover(self._hold_name(releasing), keep)

    def _standby_handover(self, scope: str) -> None:
        """hb_standby (or a peer's hb_takeover) with a 3.0.6 peer: 3.0.6 runs the whole
        me/other/done/done exchange even when nothing moves, so we do too."""
        if self.handing_over or not self._legacy_peer_alive():
            return
        keep = [g.key for g in self.groups
                if g.key in self.manager.held() and not ownership.in_scope(scope, g, self.local)]
        self._begin_handover(scope, keep)

    def _begin_handover(self, scope_name: str, keep: list[str]) -> None:
        self.handing_over = scope_name
        self.handover_asked_at = time.monotonic()
        self._send(catalog.ask_resources(scope_name, "me"))
        self._send(catalog.resource(self._hold_name(keep), False, "standby"))

    def _awaiting_other(self, now: float) -> bool:
        """Our `me` is out and the 3.0.6 peer has not agreed yet: release nothing before it does
        (a refused standby must not leave a group unheld)."""
        return self.handover_asked_at is not None and now - self.handover_asked_at < OTHER_WAIT

    def _hold_releases(self, decisions: list[ownership.Decision], now: float) -> list[ownership.Decision]:
        if not self._awaiting_other(now):
            return decisions
        why = "waiting for the 3.0.6 peer to agree (ask_resources other) before releasing"
        return [ownership.Decision(d.key, "wait", d.owner, f"{why} {d.key}") if d.action == "release" else d
                for d in decisions]

    def _legacy_peer_alive(self) -> bool:
        return any(f.legacy and self.mem.peers[n].alive for n, f in self.facts.items())

    def _finish_handovers(self) -> None:
        for key, requester in list(self.ip_requests.items()):
            if key not in self.manager.held():
                self._send(catalog.ip_request_resp(requester, key, True))
                del self.ip_requests[key]
        if self.manager.busy():
            return
        if self.handing_over and not self._awaiting_other(time.monotonic()):
            self._send(catalog.ask_resources(self.handing_over, "done"))
            self.handing_over = ""
            self.handover_asked_at = None
        owed = bool(self.owe_done)
        for scope in self.owe_done.values():
            self._send(catalog.ask_resources(scope, "done"))
        self.owe_done.clear()
        if owed:
            self._announce()   # as 3.0.6: `resource ... isstable=1` closes the exchange for the peer

