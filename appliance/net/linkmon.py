"""Link and IPv4 address change notifications from rtnetlink, for asyncio.

    mon = LinkMonitor()
    loop.add_reader(mon.fileno(), lambda: handle(mon.read_events()))

Link events are reported only when an interface's (carrier, admin_up) state
changes, or when it appears. Removal reads as (carrier=False, admin_up=False)
and is not repeated when the interface was already reported down. The kernel also sends RTM_NEWLINK
for MTU, promiscuity or statistics changes, and those are not reported.
Address events are reported as the kernel sends them (IPv4 only).

If the kernel's queue for our socket overflows (ENOBUFS), notifications are
lost. The monitor then counts an overrun and reports every link whose state
differs from what it last reported, from a fresh dump. Lost address events
cannot be recovered that way, so callers that care should re-check with
appliance.net.ipaddr.find_address() when `overruns` goes up.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass
from typing import Any, Union

from appliance.net.rtnl import (
    _HDR,
    NETLINK_ROUTE,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    _rtnl,
    addr_from_msg,
    link_from_msg,
    link_up_state,
    split_messages,
)

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
_RCVBUF = 1 << 20
_RECV_SIZE = 65536
_MAX_DATAGRAMS = 256  # per read_events() call; add_reader calls us again for the rest


@dataclass(frozen=True)
class LinkEvent:
    ifname: str
    carrier: bool  # IFF_LOWER_UP; False while admin down or after removal
    admin_up: bool


@dataclass(frozen=True)
class AddrEvent:
    ifname: str
    address: str
    prefixlen: int
    added: bool


Event = Union[LinkEvent, AddrEvent]


class LinkMonitor:
    """Netlink subscription to link and IPv4 address changes (RTMGRP_LINK |
    RTMGRP_IPV4_IFADDR) for use with asyncio: loop.add_reader(mon.fileno(), ...)."""

    def __init__(self) -> None:
        from appliance.net.rtnl import rtnl_marshal

        self._marshal = rtnl_marshal()
        self.overruns = 0  # times the kernel dropped notifications (ENOBUFS)
        self.malformed = 0  # messages skipped because they could not be decoded
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, _RCVBUF)
                    break
                except OSError:
                    continue
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock: socket.socket | None = sock
        # ifindex -> (ifname, carrier, admin_up) as last reported; subscribe first,
        # then take the baseline, so that no change falls between the two
        self._links: dict[int, tuple[str, bool, bool]] = {}
        try:
            self._resync()
        except OSError as exc:
            log.warning("link monitor: initial link dump failed: %s", exc)

    def fileno(self) -> int:
        if self._sock is None:
            raise ValueError("LinkMonitor is closed")
        return self._sock.fileno()

    def read_events(self) -> list[LinkEvent | AddrEvent]:
        """Drain pending notifications without blocking; skip malformed ones."""
        events: list[LinkEvent | AddrEvent] = []
        if self._sock is None:
            return events
        overrun = False
        for _ in range(_MAX_DATAGRAMS):
            try:
                data, addr = self._sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    overrun = True
                    continue
                log.warning("link monitor: netlink read failed: %s", exc)
                break
            if addr and addr[0] != 0:
                continue  # not from the kernel
            for chunk in split_messages(data):
                try:
                    event = self._decode(chunk)
                except Exception:  # noqa: BLE001 - never let one message break the loop
                    event = None
                    self.malformed += 1
                if event is not None:
                    events.append(event)
        if overrun:
            self.overruns += 1
            log.warning("link monitor: kernel dropped notifications; re-reading link states")
            try:
                events.extend(self._resync())
            except OSError as exc:
                log.warning("link monitor: link dump failed: %s", exc)
        return events

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- internals -----------------------------------------------------------

    def _link_event(self, index: int, name: str, admin_up: bool,
                    carrier: bool) -> LinkEvent | None:
        state = (name, carrier, admin_up)
        if self._links.get(index) == state:
            return None
        self._links[index] = state
        return LinkEvent(ifname=name, carrier=carrier, admin_up=admin_up)

    def _resync(self) -> list[LinkEvent]:
        links = _rtnl().links()
        events = []
        for index in [i for i in self._links if i not in links]:
            name = self._links.pop(index)[0]
            events.append(LinkEvent(ifname=name, carrier=False, admin_up=False))
        for link in links.values():
            admin_up, carrier = link_up_state(link.flags)
            event = self._link_event(link.index, link.name, admin_up, carrier)
            if event is not None:
                events.append(event)
        return events

    def _ifname(self, index: int, label: str) -> str:
        known = self._links.get(index)
        if known is not None:
            return known[0]
        try:
            for link in _rtnl().links().values():
                if link.index == index:
                    return link.name
        except OSError:
            pass
        return label.split(":", 1)[0] if label else f"if{index}"

    def _decode(self, chunk: bytes) -> Event | None:
        mtype = _HDR.unpack_from(chunk)[1]
        if mtype not in (RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR):
            return None
        msg: Any = next(iter(self._marshal.parse(chunk)), None)
        if msg is None or msg["header"].get("error") is not None:
            self.malformed += 1
            return None
        if mtype in (RTM_NEWLINK, RTM_DELLINK):
            link = link_from_msg(msg)
            if link is None:
                return None  # AF_BRIDGE port notifications and the like
            if mtype == RTM_DELLINK:
                # the kernel downs an interface before removing it: report the
                # removal only if the down state has not been reported already
                before = self._links.pop(link.index, None)
                if before == (link.name, False, False):
                    return None
                return LinkEvent(ifname=link.name, carrier=False, admin_up=False)
            admin_up, carrier = link_up_state(link.flags)
            return self._link_event(link.index, link.name, admin_up, carrier)
        addr = addr_from_msg(msg)
        if addr is None:
            return None
        return AddrEvent(ifname=self._ifname(addr.index, addr.label), address=addr.local,
                         prefixlen=addr.prefixlen, added=mtype == RTM_NEWADDR)
