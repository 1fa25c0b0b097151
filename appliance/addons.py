"""What the extension file adds to Heartbeat's behaviour, wired to the daemon in one place:
health checks (rsc/monitor.py), the transition journal and notification hooks (journal.py),
Prometheus metrics (metrics.py), periodic gratuitous-ARP refresh and the per-interface
announcement rate limit (net/garp.py).  With no extension file every part stays idle.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from appliance.config.extension import Extension
from appliance.journal import Journal
from appliance.metrics import Exporter
from appliance.net import garp
from appliance.net.pinger import Pinger, ping_nodes
from appliance.rsc.group import Outcome
from appliance.rsc.manager import RUNNING, STOPPED
from appliance.rsc.monitor import GIVE_UP, RECOVERED, RESTART, CheckResult, Monitor
from appliance.wire import catalog

if TYPE_CHECKING:
    from appliance.daemon import Daemon

log = logging.getLogger("heartbeat")

HOOK_DRAIN_AT_STOP = 5.0   # seconds the stop waits for queued hooks (the `standby` ones)


class Addons:
    def __init__(self, d: Daemon, ext: Extension, env: dict[str, str]) -> None:
        self.d = d
        self.ext = ext
        garp.LIMIT = garp.RateLimit(ext.max_rate)
        self.journal = Journal(d.local, ext.notify, ext.notify_timeout, env)
        self.monitor = Monitor(
            d.groups, ext.monitor_for, d.paths.resource_dirs, env, ext.retry_delay,
            self._running_here, self._monitor_action,
        )
        from appliance.statusview import snapshot

        self.exporter = Exporter(ext.metrics_textfile, ext.metrics_interval, ext.metrics_listen,
                                 lambda: snapshot(d), _version())
        self.pinger: Pinger | None = None
        nodes = ping_nodes(d.cfg.ping, d.cfg.ping_groups)
        if nodes:
            self.pinger = Pinger(nodes, d.cfg.keepalive_ms / 1000.0, d.cfg.deadping_ms / 1000.0,
                                 self._ping_changed)
        self.recovering: set[str] = set()
        self.launch_reason: dict[str, str] = {}
        self._refresh: asyncio.Task | None = None

    async def start(self) -> None:
        if self.pinger is not None:
            self.pinger.open(asyncio.get_running_loop())
        self.journal.start()
        self.monitor.start()
        await self.exporter.start()
        if self.ext.refresh_interval > 0:
            self._refresh = asyncio.ensure_future(self._refresh_loop())

    async def stop_checks(self) -> None:
        """At shutdown, before the groups stop: no health check may restart a group now."""
        await self.monitor.close()
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)

    async def close(self) -> None:
        if self.pinger is not None:
            self.pinger.close()
        await self.stop_checks()
        await self.journal.close(HOOK_DRAIN_AT_STOP)
        await self.exporter.close()

    def ping_count(self) -> int | None:
        """Ping nodes this node reaches (shared with peers), None without ping nodes."""
        return self.pinger.reachable() if self.pinger is not None else None

    def ping_view(self) -> list[dict[str, Any]]:
        """Ping nodes as cl_status shows them: type ping, one link named after the node."""
        states = self.pinger.node_states() if self.pinger is not None else {}
        return [{"name": n, "state": "ping" if up else "dead", "type": "ping",
                 "links": {n: "up" if up else "dead"}} for n, up in states.items()]

    def view(self) -> dict[str, Any]:
        j = self.journal
        return {
            "transitions": j.view()[-20:],
            "transition_counts": [[e, s, n] for (e, s), n in sorted(j.counts.items())],
            "monitor": self.monitor.view(),
            "hooks": dict(j.hook_runs),
        }

    # ------------------------------------------------------------ events from the daemon
    def group_changed(self, key: str, state: str, outcome: Outcome | None) -> None:
        if outcome is None:         # a task starts: remember why, for when it ends
            dec = self.d.last_decisions.get(key)
            self.launch_reason[key] = "heartbeat shutdown" if self.d.stopping else (dec.reason if dec else "")
            return
        restarted = key in self.recovering
        self.recovering.discard(key)
        if not restarted:
            self.monitor.group_changed(key)
        reason = self.launch_reason.pop(key, "") or ("heartbeat shutdown" if self.d.stopping else "")
        if not outcome.ok:
            self.journal.record("fault", key, outcome.detail)
        elif state == RUNNING:
            why = "restarted after a failed health check" if restarted else reason
            self.journal.record("active", key, why)
        elif state == STOPPED:
            self.journal.record("standby", key, reason or "released")

    def peer_changed(self, node: str, old: str, new: str) -> None:
        if new == "dead":
            self.journal.record("peer_dead", node, f"no heartbeat for {self.d.cfg.deadtime_ms} ms")
        elif old in ("dead", "init", "") and new in ("up", "active"):
            self.journal.record("peer_up", node, f"status {new}")

    def healed(self, node: str, detail: str) -> None:
        """After a partition the hooks hear this node's current state of every group again."""
        self.journal.record("heal", node, detail)
        for key in self.d.manager.order:
            held = self.d.manager.state[key] == RUNNING
            self.journal.record("active" if held else "standby", key, f"re-run after partition with {node}")

    def _ping_changed(self, name: str, up: bool) -> None:
        total = len(self.pinger.nodes) if self.pinger else 0
        event = "ping_up" if up else "ping_dead"
        self.journal.record(event, name, f"{self.ping_count()} of {total} reachable")
        if not self.d.stopping and self.d.phase != "init":
            self.d._send(catalog.status(self.d._wire_state(), self.d._dt()))   # peers learn it now
            self.d._schedule_reconcile()

    # ------------------------------------------------------------ monitor
    def _running_here(self, key: str) -> bool:
        m = self.d.manager
        return m.state[key] == RUNNING and not m.in_transition(key) and not self.d.stopping

    def _monitor_action(self, key: str, action: str, result: CheckResult) -> None:
        if action == RESTART:
            if self.d.manager.recover(key, max(0, result.failed_index)):
                self.recovering.add(key)
                self.journal.record("restart", key, result.detail)
        elif action == GIVE_UP:
            s = self.monitor.settings[key]
            log.error("Group %s failed its health check after %d restarts: giving it to another node",
                      key, s.restarts)
            self.journal.record("fault", key, f"health check: {result.detail}")
            self.d.manager.give_up(key)
            self.d._announce()
            self.d._schedule_reconcile()
        elif action == RECOVERED:
            log.info("Group %s healthy again", key)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ext.refresh_interval)
            if not self.d.stopping:
                self.d._reannounce_held()


def _version() -> str:
    from appliance import __version__

    return __version__
