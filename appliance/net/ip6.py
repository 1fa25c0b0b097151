"""Native IPv6 address takeover over rtnetlink (what IPv6addr / IPaddr2 do with `ip -6`).

* plan_address() picks the interface and prefix length like the IPv4 planner (and like the
  IPv6addr agent's scan of /proc/net/if_inet6): the interface whose connected route or
  existing address prefix contains the address, longest prefix first, unless one is given;
* add_address() / remove_address() are idempotent; an address added with `nodad` carries
  IFA_F_NODAD and is usable at once;
* wait_dad() waits (bounded, without blocking the event loop) for the kernel's duplicate
  address detection: the address leaves IFA_F_TENTATIVE, or gets IFA_F_DADFAILED because
  another host on the link already has it;
* bring_up() is add + wait, removing the address again when DAD fails or never finishes.

IPv6 addresses have no labels and no broadcast address. Everything acts on the network
namespace of the calling process, through the per-process netlink socket of appliance.net.rtnl
(see that module for why pyroute2's IPRoute is not used).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from appliance.net.ipaddr import AddressError
from appliance.net.rtnl import (
    IFF_LOOPBACK,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    RT_SCOPE_UNIVERSE,
    RTM_DELADDR,
    RTM_NEWADDR,
    _Addr,
    _Link,
    _Rtnl,
    _rtnl,
)

# linux/if_addr.h
IFA_F_NODAD = 0x02
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
IFA_F_PERMANENT = 0x80

#: Default bound for DAD. Linux needs up to rtr_solicit_delay (1 s, a random part of it) plus
#: dad_transmits x retrans_time (1 x 1 s); IPaddr2 gives up after 10 one-second polls too.
DAD_TIMEOUT = 10.0
DAD_POLL = 0.05  # a netlink dump of a few addresses costs microseconds

#: A duplicate seen right at a hand-over may be the previous holder still letting go (a
#: release and our acquisition can cross); one more try after this pause tells it apart
#: from a host that really has the address.
DAD_RETRY_DELAY = 1.0

_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
log = logging.getLogger("heartbeat")


class DadFailed(AddressError):
    """Another host on the link answered our duplicate address detection: it has the address."""


class DadTimeout(AddressError):
    """The address stayed tentative longer than allowed (e.g. no carrier, so no DAD at all)."""


@dataclass(frozen=True)
class Address6Plan:
    """Everything needed to add or remove one floating IPv6 address."""

    address: str  # canonical text
    prefixlen: int
    interface: str
    ifindex: int
    nodad: bool = False

    def __str__(self) -> str:
        return f"{self.address}/{self.prefixlen} dev {self.interface}{' nodad' if self.nodad else ''}"


def _parse_ipv6(address: str) -> ipaddress.IPv6Address:
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        raise AddressError(f"address {address!r} is not a valid IP address") from None
    if ip.version != 6:
        raise AddressError(f"address {address} is IPv4; use appliance.net.ipaddr")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip in _LINK_LOCAL:
        raise AddressError(f"address {address} cannot float between nodes")
    return ip  # type: ignore[return-value]


def _check_prefix(prefixlen: Any) -> int:
    if isinstance(prefixlen, bool) or not isinstance(prefixlen, (int, str)):
        raise AddressError(f"prefix length {prefixlen!r} is not a whole number")
    text = str(prefixlen).strip()
    if not text.isdigit() or not 1 <= int(text) <= 128:
        raise AddressError(f"prefix length {prefixlen!r} is out of range (1-128)")
    return int(text)


def _subnets(rt: _Rtnl, links: dict[int, _Link],
             addrs: list[_Addr]) -> list[tuple[ipaddress.IPv6Network, int]]:
    """Candidate (network, ifindex) pairs: on-link routes and the prefixes of addresses."""
    candidates = [(net, oif) for oif, net in rt.connected_routes(socket.AF_INET6)]
    for a in addrs:
        if a.flags & IFA_F_DADFAILED:
            continue
        try:
            candidates.append((ipaddress.IPv6Network(f"{a.local}/{a.prefixlen}", strict=False),
                               a.index))
        except ValueError:
            continue
    out: list[tuple[ipaddress.IPv6Network, int]] = []
    for net, index in candidates:
        link = links.get(index)
        # ::/0 would match everything; fe80::/64 exists on every link and says nothing.
        if link is None or link.flags & IFF_LOOPBACK or net.prefixlen == 0 or net.subnet_of(
                _LINK_LOCAL):
            continue
        if (net, index) not in out:
            out.append((net, index))
    return out


def plan_address(address: str, prefixlen: int | None = None, interface: str | None = None,
                 nodad: bool = False) -> Address6Plan:
    """Where and how a floating IPv6 address goes.

    Without an interface: the one whose on-link route or address prefix contains the address
    (longest prefix wins, then the lowest ifindex), with that prefix when prefixlen is None.
    With an interface: that one (altnames work); the prefix must be given when it has no
    matching prefix. Raises AddressError (a ValueError) with an operator-readable reason.
    """
    ip = _parse_ipv6(address)
    prefix = None if prefixlen is None else _check_prefix(prefixlen)
    rt = _rtnl()
    links = rt.links()
    subnets = _subnets(rt, links, rt.addrs(socket.AF_INET6))
    if interface is None:
        matches = [(net, idx) for net, idx in subnets if ip in net]
        if not matches:
            raise AddressError(f"no interface has a prefix containing {ip}; "
                               "give it as ADDR/PREFIX/NIC")
        best_net, best_idx = min(matches, key=lambda m: (-m[0].prefixlen, m[1]))
        link = links[best_idx]
        if prefix is None:
            prefix = best_net.prefixlen
    else:
        name = str(interface).strip()
        found = next((lk for lk in links.values() if lk.name == name), None)
        found = found or rt.link_by_name(name)
        if found is None:
            raise AddressError(f"interface {name} (for {ip}) does not exist")
        link = found
        if prefix is None:
            mine = [net.prefixlen for net, idx in subnets if idx == link.index and ip in net]
            if not mine:
                raise AddressError(f"no prefix of {link.name} contains {ip}; give it as "
                                   f"{ip}/<prefix>/{link.name}")
            prefix = max(mine)
    return Address6Plan(str(ip), prefix, link.name, link.index, bool(nodad))


def _on_link(rt: _Rtnl, plan: Address6Plan) -> tuple[int | None, list[_Addr]]:
    """The interface's index now (it may have been re-created) and our address on it."""
    link = rt.link_by_name(plan.interface)
    if link is None:
        return None, []
    target = ipaddress.IPv6Address(plan.address)
    return link.index, [a for a in rt.addrs(socket.AF_INET6)
                        if a.index == link.index and ipaddress.IPv6Address(a.local) == target]


def address_flags(plan: Address6Plan) -> int | None:
    """IFA_F_* flags of the planned address on its interface, or None when it is not there."""
    _index, mine = _on_link(_rtnl(), plan)
    return mine[0].flags if mine else None


def add_address(plan: Address6Plan) -> bool:
    """Add the planned address. True if added, False if already on that interface.

    Raises AddressError if the interface is gone, OSError for a kernel refusal,
    TimeoutError if the kernel does not answer.
    """
    rt = _rtnl()
    index, mine = _on_link(rt, plan)
    if index is None:
        raise AddressError(f"cannot add {plan.address}: interface {plan.interface} does not exist")
    if mine:
        return False
    flags = IFA_F_NODAD if plan.nodad else 0
    try:
        rt.change_addr(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                       {"family": socket.AF_INET6, "prefixlen": plan.prefixlen, "flags": flags,
                        "scope": RT_SCOPE_UNIVERSE, "index": index},
                       [("IFA_ADDRESS", plan.address), ("IFA_FLAGS", flags)])
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise OSError(exc.errno, f"cannot add {plan}: {exc.strerror}") from None
    return True


def remove_address(plan: Address6Plan) -> bool:
    """Remove the address from the planned interface (whatever its DAD state).

    True if removed, False if it was not there.
    """
    rt = _rtnl()
    index, mine = _on_link(rt, plan)
    if index is None or not mine:
        return False
    for a in mine:
        try:
            rt.change_addr(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK,
                           {"family": socket.AF_INET6, "prefixlen": a.prefixlen, "flags": 0,
                            "scope": 0, "index": index}, [("IFA_ADDRESS", a.local)])
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV, errno.ESRCH):
                return False
            raise OSError(exc.errno, f"cannot remove {plan}: {exc.strerror}") from None
    return True


def find_address(address: str) -> tuple[str, int] | None:
    """(ifname, prefixlen) of an interface that has the address now, or None.

    An address whose DAD failed is not ours to use, so it does not count; a tentative one
    (DAD still running) does.
    """
    target = _parse_ipv6(address)
    rt = _rtnl()
    hits = sorted((a for a in rt.addrs(socket.AF_INET6)
                   if ipaddress.IPv6Address(a.local) == target and not a.flags & IFA_F_DADFAILED),
                  key=lambda a: a.index)
    if not hits:
        return None
    links = rt.links()
    for a in hits:
        link = links.get(a.index)
        if link is not None:
            return link.name, a.prefixlen
    return None


async def wait_dad(plan: Address6Plan, timeout: float = DAD_TIMEOUT, poll: float = DAD_POLL) -> float:
    """Wait until the address is no longer tentative; returns the seconds it took.

    Raises DadFailed (IFA_F_DADFAILED), DadTimeout (still tentative after `timeout`) or
    AddressError when the address disappeared meanwhile. Never blocks the loop for longer
    than one netlink dump.
    """
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    while True:
        flags = address_flags(plan)
        if flags is None:
            raise AddressError(f"{plan.address} vanished from {plan.interface} during DAD")
        if flags & IFA_F_DADFAILED:
            raise DadFailed(f"duplicate address detected: another host on {plan.interface} "
                            f"already has {plan.address} (DAD failed)")
        if not flags & IFA_F_TENTATIVE:
            return time.monotonic() - start
        if time.monotonic() >= deadline:
            raise DadTimeout(f"{plan.address} still tentative on {plan.interface} after "
                             f"{timeout:g}s (no carrier? DAD never finished)")
        await asyncio.sleep(poll)


async def bring_up(plan: Address6Plan, dad_timeout: float = DAD_TIMEOUT,
                   retry_delay: float = DAD_RETRY_DELAY) -> bool:
    """Add the address and, unless it is nodad, wait for DAD. True if it was added now.

    A left-over copy whose DAD had failed is removed and added afresh. When DAD fails it is
    tried once more after retry_delay; when it fails again or times out, the address is
    removed before the error is raised, so that the node never keeps a duplicate (or
    unusable) address.
    """
    for attempt in (1, 2):
        flags = address_flags(plan)
        if flags is not None and flags & IFA_F_DADFAILED:
            remove_address(plan)
        added = add_address(plan)
        if plan.nodad:
            return added
        try:
            await wait_dad(plan, dad_timeout)
            return added
        except (DadFailed, DadTimeout) as exc:
            try:
                remove_address(plan)
            except (OSError, ValueError):
                pass  # the DAD error is the one worth reporting
            if attempt == 2 or not isinstance(exc, DadFailed):
                raise
            log.warning("%s; trying once more in %gs in case its previous holder is still "
                        "releasing it", exc, retry_delay)
        await asyncio.sleep(retry_delay)
    raise AssertionError("unreachable")


def release(address: str) -> list[str]:
    """Remove the address from every interface that has it, whatever its DAD state.

    Returns the interfaces it was removed from ([] when it was nowhere).
    """
    target = _parse_ipv6(address)
    rt = _rtnl()
    links = rt.links()
    done: list[str] = []
    for a in rt.addrs(socket.AF_INET6):
        link = links.get(a.index)
        if link is None or ipaddress.IPv6Address(a.local) != target:
            continue
        if remove_address(Address6Plan(str(target), a.prefixlen, link.name, link.index)):
            done.append(link.name)
    return done
