"""The rtnetlink socket: dumps of links, addresses and routes, address add/remove requests.

Used by appliance.net.ipaddr (IPv4), appliance.net.ip6 (IPv6) and appliance.net.linkmon.

Implementation note (pyroute2 0.9.x): the synchronous `pyroute2.IPRoute` is
a wrapper that drives an asyncio loop with `run_until_complete()`, so it raises
RuntimeError when used from a thread that already runs an event loop, which
is exactly where the daemon calls us. We therefore keep our own
plain blocking netlink socket, with a hard timeout on every request, and use
pyroute2 only to encode and decode messages. There is one socket per process,
created lazily and re-created after fork(). pyroute2 is imported on first use only, because
importing it takes about 0.2 s and CLI tools must start fast.

Only the parts of pyroute2 we use are loaded (rtnetlink message classes and their marshal).
`import pyroute2.netlink.rtnl.ifaddrmsg` first runs pyroute2/__init__.py, which imports the
whole library: NDB with sqlite3, IPDB, nftables, ipset, plan9, multiprocessing and even
unittest.mock, about 200 modules and ~8 MB of heap per node, for code the daemon never calls.
Registering the package without running its __init__ lets the submodules import normally.
lean_pyroute2() is called by the daemon at start-up only: tools and tests keep the full library.
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import os
import socket
import struct
import sys
import threading
import time
import types
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


def lean_pyroute2() -> bool:
    """Register a bare `pyroute2` package; False if it is already imported or not found."""
    if "pyroute2" in sys.modules:
        return False
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return False
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    pkg.__package__ = "pyroute2"
    sys.modules["pyroute2"] = pkg
    return True


def rtnl_marshal():
    """A parser for the rtnetlink messages we read (links, addresses, routes) without
    pyroute2's MarshalRtnl, which imports every message class (qdiscs, neighbours, probes...)."""
    from pyroute2.netlink import rtnl
    from pyroute2.netlink.marshal import Marshal
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    class LeanMarshal(Marshal):
        msg_map = {
            rtnl.RTM_NEWLINK: ifinfmsg, rtnl.RTM_DELLINK: ifinfmsg, rtnl.RTM_GETLINK: ifinfmsg,
            rtnl.RTM_NEWADDR: ifaddrmsg, rtnl.RTM_DELADDR: ifaddrmsg, rtnl.RTM_GETADDR: ifaddrmsg,
            rtnl.RTM_NEWROUTE: rtmsg, rtnl.RTM_DELROUTE: rtmsg, rtnl.RTM_GETROUTE: rtmsg,
        }

        def fix_message(self, msg):  # as MarshalRtnl: name the event
            msg["event"] = rtnl.RTM_VALUES.get(msg["header"]["type"], msg["header"]["type"])

    return LeanMarshal()


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
