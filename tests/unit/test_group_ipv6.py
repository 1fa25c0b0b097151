"""GroupExecutor's IPv6 path with the kernel side replaced (the real thing: e2e/test_ipv6.py)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.config.haresources import parse_haresources
from appliance.net import ip6, ndisc
from appliance.rsc.group import GroupExecutor, Settings


class FakeKernel:
    def __init__(self, dad: Exception | None = None) -> None:
        self.dad = dad
        self.addresses: dict[str, tuple[str, int]] = {}
        self.calls: list[tuple] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def plan(address, prefixlen=None, interface=None, nodad=False):
            self.calls.append(("plan", address, prefixlen, interface, nodad))
            return ip6.Address6Plan(address, prefixlen or 64, interface or "eth0", 2, nodad)

        async def bring_up(plan, dad_timeout=10.0):
            self.calls.append(("bring_up", str(plan), dad_timeout))
            if self.dad is not None and not plan.nodad:
                raise self.dad
            self.addresses[plan.address] = (plan.interface, plan.prefixlen)
            return True

        def release(address):
            self.calls.append(("release", address))
            where = self.addresses.pop(address, None)
            return [where[0]] if where else []

        async def announce(ifname, address, count=5, interval=0.2, router=False):
            self.calls.append(("na", ifname, address, count, interval, router))
            return count

        monkeypatch.setattr(ip6, "plan_address", plan)
        monkeypatch.setattr(ip6, "bring_up", bring_up)
        monkeypatch.setattr(ip6, "release", release)
        monkeypatch.setattr(ip6, "find_address", lambda a: self.addresses.get(a))
        monkeypatch.setattr(ndisc, "announce", announce)


def group(line: str):
    [g] = parse_haresources(f"server1 {line}\n", nodes=["server1"])
    return g


async def _cycle(ex: GroupExecutor, g):
    started = await ex.start(g)
    await asyncio.sleep(0)  # let the background burst run
    status = await ex.status(g)
    stopped = await ex.stop(g)
    await ex.close()
    return started, status, stopped, await ex.status(g)


def test_start_announces_and_stop_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    k = FakeKernel()
    k.install(monkeypatch)
    ex = GroupExecutor(Settings(arp_count=3, arp_interval=0.1, dad_timeout=4.0))
    g = group("IPv6addr::2001:db8::10/64/eth0/router")
    started, status, stopped, after = asyncio.run(_cycle(ex, g))
    assert started.ok and stopped.ok and (status, after) == ("ALL", "NONE")
    assert ("plan", "2001:db8::10", 64, "eth0", False) in k.calls
    assert ("bring_up", "2001:db8::10/64 dev eth0", 4.0) in k.calls
    assert ("na", "eth0", "2001:db8::10", 3, 0.1, True) in k.calls
    assert ("release", "2001:db8::10") in k.calls


def test_dad_failure_fails_the_start_and_stops_what_started(monkeypatch: pytest.MonkeyPatch) -> None:
    k = FakeKernel(dad=ip6.DadFailed("duplicate address detected: ... (DAD failed)"))
    k.install(monkeypatch)
    ex = GroupExecutor(Settings())
    outcome = asyncio.run(ex.start(group("IPv6addr::2001:db8::10/64")))
    assert not outcome.ok and "DAD failed" in outcome.detail
    assert not any(c[0] == "na" for c in k.calls)  # nothing announced for a duplicate


def test_nodad_skips_dad(monkeypatch: pytest.MonkeyPatch) -> None:
    k = FakeKernel(dad=ip6.DadFailed("would fail"))
    k.install(monkeypatch)
    ex = GroupExecutor(Settings())
    outcome = asyncio.run(ex.start(group("IPaddr2::2001:db8::10/64/eth0/nodad")))
    assert outcome.ok
    assert ("plan", "2001:db8::10", 64, "eth0", True) in k.calls


def test_release_cancels_the_running_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    """A neighbour advertisement after release would make the next holder's DAD fail."""
    k = FakeKernel()
    k.install(monkeypatch)
    sent: list[int] = []

    async def slow_announce(ifname, address, count=5, interval=0.2, router=False):
        for i in range(count):
            sent.append(i)
            await asyncio.sleep(interval)
        return count

    monkeypatch.setattr(ndisc, "announce", slow_announce)

    async def run() -> None:
        ex = GroupExecutor(Settings(arp_count=5, arp_interval=0.05))
        g = group("IPv6addr::2001:db8::10/64")
        assert (await ex.start(g)).ok
        await asyncio.sleep(0.01)
        assert (await ex.stop(g)).ok
        await asyncio.sleep(0.3)   # the rest of the burst would have gone out by now
        assert not ex._announcers
        await ex.close()

    asyncio.run(run())
    assert sent == [0]
