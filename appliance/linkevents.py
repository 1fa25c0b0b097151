"""Link events of this node: carrier lost / back (netlink) and our address vanishing.

A node whose heartbeat interface loses carrier releases its groups; when the link returns it
re-learns who holds what before acquiring anything.  Mixed into the Daemon.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.hacf import HaConfig
    from appliance.core.membership import Membership
    from appliance.net.linkwatch import LinkWatch
    from appliance.rsc.group import GroupExecutor
    from appliance.rsc.manager import GroupManager

log = logging.getLogger("heartbeat")


class LinkEvents:
    # Provided by the Daemon.
    cfg: HaConfig
    local: str
    mem: Membership
    links: LinkWatch
    manager: GroupManager
    executor: GroupExecutor
    isolated_since: float | None
    relearn_from: float | None

    def _schedule_reconcile(self) -> None:
        raise NotImplementedError

    def _carrier_changed(self, ifname: str, up: bool) -> None:
        if up:
            log.info("Link %s:%s up (carrier back).", self.local, ifname)
            if self.links.any_up and self.isolated_since is not None:
                # While we heard nobody, every peer looked dead; they may hold our groups now.
                self.relearn_from = time.monotonic()
                self.isolated_since = None
        else:
            log.error("Link %s:%s lost carrier: releasing resource groups", self.local, ifname)
            if not self.links.any_up:
                self.isolated_since = time.monotonic()
        self._schedule_reconcile()

    def _reannounce_held(self) -> None:
        for key in self.manager.held():
            if self.manager.state[key] == "running":
                for rsc in self.manager.groups[key].resources:
                    self.executor.reannounce(rsc)

    def _relearning(self, now: float) -> bool:
        """After our links come back: no acquisition until every peer's heartbeat has been heard
        again, or one deadtime has passed without it (then it really is dead)."""
        if self.relearn_from is None:
            return False
        # A heartbeat (status) carries the facts; an ACK or other message alone does not.
        unheard = [p for n, p in self.mem.peers.items()
                   if n != self.local and (p.last_status or 0.0) < self.relearn_from]
        if unheard and now - self.relearn_from < self.cfg.deadtime_ms / 1000.0:
            return True
        self.relearn_from = None
        return False

    def _address_lost(self, address: str) -> None:
        for key in self.manager.held():
            if self.manager.state[key] != "running" or self.manager.in_transition(key):
                continue
            for rsc in self.manager.groups[key].resources:
                if rsc.ip is not None and rsc.ip.address == address:
                    log.warning("IP address %s of group %s was removed behind our back: restoring",
                                address, key)
                    self.manager.restore(key)
