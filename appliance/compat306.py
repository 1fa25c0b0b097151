"""Speaking to real Heartbeat 3.0.6 nodes: the hand-over exchanges they need (spec §8.3, §8.7).

Between our own nodes the ownership core and the facts in every heartbeat are enough.  A 3.0.6
peer instead waits for `ask_resources` me/other/done before it takes groups we give away, and in
`auto_failback legacy` mode asks for its groups with `ip-request`.  Mixed into the Daemon.
"""

from __future__ import annotations

import logging
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
    owe_done: dict[str, str]
    ip_requests: dict[str, str]
    max_epoch: int

    def _send(self, msg: Message) -> None:
        raise NotImplementedError

    def _hold_name(self, keys: list[str]) -> str:
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
        self.handing_over = self._hold_name(releasing)
        self._send(catalog.ask_resources(self.handing_over, "me"))
        keep = [k for k in self.manager.held() if k not in releasing]
        self._send(catalog.resource(self._hold_name(keep), False, "standby"))

    def _legacy_peer_alive(self) -> bool:
        return any(f.legacy and self.mem.peers[n].alive for n, f in self.facts.items())

    def _finish_handovers(self) -> None:
        for key, requester in list(self.ip_requests.items()):
            if key not in self.manager.held():
                self._send(catalog.ip_request_resp(requester, key, True))
                del self.ip_requests[key]
        if self.manager.busy():
            return
        if self.handing_over:
            self._send(catalog.ask_resources(self.handing_over, "done"))
            self.handing_over = ""
        for scope in self.owe_done.values():
            self._send(catalog.ask_resources(scope, "done"))
        self.owe_done.clear()

