"""STONITH in the daemon: the glue between the pure rule (core/fencing.py), the `stonith`
command (rsc/stonith.py), the log and the wire.  Mixed into the Daemon.

Log lines and messages are 3.0.6's (hb_resource.c):
    info:  Resetting node X with [DEVICE]          then   info: node X now reset.
    ERROR: Host X not reset!  /  Device D cannot reset host X.   ERROR: STONITH of X failed.  Retrying...
    wire:  t=stonith node=X result=OK|bad|badhost|unneeded
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from appliance.core.fencing import Fencing, may_hold
from appliance.core.ownership import Decision
from appliance.rsc.scripts import child_env
from appliance.rsc.stonith import ResetOutcome, StonithRunner
from appliance.wire import catalog
from appliance.wire.message import Message

if TYPE_CHECKING:
    from appliance.config.hacf import HaConfig
    from appliance.core.membership import Membership
    from appliance.core.peerfacts import PeerFacts
    from appliance.paths import Paths
    from appliance.rsc.group import GroupExecutor

log = logging.getLogger("heartbeat")


class FenceOps:
    # Provided by the Daemon.
    cfg: HaConfig
    paths: Paths
    mem: Membership
    facts: dict[str, PeerFacts]
    executor: GroupExecutor
    last_decisions: dict[str, Decision]
    _loop: asyncio.AbstractEventLoop | None

    def _send(self, msg: Message) -> None:
        raise NotImplementedError

    def _schedule_reconcile(self) -> None:
        raise NotImplementedError

    def _init_fencing(self) -> None:
        """Called in Daemon.__init__, still as root: the parameter file is written here."""
        self.fencing = Fencing()
        self.stonith: StonithRunner | None = None
        self._fence_tasks: dict[str, asyncio.Task] = {}
        device = self.cfg.stonith
        if device is None:
            return
        self.stonith = StonithRunner(device, self.paths.run, child_env(self.executor.settings.env))
        try:
            self.stonith.prepare()
        except OSError as exc:
            log.error("Cannot write the STONITH parameter file %s: %s", self.stonith.param_file, exc.strerror)

    def _fence_node_died(self, node: str) -> None:
        """A node was just declared dead (before its facts are forgotten)."""
        if self.stonith is None:
            return          # no device: 3.0.6's takeover without reset, as before
        peer, f = self.mem.peers[node], self.facts.get(node)
        if f is None:
            return
        entitled = frozenset(k for k, d in self.last_decisions.items() if d.owner == node)
        groups = may_hold(peer.departed, f.known, f.held, f.ready, entitled)
        if not self.fencing.node_died(node, groups):
            log.info("Dead node %s gave up resources.", node)
            self._send(catalog.stonith_result(node, "unneeded"))

    def _fence_node_back(self, node: str) -> None:
        if node in self.fencing.pending:
            log.info("Node %s is back: no STONITH needed any more", node)
            self.fencing.node_back(node)

    def _fence_gate(self, decisions: list[Decision]) -> list[Decision]:
        """Acquires that must wait for a reset, and the resets to start for them."""
        if not self.fencing.pending:
            return decisions
        decisions = self.fencing.gate(decisions)
        for node in self.fencing.due(time.monotonic()):
            self.fencing.started(node)
            self._fence_tasks[node] = asyncio.ensure_future(self._fence(node))
        return decisions

    async def _fence(self, node: str) -> None:
        assert self.stonith is not None
        outcome: ResetOutcome | None = None
        reason = ""
        try:
            desc = await self.stonith.description()
            log.info("Resetting node %s with [%s]", node, desc)
            outcome = await self.stonith.reset(node)
        except Exception as exc:  # noqa: BLE001 - a failed attempt is retried, never fatal
            log.exception("STONITH of %s: internal error", node)
            reason = str(exc)
        self._fence_tasks.pop(node, None)
        if outcome is not None and outcome.ok:
            log.info("node %s now reset.", node)
        elif outcome is not None and outcome.result == "badhost":
            log.error("Device %s cannot reset host %s. (%s)", self.stonith.device.type, node, outcome.detail)
        else:
            log.error("Host %s not reset! (%s)", node, outcome.detail if outcome else reason)
        if outcome is not None:
            self._send(catalog.stonith_result(node, outcome.result))
        if node not in self.fencing.pending:
            return          # it came back meanwhile
        delay = self.fencing.finished(node, outcome is not None and outcome.ok, time.monotonic())
        if delay is not None:
            log.error("STONITH of %s failed.  Retrying in %.0f s...", node, delay)
            if self._loop is not None:
                self._loop.call_later(delay + 0.01, self._schedule_reconcile)
        self._schedule_reconcile()

    def _on_stonith(self, src: str, msg: Message, now: float) -> None:
        node, result = (msg.get("node") or "").lower(), msg.get("result") or ""
        if self.fencing.reset_reported(node, result):
            log.info("Node %s reset by %s (%s)", node, src, result)
            self._schedule_reconcile()

    def _fence_cancel(self) -> None:
        for task in self._fence_tasks.values():
            task.cancel()
        self._fence_tasks.clear()
