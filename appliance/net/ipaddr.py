"""Native IPv4 address takeover over rtnetlink (no `ip`/`ifconfig` subprocess).

IPv6 lives in appliance.net.ip6, which shares this module's netlink channel.

This replaces what Heartbeat's IPaddr/IPaddr2 resource agents do with
`findif` + `ifconfig eth0:0 ...` / `ip addr add ...` (spec §9.3):

* plan_address() works out interface, prefix length, broadcast and alias label
  from the routing table, like findif;
* add_address() / remove_address() are idempotent;
* find_address(), link_state() and interface_mac() answer questions about the
  current network namespace.

Everything acts on the network namespace of the calling process.

Implementation note (pyroute2 0.9.x): the synchronous `pyroute2.IPRoute` is
a wrapper that drives an asyncio loop with `run_until_complete()`, so it raises
RuntimeError when used from a thread that already runs an event loop, which
is exactly where the daemon calls us. We therefore keep our own
plain blocking netlink socket, with a hard timeout on every request, and use
pyroute2 only to encode and decode messages. There is one socket per process,
created lazily and re-created after fork(). pyroute2 is imported on first use only, because
importing it takes about 0.2 s and CLI tools must start fast.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

#: Upper bound for one netlink request/response exchange, in seconds. The kernel
#: normally answers in microseconds; this only keeps a wedged rtnl_lock from
#: hanging the event loop forever.
NETLINK_TIMEOUT = 2.0

IFNAMSIZ = 16  # kernel limit including the NUL: names and labels are <= 15 chars
MAX_LABEL = IFNAMSIZ - 1

# netlink / rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/if.h)
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_GETROUTE = 26
RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTN_UNICAST = 1
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000
ARPHRD_ETHER = 1

_HDR = struct.Struct("=IHHII")  # struct nlmsghdr
_RECV_SIZE = 65536  # the kernel caps a dump skb at 32 KiB
_DUMP_RETRIES = 5


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
# the per-process netlink channel


@dataclass(frozen=True)
class _Link:
    index: int
    name: str
    flags: int
    mac: str  # "aa:bb:..." or ""
    hwtype: int


@dataclass(frozen=True)
class _Addr:
    index: int
    local: str
    address: str  # IFA_ADDRESS (peer on point-to-point links)
    prefixlen: int
    label: str
    flags: int


class _DumpInterrupted(Exception):
    pass


class _Rtnl:
    """A blocking NETLINK_ROUTE socket that never waits longer than NETLINK_TIMEOUT."""

    def __init__(self) -> None:
        from appliance.net.rtnl import rtnl_marshal

        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._seq = int(time.time()) & 0xFFFF
        self._marshal = rtnl_marshal()
        self._sock = self._open()

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        try:
            try:
                sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # kernel error texts
            except OSError:
                pass
            sock.bind((0, 0))
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        self._sock.close()

    # -- transport -------------------------------------------------------

    def request(self, msg_class: type, msg_type: int, flags: int,
                fields: dict[str, Any], attrs: list[tuple[str, Any]]) -> list[Any]:
        """Send one request; return the decoded replies (empty for an ack).

        Raises OSError(errno) for a kernel error and TimeoutError when the kernel
        does not answer in time (the socket is then replaced, so late replies
        cannot be mistaken for answers to the next request).
        """
        with self._lock:
            for _ in range(_DUMP_RETRIES):
                try:
                    return self._transact(msg_class, msg_type, flags, fields, attrs)
                except _DumpInterrupted:
                    continue
                except TimeoutError:
                    self._sock.close()
                    self._sock = self._open()
                    raise
        raise OSError(errno.EINTR, "netlink dump was interrupted repeatedly")

    def _transact(self, msg_class: type, msg_type: int, flags: int,
                  fields: dict[str, Any], attrs: list[tuple[str, Any]]) -> list[Any]:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        seq = self._seq
        msg = msg_class()
        for key, value in fields.items():
            msg[key] = value
        msg["attrs"] = list(attrs)
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = seq
        msg["header"]["pid"] = 0
        msg.encode()
        deadline = time.monotonic() + NETLINK_TIMEOUT
        self._sock.settimeout(NETLINK_TIMEOUT)
        self._sock.send(bytes(msg.data))
        out: list[Any] = []
        interrupted = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(errno.ETIMEDOUT, "no netlink answer from the kernel")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(_RECV_SIZE)
            except socket.timeout:
                raise TimeoutError(errno.ETIMEDOUT, "no netlink answer from the kernel") from None
            for chunk in split_messages(data):
                _length, mtype, mflags, mseq, _pid = _HDR.unpack_from(chunk)
                if mseq != seq:
                    continue  # a late answer to an earlier request
                if mflags & NLM_F_DUMP_INTR:
                    interrupted = True
                if mtype == NLMSG_ERROR:
                    code = struct.unpack_from("=i", chunk, _HDR.size)[0] if len(chunk) >= 20 else 0
                    if code == 0:
                        return out  # the ack
                    raise OSError(-code, self._error_text(chunk, -code))
                if mtype == NLMSG_DONE:
                    code = struct.unpack_from("=i", chunk, _HDR.size)[0] if len(chunk) >= 20 else 0
                    if code < 0:
                        raise OSError(-code, os.strerror(-code))
                    if interrupted:
                        raise _DumpInterrupted()
                    return out
                try:
                    out.extend(self._marshal.parse(chunk))
                except Exception:  # noqa: BLE001 - one undecodable message must not kill a dump
                    pass
                if not mflags & NLM_F_MULTI and not flags & NLM_F_ACK:
                    return out

    def _error_text(self, chunk: bytes, code: int) -> str:
        text = os.strerror(code)
        try:
            msg = next(self._marshal.parse(chunk))
            extra = msg.get_attr("NLMSGERR_ATTR_MSG")
            if extra:
                text = f"{text} ({extra})"
        except Exception:  # noqa: BLE001 - the errno alone is still useful
            pass
        return text

    # -- queries -----------------------------------------------------------

    def links(self) -> dict[int, _Link]:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        msgs = self.request(ifinfmsg, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, {"family": 0}, [])
        links = (link_from_msg(m) for m in msgs)
        return {link.index: link for link in links if link is not None}

    def link_by_name(self, name: str) -> _Link | None:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        if not name or len(name) > MAX_LABEL or "/" in name or any(c.isspace() for c in name):
            return None
        try:
            msgs = self.request(ifinfmsg, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK,
                                {"family": 0}, [("IFLA_IFNAME", name)])
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                return None
            raise
        for m in msgs:
            link = link_from_msg(m)
            if link is not None:
                return link
        return None

    def addrs(self, family: int = socket.AF_INET) -> list[_Addr]:
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

        msgs = self.request(ifaddrmsg, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP,
                            {"family": family}, [])
        out = []
        for m in msgs:
            addr = addr_from_msg(m, family)
            if addr is not None:
                out.append(addr)
        return out

    def _main_unicast_routes(self, family: int) -> list[Any]:
        """The main table's unicast routes of `family` (one dump)."""
        from pyroute2.netlink.rtnl.rtmsg import rtmsg

        msgs = self.request(rtmsg, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, {"family": family}, [])
        out = []
        for m in msgs:
            try:
                table = m.get_attr("RTA_TABLE") or m.get("table")
                if m.get("family") == family and m.get("type") == RTN_UNICAST and table == RT_TABLE_MAIN:
                    out.append(m)
            except (ValueError, TypeError, KeyError):
                continue
        return out

    def connected_routes(self, family: int = socket.AF_INET) -> list[tuple[int, Any]]:
        """(oif, network) of the main table's directly connected routes of `family`: no next
        hop, and for IPv4 link scope (IPv6 routes all have universe scope)."""
        ipv4 = family == socket.AF_INET
        network = ipaddress.IPv4Network if ipv4 else ipaddress.IPv6Network
        out = []
        for m in self._main_unicast_routes(family):
            try:
                if ipv4 and m.get("scope") != RT_SCOPE_LINK:
                    continue
                oif = m.get_attr("RTA_OIF")
                if not oif or m.get_attr("RTA_GATEWAY") or m.get_attr("RTA_MULTIPATH"):
                    continue
                dst = m.get_attr("RTA_DST") or ("0.0.0.0" if ipv4 else "::")
                net = network(f"{dst}/{m.get('dst_len')}", strict=False)
            except (ValueError, TypeError, KeyError):
                continue
            out.append((int(oif), net))
        return out

    def default_oifs(self) -> list[int]:
        """Output interfaces of the main table's IPv4 default routes (lowest metric first)."""
        found = []
        for m in self._main_unicast_routes(socket.AF_INET):
            try:
                oif = m.get_attr("RTA_OIF")
                if m.get("dst_len") == 0 and oif:
                    found.append((m.get_attr("RTA_PRIORITY") or 0, int(oif)))
            except (ValueError, TypeError, KeyError):
                continue
        return [oif for _, oif in sorted(found)]

    def change_addr(self, msg_type: int, flags: int, fields: dict[str, Any],
                    attrs: list[tuple[str, Any]]) -> None:
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

        self.request(ifaddrmsg, msg_type, flags, fields, attrs)


def split_messages(data: bytes) -> Iterator[bytes]:
    """Cut a netlink datagram into its messages; stops at the first bad header."""
    offset = 0
    while offset + _HDR.size <= len(data):
        length = _HDR.unpack_from(data, offset)[0]
        if length < _HDR.size or offset + length > len(data):
            return
        yield data[offset:offset + length]
        offset += (length + 3) & ~3


def link_from_msg(msg: Any) -> _Link | None:
    """Decode an ifinfmsg; None for anything that is not a plain link message."""
    try:
        if msg.get("family") != 0:  # AF_BRIDGE etc. describe ports, not links
            return None
        name = msg.get_attr("IFLA_IFNAME")
        if not isinstance(name, str) or not name:
            return None
        mac = msg.get_attr("IFLA_ADDRESS")
        return _Link(index=int(msg["index"]), name=name, flags=int(msg["flags"]),
                     mac=mac if isinstance(mac, str) else "",
                     hwtype=int(msg.get("ifi_type", 0)))
    except (KeyError, TypeError, ValueError):
        return None


def addr_from_msg(msg: Any, family: int = socket.AF_INET) -> _Addr | None:
    """Decode an ifaddrmsg of `family` (IPv4 unless told); None for anything else."""
    try:
        if msg.get("family") != family:
            return None
        local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        address = msg.get_attr("IFA_ADDRESS") or local
        if not isinstance(local, str) or not isinstance(address, str):
            return None  # missing, or raw bytes from an attribute pyroute2 could not decode
        check = ipaddress.IPv6Address if family == socket.AF_INET6 else ipaddress.IPv4Address
        local = str(check(local))  # canonical text, whatever the decoder produced
        address = str(check(address))
        flags = msg.get_attr("IFA_FLAGS")
        return _Addr(index=int(msg["index"]), local=local, address=address,
                     prefixlen=int(msg["prefixlen"]), label=str(msg.get_attr("IFA_LABEL") or ""),
                     flags=int(msg["flags"] if flags is None else flags))
    except (KeyError, TypeError, ValueError):
        return None


def link_up_state(flags: int) -> tuple[bool, bool]:
    """(admin up, carrier up) from ifi_flags; carrier is IFF_LOWER_UP (never set while down)."""
    return bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP)


_shared: _Rtnl | None = None
_shared_lock = threading.Lock()


def _rtnl() -> _Rtnl:
    """The process-wide netlink channel, created on first use and after fork()."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.pid != os.getpid():
            if _shared is not None:
                try:
                    _shared.close()  # the child's copy of the parent's socket
                except OSError:
                    pass
            _shared = _Rtnl()
        return _shared


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
