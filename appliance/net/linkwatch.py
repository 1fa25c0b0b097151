"""Carrier of our own heartbeat interfaces and removal of our addresses, from netlink events.

Falls back to polling link state when the netlink subscription cannot be opened.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

log = logging.getLogger("heartbeat")


class LinkWatch:
    def __init__(
        self,
        interfaces: list[str],
        on_carrier: Callable[[str, bool], None],
        on_address_lost: Callable[[str], None],
    ) -> None:
        self.carrier: dict[str, bool] = {i: True for i in interfaces}
        self.on_carrier = on_carrier
        self.on_address_lost = on_address_lost
        self._monitor = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def any_up(self) -> bool:
        return any(self.carrier.values()) if self.carrier else True

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        try:
            from appliance.net.linkmon import LinkMonitor

            self._monitor = LinkMonitor()
            loop.add_reader(self._monitor.fileno(), self._on_events)
        except Exception as exc:  # noqa: BLE001 - fall back to polling carrier
            log.warning("netlink monitor unavailable (%s): polling link state", exc)
            self._monitor = None
        self._poll()

    def poll(self) -> None:
        """Called every tick; only does work when there is no netlink subscription."""
        if self._monitor is None:
            self._poll()

    def _poll(self) -> None:
        from appliance.net import ipaddr

        for ifname in self.carrier:
            st = ipaddr.link_state(ifname)
            self._set(ifname, bool(st and st[0] and st[1]))

    def _on_events(self) -> None:
        from appliance.net.linkmon import AddrEvent, LinkEvent

        assert self._monitor is not None
        for ev in self._monitor.read_events():
            if isinstance(ev, LinkEvent) and ev.ifname in self.carrier:
                self._set(ev.ifname, ev.carrier and ev.admin_up)
            elif isinstance(ev, AddrEvent) and not ev.added:
                self.on_address_lost(ev.address)

    def _set(self, ifname: str, up: bool) -> None:
        if self.carrier.get(ifname) == up:
            return
        self.carrier[ifname] = up
        self.on_carrier(ifname, up)

    def close(self) -> None:
        if self._monitor is not None:
            if self._loop is not None:
                try:
                    self._loop.remove_reader(self._monitor.fileno())
                except (ValueError, OSError):
                    pass
            self._monitor.close()
            self._monitor = None
