"""Starting and stopping one haresources group: left to right, right to left (spec §9.2).

IP resources (shorthands, IPaddr::, IPaddr2::) are handled natively with netlink and a
gratuitous-ARP burst; IPv6 ones (IPv6addr::, IPaddr2:: with an IPv6 address) with netlink,
duplicate address detection and a burst of unsolicited neighbour advertisements. Every other
resource is a script found in resource.d or init.d.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from appliance.config.haresources import Resource, ResourceGroup, resolve_script
from appliance.rsc.scripts import ScriptResult, child_env, judge_status, run_script

log = logging.getLogger("heartbeat")

STOP_RETRIES = 10       # 3.0.6's HA_STOPRETRYMAX: a stop is retried while status says running
STOP_RETRY_DELAY = 1.0


@dataclass
class Settings:
    script_dirs: tuple[str, ...] = ("/etc/ha.d/resource.d", "/etc/init.d")
    start_timeout: float = 120.0
    stop_timeout: float = 120.0
    status_timeout: float = 30.0
    arp_count: int = 5
    arp_interval: float = 0.2
    env: dict[str, str] = field(default_factory=dict)
    dad_timeout: float = 10.0  # IPv6: longest wait for duplicate address detection


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str


class GroupExecutor:
    """Runs the actions for groups; one action per group at a time (the daemon ensures it)."""

    def __init__(self, settings: Settings, on_announce: Callable[[str, str], None] | None = None):
        self.settings = settings
        self.on_announce = on_announce
        self._announcers: dict[asyncio.Task, str] = {}  # running bursts -> their address

    # --------------------------------------------------------------- public
    async def start(self, group: ResourceGroup) -> Outcome:
        started: list[Resource] = []
        for rsc in group.resources:
            if await self.is_running(rsc):
                log.info("Resource %s already running, not starting it", rsc.text)
                started.append(rsc)
                continue
            log.info("Running %s start", self.describe(rsc))
            res = await self._start_one(rsc)
            if not res.ok:
                detail = f"{rsc.text} start failed: {res.detail}"
                log.error("%s; stopping group %s", detail, group.key)
                for done in reversed(started):
                    await self._stop_one(done)
                return Outcome(False, detail)
            started.append(rsc)
        return Outcome(True, f"{len(started)} resources running")

    async def stop(self, group: ResourceGroup) -> Outcome:
        failures: list[str] = []
        for rsc in reversed(group.resources):
            log.info("Running %s stop", self.describe(rsc))
            res = await self._stop_one(rsc)
            if not res.ok:
                failures.append(f"{rsc.text}: {res.detail}")
        if failures:
            return Outcome(False, "; ".join(failures))
        return Outcome(True, "stopped")

    async def status(self, group: ResourceGroup) -> str:
        """ALL / SOME / NONE, like ResourceManager statgroup."""
        states = [await self.is_running(r) for r in group.resources]
        if all(states):
            return "ALL"
        return "SOME" if any(states) else "NONE"

    async def is_running(self, rsc: Resource) -> bool:
        if rsc.ip is not None:
            from appliance.net import ipaddr

            return ipaddr.find_address(rsc.ip.address) is not None
        res = await self._script(rsc, "status", self.settings.status_timeout)
        return res is not None and res.rc is not None and judge_status(res.output)

    def describe(self, rsc: Resource) -> str:
        if rsc.ip is not None:
            return f"{rsc.name} {rsc.ip.address}"
        return " ".join([rsc.name, *rsc.args])

    async def close(self) -> None:
        for task in list(self._announcers):
            task.cancel()
        for task in list(self._announcers):
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

    # --------------------------------------------------------------- IP
    async def _start_one(self, rsc: Resource) -> Outcome:
        if rsc.ip is not None:
            return await self._ip6_up(rsc) if rsc.ip.family == 6 else self._ip_up(rsc)
        res = await self._script(rsc, "start", self.settings.start_timeout)
        if res is None:
            return Outcome(False, f"no script {rsc.name} in {' or '.join(self.settings.script_dirs)}")
        if not res.ok:
            return Outcome(False, f"{res.describe()}{_tail(res)}")
        return Outcome(True, "started")

    async def _stop_one(self, rsc: Resource) -> Outcome:
        if rsc.ip is not None:
            return self._ip6_down(rsc) if rsc.ip.family == 6 else self._ip_down(rsc)
        for attempt in range(STOP_RETRIES):
            res = await self._script(rsc, "stop", self.settings.stop_timeout)
            if res is None:
                return Outcome(True, "no script, nothing to stop")
            if res.ok or not await self.is_running(rsc):
                return Outcome(True, "stopped")
            log.warning("%s stop %s (attempt %d)%s", rsc.text, res.describe(), attempt + 1, _tail(res))
            await asyncio.sleep(STOP_RETRY_DELAY)
        return Outcome(False, f"still running after {STOP_RETRIES} stop attempts")

    def _ip_up(self, rsc: Resource) -> Outcome:
        from appliance.net import ipaddr

        spec = rsc.ip
        assert spec is not None
        try:
            plan = ipaddr.plan_address(
                spec.address, spec.prefixlen, spec.interface, spec.broadcast, spec.label
            )
            added = ipaddr.add_address(plan)
        except (OSError, ValueError) as exc:
            return Outcome(False, f"cannot add {spec.address}: {exc}")
        log.info(
            "IP address %s/%d %s on %s (label %s, broadcast %s)",
            plan.address, plan.prefixlen, "added" if added else "already", plan.interface,
            plan.label, plan.broadcast,
        )
        # 3.0.6's IPaddr script words it so (operators and BasicSanityCheck grep for "ARP").
        log.info("Sending Gratuitous Arp for %s on %s [%s]", plan.address, plan.label, plan.interface)
        self._garp(plan.interface, plan.address)
        if self.on_announce:
            self.on_announce(plan.interface, plan.address)
        return Outcome(True, "address up")

    async def _ip6_up(self, rsc: Resource) -> Outcome:
        """Add, then wait for DAD (unless nodad): a duplicate fails the start, address removed."""
        from appliance.net import ip6

        spec = rsc.ip
        assert spec is not None
        try:
            plan = ip6.plan_address(spec.address, spec.prefixlen, spec.interface, spec.nodad)
            added = await ip6.bring_up(plan, self.settings.dad_timeout)
        except (OSError, ValueError) as exc:
            log.error("IPv6 address %s not taken: %s", spec.address, exc)
            return Outcome(False, f"cannot add {spec.address}: {exc}")
        dad = "without DAD (nodad)" if plan.nodad else "DAD passed"
        log.info("IPv6 address %s/%d %s on %s, %s", plan.address, plan.prefixlen,
                 "added" if added else "already", plan.interface, dad)
        self._garp(plan.interface, plan.address, spec.router)
        if self.on_announce:
            self.on_announce(plan.interface, plan.address)
        return Outcome(True, "address up")

    def _ip6_down(self, rsc: Resource) -> Outcome:
        from appliance.net import ip6

        assert rsc.ip is not None
        self._silence(rsc.ip.address)
        try:
            gone = ip6.release(rsc.ip.address)
        except (OSError, ValueError) as exc:
            return Outcome(False, f"cannot remove {rsc.ip.address}: {exc}")
        if not gone:
            return Outcome(True, "address already absent")
        log.info("IPv6 address %s removed from %s", rsc.ip.address, ", ".join(gone))
        return Outcome(True, "address down")

    def reannounce(self, rsc: Resource) -> None:
        """Send a fresh announcement burst for an address we hold (after a conflict)."""
        from appliance.net import ipaddr

        if rsc.ip is None:
            return
        where = ipaddr.find_address(rsc.ip.address)
        if where is None:
            return
        self._garp(where[0], rsc.ip.address, rsc.ip.router)

    def _garp(self, ifname: str, address: str, router: bool = False) -> None:
        """A gratuitous-ARP (IPv4) or neighbour-advertisement (IPv6) burst in the background;
        kept so close() can cancel it. IPv6 uses the same count and interval as ARP."""
        from appliance.net import garp, ndisc

        count, interval = self.settings.arp_count, self.settings.arp_interval
        if ":" in address:
            burst = ndisc.announce(ifname, address, count, interval, router)
        else:
            burst = garp.announce(ifname, address, count, interval)
        task = asyncio.ensure_future(burst)
        self._announcers[task] = address
        task.add_done_callback(lambda t: self._announcers.pop(t, None))

    def _silence(self, address: str) -> None:
        """Stop the bursts for an address we are releasing. Announcing it after release would
        point neighbours back at us, and an IPv6 one makes the next holder's DAD fail."""
        for task, announced in list(self._announcers.items()):
            if announced == address:
                task.cancel()

    def _ip_down(self, rsc: Resource) -> Outcome:
        from appliance.net import ipaddr

        spec = rsc.ip
        assert spec is not None
        self._silence(spec.address)
        where = ipaddr.find_address(spec.address)
        if where is None:
            return Outcome(True, "address already absent")
        try:
            plan = ipaddr.plan_address(spec.address, where[1], where[0], spec.broadcast, spec.label)
            ipaddr.remove_address(plan)
        except (OSError, ValueError) as exc:
            return Outcome(False, f"cannot remove {spec.address}: {exc}")
        log.info("IP address %s removed from %s", spec.address, where[0])
        return Outcome(True, "address down")

    # --------------------------------------------------------------- scripts
    async def _script(self, rsc: Resource, verb: str, timeout: float) -> ScriptResult | None:
        path = resolve_script(rsc.name, self.settings.script_dirs)
        if path is None:
            return None
        return await run_script([path, *rsc.args, verb], child_env(self.settings.env), timeout)


def _tail(res: ScriptResult) -> str:
    text = res.output.strip().splitlines()
    return f": {text[-1][:200]}" if text else ""
