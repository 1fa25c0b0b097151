"""Transitions of this node, kept for `cl_status --json` and metrics, and passed to the
operator's notification hooks (the extension file's [hooks] notify = /path, /path...).

Events: `active` / `standby` (a group started / stopped here), `fault` (a group failed to start,
to stop, or its health check failed), `restart` (a group restarted in place), `peer_dead` /
`peer_up` (a node), `ping_dead` / `ping_up` (a ping node), `heal` (a node heard again after a
partition; the hooks are then re-run with this node's current state of every group, so a hook
that missed a change during the partition catches up).

Each hook runs as `HOOK EVENT SUBJECT` with HA_NOTIFY_EVENT, HA_NOTIFY_SUBJECT, HA_NOTIFY_REASON
and HA_NOTIFY_NODE in its environment, one at a time and in the order the transitions happened,
with a timeout; its exit status is logged.  They run in the background: a slow hook delays
other hooks, never the heartbeat.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import asdict, dataclass

from appliance.rsc.scripts import child_env, run_script

log = logging.getLogger("heartbeat")

KEEP = 100           # transitions kept for the status view
QUEUE_MAX = 1000     # pending hook runs; beyond this new ones are dropped (and logged)


@dataclass(frozen=True)
class Transition:
    at: float            # wall clock (seconds since the epoch)
    event: str
    subject: str         # group key or node name
    reason: str


class Journal:
    def __init__(self, local: str, hooks: tuple[str, ...] = (), timeout: float = 30.0,
                 env: dict[str, str] | None = None) -> None:
        self.local = local
        self.hooks = hooks
        self.timeout = timeout
        self.env = dict(env or {})
        self.recent: collections.deque[Transition] = collections.deque(maxlen=KEEP)
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.hook_runs: collections.Counter[str] = collections.Counter()   # by result
        self._queue: asyncio.Queue[Transition] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        if self.hooks:
            self._queue = asyncio.Queue(QUEUE_MAX)
            self._worker = asyncio.ensure_future(self._run_hooks())

    async def close(self, drain_timeout: float = 0.0) -> None:
        """Stop the hook worker, after letting queued hooks run for up to drain_timeout."""
        if self._worker is None:
            return
        if drain_timeout > 0 and self._queue is not None:
            try:
                await asyncio.wait_for(self._queue.join(), drain_timeout)
            except asyncio.TimeoutError:
                log.warning("Notification hooks still pending at shutdown: %d", self._queue.qsize())
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        self._worker = None

    def record(self, event: str, subject: str, reason: str, notify: bool = True) -> Transition:
        t = Transition(time.time(), event, subject, reason)
        self.recent.append(t)
        self.counts[(event, subject)] += 1
        if notify:
            self.notify(t)
        return t

    def notify(self, t: Transition) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(t)
        except asyncio.QueueFull:
            self.hook_runs["dropped"] += 1
            log.error("Notification queue full: hooks not run for %s %s", t.event, t.subject)

    def view(self) -> list[dict]:
        return [asdict(t) for t in self.recent]

    async def _run_hooks(self) -> None:
        assert self._queue is not None
        while True:
            t = await self._queue.get()
            try:
                for hook in self.hooks:
                    await self._run_one(hook, t)
            finally:
                self._queue.task_done()

    async def _run_one(self, hook: str, t: Transition) -> None:
        env = dict(self.env, HA_NOTIFY_EVENT=t.event, HA_NOTIFY_SUBJECT=t.subject,
                   HA_NOTIFY_REASON=t.reason, HA_NOTIFY_NODE=self.local)
        try:
            res = await run_script([hook, t.event, t.subject], child_env(env), self.timeout)
        except Exception as exc:  # noqa: BLE001 - a broken hook must not stop the others
            self.hook_runs["error"] += 1
            log.error("Notify hook %s %s %s could not run: %r", hook, t.event, t.subject, exc)
            return
        self.hook_runs["ok" if res.ok else ("timeout" if res.rc is None else "failed")] += 1
        level = logging.INFO if res.ok else logging.WARNING
        log.log(level, "Notify hook %s %s %s: %s", hook, t.event, t.subject, res.describe())
