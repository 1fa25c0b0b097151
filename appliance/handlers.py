"""Handlers of the cluster messages other nodes send us (status, starting, resource, shutdone,
hb_takeover, retransmission requests, node-list requests).  Mixed into the Daemon; the 3.0.6
hand-over exchanges live in compat306.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from appliance.core.peerfacts import learn_306_resource, learn_ours
from appliance.wire import catalog
from appliance.wire.message import Message

if TYPE_CHECKING:
    from appliance.config.hacf import HaConfig
    from appliance.core.membership import Change, Membership
    from appliance.core.peerfacts import PeerFacts

log = logging.getLogger("heartbeat")


class MessageHandlers:
    # Provided by the Daemon.
    cfg: HaConfig
    mem: Membership
    facts: dict[str, PeerFacts]
    legacy_mode: bool
    ready: bool
    group_homes: list[tuple[str, str]]
    history: dict[int, Message]
    rexmits: dict
    seq: int
    max_epoch: int

    def _send(self, msg: Message) -> None:
        raise NotImplementedError

    def _transmit(self, msg: Message) -> None:
        raise NotImplementedError

    def _drop(self, reason: str) -> None:
        raise NotImplementedError

    def _rsc_hold(self) -> str:
        raise NotImplementedError

    def _handle_changes(self, changes: list[Change], now: float) -> None:
        raise NotImplementedError

    def standby(self, scope: str) -> str:
        raise NotImplementedError

    def _on_status(self, src: str, msg: Message, now: float) -> None:
        st = msg.get("st") or ""
        self._handle_changes(self.mem.status(src, st, hex_field(msg.get("dt")), now), now)
        if not self._learn_facts(src, msg):
            self.facts[src].legacy = True

    def _on_starting(self, src: str, msg: Message, now: float) -> None:
        f = self.facts[src]
        f.ready = False
        f.first_heard = now
        if not self.legacy_mode:
            self._send(catalog.resource(self._rsc_hold(), self.ready))

    def _on_resource(self, src: str, msg: Message, now: float) -> None:
        f = self.facts[src]
        f.replied_at = now
        if msg.get("info") == "shutdown":
            self.mem.peers[src].shutting_down = True
            f.ready = False
            log.info("%s is shutting down: waiting for it to release its resources", src)
            return
        if not self._learn_facts(src, msg) and f.newer(hex_field(msg.get("seq"))):
            learn_306_resource(f, msg, src, self.group_homes)

    def _on_shutdone(self, src: str, msg: Message, now: float) -> None:
        log.info("Received shutdown notice from '%s'.", src)
        self.facts[src].forget()
        self._handle_changes(self.mem.mark_dead(src, "shutdown", departed=True), now)

    def _on_hb_takeover(self, src: str, msg: Message, now: float) -> None:
        mapped = {"all": "all", "local": "foreign", "foreign": "local"}.get(msg.get("rsc_hold") or "", "all")
        log.info("%s asked to take over %s resources: going standby for %s", src, msg.get("rsc_hold"), mapped)
        self.standby(mapped)

    def _on_rexmit(self, src: str, msg: Message, now: float) -> None:
        first, last = int_field(msg.get("firstseq")), int_field(msg.get("lastseq"))
        if first is None or last is None or last < first:
            return self._drop("bad_rexmit")
        for s in range(first, min(last, first + 49) + 1):
            stored = self.history.get(s)
            if stored is None:
                if s <= self.seq:
                    self._send(catalog.nak_rexmit(src, s, "not in history"))
                continue
            self._transmit(Message(list(stored.fields)))

    def _on_nak(self, src: str, msg: Message, now: float) -> None:
        s = hex_field(msg.get("firstseq"))
        if s:
            log.error("Irretrievably lost packet: node %s seq %d", src, s)
            self.mem.forget_missing(src, s)
            self.rexmits.pop((src, s), None)

    def _on_reqnodes(self, src: str, msg: Message, now: float) -> None:
        self._send(catalog.repnodes(src, self.cfg.nodes))

    def _learn_facts(self, src: str, msg: Message) -> bool:
        f = self.facts[src]
        if msg.get(catalog.X_HELD) is None:
            return False
        if not f.newer(hex_field(msg.get("seq"))) or not learn_ours(f, msg):
            return True      # ours, but older than what we already know
        self.max_epoch = max(self.max_epoch, f.standby_epoch)
        return True


def hex_field(text: str | None) -> int | None:
    if not text or len(text) > 16:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def int_field(text: str | None) -> int | None:
    if not text or len(text) > 20:
        return None
    try:
        return int(text, 10)
    except ValueError:
        return None
