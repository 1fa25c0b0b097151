"""Health checks of the groups this node runs: Heartbeat v1 only watches nodes, we also watch
the services (the extension file's [monitor] section).

Every `interval` seconds each resource of a running group is asked for its status (an IP: is
the address on an interface; a script: `NAME [args] status`, exit 0 and no "not running" in its
output), then the optional `check` command runs.  `fall` bad checks in a row make the group
failed: it is restarted in place, from the first failed resource on, up to `restarts` times
within `failure_timeout`; after that it is marked failed so the ownership core gives it to the
next node (rise good checks in a row after a restart make it healthy again).

`Health` is the pure state machine; `Monitor` runs the checks in the background and asks the
group manager to act.  A check never blocks the heartbeat loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from appliance.config.extension import MonitorSettings
from appliance.config.haresources import ResourceGroup, resolve_script
from appliance.rsc.scripts import _NOT_RUNNING, child_env, run_script

log = logging.getLogger("heartbeat")

NONE, RESTART, GIVE_UP, RECOVERED = "none", "restart", "give_up", "recovered"


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    failed_index: int        # first resource that failed (0 when the check command failed)
    detail: str


class Health:
    """Rise/fall hysteresis and the restart budget of one group (pure: time is passed in)."""

    def __init__(self, settings: MonitorSettings, retry_delay: float) -> None:
        self.settings = settings
        self.retry_delay = retry_delay
        self.bad = 0
        self.good = 0
        self.recovering = False
        self.restarts: deque[float] = deque()
        self.gave_up_at: float | None = None
        self.checks = 0
        self.failures = 0
        self.total_restarts = 0

    def reset(self) -> None:
        """The group was (re)acquired or released: a fresh start, with a fresh budget."""
        self.bad = self.good = 0
        self.recovering = False
        self.restarts.clear()
        self.gave_up_at = None

    def observe(self, ok: bool, now: float) -> str:
        self.checks += 1
        if ok:
            self.bad = 0
            self.good += 1
            if self.recovering and self.good >= self.settings.rise:
                self.recovering = False
                return RECOVERED
            return NONE
        self.failures += 1
        self.good = 0
        self.bad += 1
        if self.bad < self.settings.fall:
            return NONE
        self.bad = 0
        while self.restarts and now - self.restarts[0] > self.settings.failure_timeout > 0:
            self.restarts.popleft()
        if self.gave_up_at is not None:
            # Nobody took the group from us: keep trying in place, at the retry pace.
            if now - self.gave_up_at < self.retry_delay:
                return NONE
            self.gave_up_at = now
            return self._restart(now)
        if len(self.restarts) >= self.settings.restarts:
            self.gave_up_at = now
            return GIVE_UP
        return self._restart(now)

    def _restart(self, now: float) -> str:
        self.restarts.append(now)
        self.total_restarts += 1
        self.recovering = True
        return RESTART


class Monitor:
    """One background task per monitored group."""

    def __init__(
        self,
        groups: list[ResourceGroup],
        settings_for: Callable[[str], MonitorSettings],
        script_dirs: tuple[str, ...],
        env: dict[str, str],
        retry_delay: float,
        is_running: Callable[[str], bool],
        act: Callable[[str, str, CheckResult], None],
    ) -> None:
        self.groups = {g.key: g for g in groups}
        self.settings = {g.key: settings_for(g.key) for g in groups}
        self.health = {k: Health(s, retry_delay) for k, s in self.settings.items() if s.enabled}
        self.script_dirs = script_dirs
        self.env = env
        self.is_running = is_running      # the manager says: running here and not in transition
        self.act = act                    # (key, action, result) -> the daemon acts on it
        self.last: dict[str, CheckResult] = {}
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for key in self.health:
            self._tasks.append(asyncio.ensure_future(self._loop(key)))
            s = self.settings[key]
            log.info("Monitoring group %s every %.1fs (timeout %.1fs, fall %d, rise %d, %d restarts)",
                     key, s.interval, s.timeout, s.fall, s.rise, s.restarts)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def group_changed(self, key: str) -> None:
        """Acquired, released or restarted by someone else: start counting afresh."""
        if key in self.health:
            self.health[key].reset()

    def view(self) -> dict[str, dict]:
        out = {}
        for key, h in self.health.items():
            last = self.last.get(key)
            out[key] = {
                "interval": self.settings[key].interval, "checks": h.checks, "failures": h.failures,
                "restarts": h.total_restarts, "recovering": h.recovering,
                "gave_up": h.gave_up_at is not None,
                "last": None if last is None else {"ok": last.ok, "detail": last.detail},
            }
        return out

    async def _loop(self, key: str) -> None:
        s = self.settings[key]
        while True:
            await asyncio.sleep(s.interval)
            if not self.is_running(key):
                self.health[key].reset()
                continue
            try:
                result = await self.check(self.groups[key], s)
            except Exception as exc:  # noqa: BLE001 - a checker bug must not stop monitoring
                log.error("Health check of group %s raised %r", key, exc)
                continue
            if not self.is_running(key):
                continue     # the group changed while we checked: the result is stale
            self.last[key] = result
            action = self.health[key].observe(result.ok, time.monotonic())
            if not result.ok:
                log.warning("Health check of group %s failed: %s", key, result.detail)
            if action != NONE:
                self.act(key, action, result)

    async def check(self, group: ResourceGroup, s: MonitorSettings) -> CheckResult:
        from appliance.net import ipaddr

        for index, rsc in enumerate(group.resources):
            if rsc.ip is not None:
                if ipaddr.find_address(rsc.ip.address) is None:
                    return CheckResult(False, index, f"address {rsc.ip.address} is not configured")
                continue
            path = resolve_script(rsc.name, self.script_dirs)
            if path is None:
                return CheckResult(False, index, f"no script {rsc.name}")
            res = await run_script([path, *rsc.args, "status"], child_env(self.env), s.timeout)
            if res.rc is None:
                return CheckResult(False, index, f"{rsc.text} status timed out after {s.timeout:.0f}s")
            if res.rc != 0 or _NOT_RUNNING.search(res.output):
                last = res.output.strip().splitlines()[-1:] or [""]
                return CheckResult(False, index, f"{rsc.text} status exit {res.rc}: {last[0][:200]}")
        if s.check:
            env = dict(self.env, HA_GROUP=group.key)
            res = await run_script(["/bin/sh", "-c", s.check], child_env(env), s.timeout)
            if not res.ok:
                last = res.output.strip().splitlines()[-1:] or [""]
                detail = f"check command {res.describe()}: {last[0][:200]}"
                return CheckResult(False, first_service(group), detail)
        return CheckResult(True, -1, "healthy")


def first_service(group: ResourceGroup) -> int:
    """Where a failed check command restarts: the first non-address resource (the service)."""
    for index, rsc in enumerate(group.resources):
        if rsc.ip is None:
            return index
    return 0
