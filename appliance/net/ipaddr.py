"""Native IPv4 address takeover over rtnetlink (no `ip`/`ifconfig` subprocess).

IPv6 lives in appliance.net.ip6; both use the netlink channel of appliance.net.rtnl.

This replaces what Heartbeat's IPaddr/IPaddr2 resource agents do with
`findif` + `ifconfig eth0:0 ...` / `ip addr add ...` (spec §9.3):

* plan_address() works out interface, prefix length, broadcast and alias label
  from the routing table, like findif;
* add_address() / remove_address() are idempotent;
* find_address(), link_state() and interface_mac() answer questions about the
  current network namespace.

Everything acts on the network namespace of the calling process.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from appliance.net.rtnl import (
    IFF_LOOPBACK,
    MAX_LABEL,
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
    link_up_state,
)


class AddressError(ValueError):
    """An IP resource that cannot be planned or applied; str() is operator-readable."""


@dataclass(frozen=True)
class AddressPlan:
    """Everything needed to add or remove one IPv4 alias address."""

    address: str
    prefixlen: int
    interface: str
    ifindex: int
    broadcast: str  # "" when there is none (/31 and /32)
    label: str

    def __str__(self) -> str:
        brd = f" brd {self.broadcast}" if self.broadcast else ""
        return f"{self.address}/{self.prefixlen}{brd} dev {self.interface} label {self.label}"


# --------------------------------------------------------------------------
# helpers


def _parse_ipv4(address: str, what: str = "address") -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        raise AddressError(f"{what} {address!r} is not a valid IPv4 address") from None
    if ip.version != 4:
        raise AddressError(f"{what} {address} is IPv6; only IPv4 addresses are supported")
    if ip.is_unspecified or ip.is_multicast or str(ip) == "255.255.255.255":
        raise AddressError(f"{what} {address} cannot be assigned to an interface")
    return ip  # type: ignore[return-value]


def _check_prefix(prefixlen: Any) -> int:
    if isinstance(prefixlen, int) and not isinstance(prefixlen, bool):
        value = prefixlen
    elif isinstance(prefixlen, str) and prefixlen.strip().isdigit():
        value = int(prefixlen.strip())
    else:
        raise AddressError(f"prefix length {prefixlen!r} is not a whole number")
    if not 1 <= value <= 32:
        raise AddressError(f"prefix length {value} is out of range (1-32)")
    return value


def _check_label(label: str) -> str:
    if not label:
        raise AddressError("the address label is empty")
    if len(label) > MAX_LABEL:
        raise AddressError(f"address label {label!r} is longer than {MAX_LABEL} characters")
    if any(c.isspace() for c in label) or "/" in label:
        raise AddressError(f"address label {label!r} contains blanks or '/'")
    return label


def _subnets(rt: _Rtnl, links: dict[int, _Link],
             addrs: list[_Addr]) -> list[tuple[ipaddress.IPv4Network, int]]:
    """Candidate (network, ifindex) pairs: connected routes and address subnets."""
    seen = set()
    out = []
    candidates = [(net, oif) for oif, net in rt.connected_routes()]
    for a in addrs:
        try:
            candidates.append(
                (ipaddress.IPv4Network(f"{a.local}/{a.prefixlen}", strict=False), a.index))
        except ValueError:
            continue
    for net, index in candidates:
        link = links.get(index)
        if link is None or link.flags & IFF_LOOPBACK or net.prefixlen == 0:
            continue
        if (net, index) not in seen:
            seen.add((net, index))
            out.append((net, index))
    return out


# --------------------------------------------------------------------------
# public API


def plan_address(address: str, prefixlen: int | None = None, interface: str | None = None,
                 broadcast: str | None = None, label: str | None = None) -> AddressPlan:
    """Like Heartbeat's findif: work out where and how an IPv4 address goes.

    Without an interface, pick the interface whose connected IPv4 route (scope
    link in the main table, or an existing address's subnet) contains the
    address (longest prefix wins, then the lowest ifindex), with that route's
    prefix when prefixlen is None. With an interface, use it: the prefix comes
    from its matching route, and must be given when there is none. An
    interface written as "eth0:3" means interface eth0 with label "eth0:3".

    Broadcast defaults to the subnet broadcast ("" for /31 and /32). Label
    defaults to the label the address already has on that interface, else
    '<iface>:<n>' with the first alias number not in use there (Heartbeat's
    eth0:0 style). If that would be longer than 15 characters, the
    bare interface name is used. Plan right before adding: two plans made
    before either is added get the same alias number.

    Raises AddressError (a ValueError) with an operator-readable reason.
    """
    ip = _parse_ipv4(address)
    prefix = None if prefixlen is None else _check_prefix(prefixlen)
    if label is not None:
        label = _check_label(str(label))
    if interface is not None:
        interface = str(interface).strip()
        if ":" in interface:
            base = interface.split(":", 1)[0]
            if label is None:
                label = _check_label(interface)
            interface = base
        if not interface:
            raise AddressError(f"empty interface name for {ip}")

    rt = _rtnl()
    links = rt.links()
    addrs = rt.addrs()
    subnets = _subnets(rt, links, addrs)

    if interface is None:
        matches = [(net, idx) for net, idx in subnets if ip in net]
        if not matches and prefix is not None:
            # Heartbeat's findif matches the longest route prefix, the default route included:
            # an address with its own prefix and no connected route goes where the default
            # route goes (BasicSanityCheck's 10.253.252.251/30).
            matches = [(ipaddress.IPv4Network("0.0.0.0/0"), oif) for oif in rt.default_oifs()
                       if oif in links and not links[oif].flags & IFF_LOOPBACK]
        if not matches:
            raise AddressError(f"no interface has a route to {ip}; give it as IP/prefix/iface")
        best_net, best_idx = min(matches, key=lambda m: (-m[0].prefixlen, m[1]))
        link = links[best_idx]
        if prefix is None:
            prefix = best_net.prefixlen
    else:
        found = next((lk for lk in links.values() if lk.name == interface), None)
        if found is None:
            found = rt.link_by_name(interface)  # also resolves altnames
        if found is None:
            raise AddressError(f"interface {interface} (for {ip}) does not exist")
        link = found
        if prefix is None:
            mine = [net for net, idx in subnets if idx == link.index and ip in net]
            if not mine:
                raise AddressError(
                    f"no route to {ip} on {link.name}; give the prefix as "
                    f"{ip}/<prefix>/{link.name}")
            prefix = max(net.prefixlen for net in mine)

    network = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
    if broadcast is not None and str(broadcast).strip() not in ("", "+"):
        brd = str(_parse_ipv4(str(broadcast), "broadcast"))
    elif prefix >= 31:
        brd = ""
    else:
        brd = str(network.broadcast_address)

    if label is None:
        on_link = [a for a in addrs if a.index == link.index]
        existing = next((a.label for a in on_link if a.local == str(ip) and a.label), None)
        if existing:
            label = existing
        else:
            used = {a.label for a in on_link}
            n = 0
            while f"{link.name}:{n}" in used:
                n += 1
            label = f"{link.name}:{n}"
            if len(label) > MAX_LABEL:
                label = link.name

    return AddressPlan(address=str(ip), prefixlen=prefix, interface=link.name,
                       ifindex=link.index, broadcast=brd, label=label)


def _current_index(rt: _Rtnl, plan: AddressPlan) -> int | None:
    """The interface's index now (it may have been re-created since planning)."""
    link = rt.link_by_name(plan.interface)
    return None if link is None else link.index


def add_address(plan: AddressPlan) -> bool:
    """Add the planned address. True if added, False if already on that interface.

    Raises AddressError if the interface is gone, OSError for a kernel refusal
    (the errno tells which), TimeoutError if the kernel does not answer.
    """
    rt = _rtnl()
    index = _current_index(rt, plan)
    if index is None:
        raise AddressError(f"cannot add {plan.address}: interface {plan.interface} does not exist")
    if any(a.index == index and a.local == plan.address for a in rt.addrs()):
        return False
    attrs: list[tuple[str, Any]] = [("IFA_LOCAL", plan.address), ("IFA_ADDRESS", plan.address)]
    if plan.broadcast:
        attrs.append(("IFA_BROADCAST", plan.broadcast))
    if plan.label:
        attrs.append(("IFA_LABEL", plan.label))
    try:
        rt.change_addr(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                       {"family": socket.AF_INET, "prefixlen": plan.prefixlen, "flags": 0,
                        "scope": RT_SCOPE_UNIVERSE, "index": index}, attrs)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise OSError(exc.errno, f"cannot add {plan}: {exc.strerror}") from None
    return True


def remove_address(plan: AddressPlan) -> bool:
    """Remove the address from the planned interface. True if removed, False if absent.

    Only the address itself goes (its exact local address and prefix); the
    node's own addresses stay. Beware that Linux removes the secondaries of a
    subnet together with its primary unless promote_secondaries is set, which
    matters only if the VIP was the first address of its subnet.
    """
    rt = _rtnl()
    index = _current_index(rt, plan)
    if index is None:
        return False
    mine = [a for a in rt.addrs() if a.index == index and a.local == plan.address]
    if not mine:
        return False
    for a in mine:
        try:
            rt.change_addr(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK,
                           {"family": socket.AF_INET, "prefixlen": a.prefixlen, "flags": 0,
                            "scope": 0, "index": index},
                           [("IFA_LOCAL", a.local), ("IFA_ADDRESS", a.address)])
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV, errno.ESRCH):
                return False
            raise OSError(exc.errno, f"cannot remove {plan}: {exc.strerror}") from None
    return True


def find_address(address: str) -> tuple[str, int] | None:
    """(ifname, prefixlen) of the interface that has the address now, or None.

    IPv6 addresses are looked up by appliance.net.ip6 (one whose DAD failed does not count).
    """
    if ":" in str(address):
        from appliance.net import ip6

        return ip6.find_address(str(address))
    ip = str(_parse_ipv4(address))
    rt = _rtnl()
    hits = sorted((a for a in rt.addrs() if a.local == ip), key=lambda a: a.index)
    if not hits:
        return None
    links = rt.links()
    for a in hits:
        link = links.get(a.index)
        if link is not None:
            return link.name, a.prefixlen
    return None


def link_state(ifname: str) -> tuple[bool, bool] | None:
    """(admin up, carrier up) of an interface, or None if it does not exist.

    Carrier is IFF_LOWER_UP, which the kernel reports only while the interface
    is administratively up, so a downed interface gives (False, False).
    """
    link = _rtnl().link_by_name(ifname)
    return None if link is None else link_up_state(link.flags)


def interface_mac(ifname: str) -> bytes:
    """The 6-byte hardware address of an Ethernet interface."""
    link = _rtnl().link_by_name(ifname)
    if link is None:
        raise AddressError(f"interface {ifname} does not exist")
    try:
        mac = bytes.fromhex(link.mac.replace(":", ""))
    except ValueError:
        mac = b""
    if len(mac) != 6:
        raise AddressError(f"interface {ifname} has no Ethernet hardware address")
    return mac
