"""The local node's resource groups: their state, and the start/stop tasks the core asks for.

One task per group at a time; tasks run in the background and never block the heartbeat loop.
The daemon calls `apply()` with the core's decisions and is called back when a task ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Callable

from appliance.config.haresources import ResourceGroup
from appliance.core.ownership import Decision
from appliance.rsc.group import GroupExecutor, Outcome

log = logging.getLogger("heartbeat")

STOPPED, STARTING, RUNNING, STOPPING, STOP_FAILED = (
    "stopped", "starting", "running", "stopping", "stop_failed",
)
# States in which the group (or part of it) may be up on this node: we claim it.
CLAIMING = (STARTING, RUNNING, STOPPING, STOP_FAILED)
RETRY_DELAY = 30.0   # after a failed start, as 3.0.6's ResourceManager waits before hb_standby


class GroupManager:
    def __init__(
        self,
        groups: list[ResourceGroup],
        executor: GroupExecutor,
        on_change: Callable[[str, str, Outcome | None], None],
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.retry_delay = retry_delay
        self.groups = {g.key: g for g in groups}
        self.order = [g.key for g in groups]
        self.executor = executor
        self.on_change = on_change
        self.state: dict[str, str] = {k: STOPPED for k in self.order}
        self.failed: set[str] = set()      # groups we could not start: others should take them
        self.tasks: dict[str, asyncio.Task] = {}
        self.not_before: dict[str, float] = {}

    # ------------------------------------------------------------ views
    def held(self) -> list[str]:
        return [k for k in self.order if self.state[k] in CLAIMING]

    def busy(self) -> bool:
        return bool(self.tasks)

    def in_transition(self, key: str) -> bool:
        return key in self.tasks

    # ------------------------------------------------------------ actions
    def apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            if d.key in self.tasks:
                continue
            st = self.state[d.key]
            if d.action == "acquire" and st == STOPPED:
                if time.monotonic() < self.not_before.get(d.key, 0.0):
                    continue
                self._launch(d.key, STARTING, self._start(d.key))
            elif d.action == "release" and st in (RUNNING, STOP_FAILED):
                if st == STOP_FAILED and time.monotonic() < self.not_before.get(d.key, 0.0):
                    continue
                self._launch(d.key, STOPPING, self._stop(d.key))

    def adopt(self, key: str) -> None:
        """A group found already running at start-up (e.g. after kill -9 of the daemon)."""
        self.state[key] = RUNNING

    def restore(self, key: str) -> None:
        """Re-run the start of a running group whose address vanished (status skips the rest)."""
        if key not in self.tasks and self.state[key] == RUNNING:
            self._launch(key, STARTING, self._start(key))

    def recover(self, key: str, from_index: int) -> bool:
        """Restart a running group in place from resource `from_index` on (a failed health
        check): stop those resources right to left, start them left to right."""
        if key in self.tasks or self.state[key] != RUNNING:
            return False
        self._launch(key, STARTING, self._recover(key, from_index))
        return True

    def give_up(self, key: str) -> None:
        """Health checks keep failing: mark the group failed so the ownership core hands it to
        the next node (it stays here, and is retried, when no other node can take it)."""
        self.failed.add(key)

    async def stop_all(self) -> None:
        """Graceful shutdown: wait for running tasks, then stop every group in reverse order."""
        for task in list(self.tasks.values()):
            try:
                await task
            except asyncio.CancelledError:
                pass
        for key in reversed(self.order):
            if self.state[key] in CLAIMING:
                self.state[key] = STOPPING
                await self._stop(key)

    def clear_failed(self) -> None:
        self.failed.clear()

    # ------------------------------------------------------------ internals
    def _launch(self, key: str, state: str, coro) -> None:
        self.state[key] = state
        task = asyncio.ensure_future(coro)
        self.tasks[key] = task
        task.add_done_callback(lambda t, k=key: self._done(k, t))
        self.on_change(key, state, None)

    def _done(self, key: str, task: asyncio.Task) -> None:
        if self.tasks.get(key) is task:     # a newer task for the group may already be running
            del self.tasks[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A bug in our own code must not leave the group half-claimed without a trace.
            log.error("Internal error while changing group %s: %r", key, exc)
            self.state[key] = STOP_FAILED
            self.on_change(key, STOP_FAILED, Outcome(False, repr(exc)))

    async def _start(self, key: str) -> None:
        group = self.groups[key]
        log.info("Acquiring resource group: %s %s", group.home, key)
        outcome = await self.executor.start(group)
        if outcome.ok:
            self.state[key] = RUNNING
            self.failed.discard(key)
            log.info("Resource group %s started", key)
        else:
            self.state[key] = STOPPED
            self.failed.add(key)
            self.not_before[key] = time.monotonic() + self.retry_delay
            log.error("Resource group %s failed to start: %s", key, outcome.detail)
        self.tasks.pop(key, None)     # done: announcements made from on_change must say "stable"
        self.on_change(key, self.state[key], outcome)

    async def _recover(self, key: str, from_index: int) -> None:
        group = self.groups[key]
        tail = replace(group, resources=group.resources[from_index:])
        log.warning("Restarting group %s in place from %s", key, tail.resources[0].text)
        stopped = await self.executor.stop(tail)
        outcome = await self.executor.start(tail) if stopped.ok else stopped
        if outcome.ok:
            self.state[key] = RUNNING
            self.failed.discard(key)
            log.info("Resource group %s restarted", key)
        else:
            # The rest of the group is still up: release it all and let another node try.
            log.error("Restart of group %s failed (%s): releasing it", key, outcome.detail)
            rest = await self.executor.stop(group)
            self.failed.add(key)
            self.not_before[key] = time.monotonic() + self.retry_delay
            self.state[key] = STOPPED if rest.ok else STOP_FAILED
            if not rest.ok:
                log.critical("Resource group %s failed to stop: %s", key, rest.detail)
        self.tasks.pop(key, None)
        self.on_change(key, self.state[key], outcome)

    async def _stop(self, key: str) -> None:
        group = self.groups[key]
        log.info("Releasing resource group: %s %s", group.home, key)
        outcome = await self.executor.stop(group)
        if outcome.ok:
            self.state[key] = STOPPED
            log.info("Resource group %s stopped", key)
        else:
            # Keep claiming it: a group we could not stop may still be up, and nobody else
            # must start a second copy.  The operator has to intervene (3.0.6 would reboot).
            self.state[key] = STOP_FAILED
            self.not_before[key] = time.monotonic() + self.retry_delay
            log.critical("Resource group %s failed to stop: %s", key, outcome.detail)
        self.tasks.pop(key, None)
        self.on_change(key, self.state[key], outcome)
