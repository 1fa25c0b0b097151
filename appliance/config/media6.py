"""ha.cf `mcast6` and `ucast6` lines: Heartbeat 3.0.6's IPv6 media plugins (HBcomm mcast6.so,
ucast6.so by Lars Ellenberg), with the same syntax and checks.

    mcast6 IFACE GROUP PORT HOPS LOOP    e.g. mcast6 eth0 ff12::1:2:3:4 694 1 0
    ucast6 IFACE PEER                    e.g. ucast6 eth0 2001:db8::2   (port from udpport)

Pure functions: the caller (hacf._Parser) turns the reasons into file:line errors. Like the
IPv4 media, the interface is not looked up here (configs are checked on other machines).
"""

from __future__ import annotations

import ipaddress
import re

MCAST6_SYNTAX = "syntax: mcast6 IFACE GROUP PORT HOPS LOOP, e.g. mcast6 eth0 ff12::1:2:3:4 694 1 0"
UCAST6_SYNTAX = "syntax: ucast6 IFACE PEER-IPv6-ADDRESS, e.g. ucast6 eth0 2001:db8::2"
# mcast6.c accepts these scopes only: link (2), admin (4), site (5), organization (8) local.
_SCOPES = {0x2: "link-local", 0x4: "admin-local", 0x5: "site-local", 0x8: "organization-local"}
GROUP_HINT = ("expected an IPv6 multicast group ff1S:: or ff0S:: with scope S = 2 (link), 4 "
              "(admin), 5 (site) or 8 (organization), not all zero after the scope, "
              "e.g. ff12::1:2:3:4; global-scope groups are refused as by 3.0.6")


class Invalid(ValueError):
    """A bad field: str() is the message, .hint says what was expected."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def mcast6_group(text: str) -> str:
    """mcast6.c is_valid_mcast6_addr(): canonical text of an acceptable group."""
    try:
        group = ipaddress.IPv6Address(text)
    except ValueError:
        raise Invalid(f"invalid mcast6 group [{text}]", GROUP_HINT) from None
    raw = group.packed
    if raw[0] != 0xFF or raw[1] & 0xE0 or (raw[1] & 0x0F) not in _SCOPES or not any(raw[2:]):
        raise Invalid(f"invalid mcast6 group [{text}]", GROUP_HINT)
    return str(group)


def ucast6_peer(text: str, interface: str) -> str:
    """ucast6.c is_valid_ucast6_addr(): a numeric unicast IPv6 address, canonical text.

    A %zone is allowed only when it names the medium's own interface (3.0.6 compares the
    indexes); a link-local peer without one is reached through that interface anyway.
    """
    address, pct, zone = text.partition("%")
    hint = "expected a numeric IPv6 unicast address (no hostnames), e.g. 2001:db8::2 or fe80::2"
    try:
        peer = ipaddress.IPv6Address(address)
    except ValueError:
        raise Invalid(f"invalid ucast6 peer [{text}]", hint) from None
    if peer.is_multicast or peer.is_unspecified or peer.is_loopback:
        raise Invalid(f"invalid ucast6 peer [{text}]: multicast, unspecified or loopback", hint)
    if pct and zone != interface:
        raise Invalid(f"ucast6 peer [{text}]: zone %{zone} is not the medium's interface "
                      f"{interface}", f"write {address} or {address}%{interface}")
    return str(peer)


def interface(text: str, syntax: str) -> str:
    """The same rule as hacf's other media: a Linux interface name (at most 15 characters)."""
    if not text or len(text) > 15 or "/" in text or text in (".", "..") or re.search(
            r"[\x00-\x1f\x7f]", text):
        what = text or "(missing)"
        raise Invalid(f"invalid interface [{what}]",
                      f"expected a network interface name of at most 15 characters; {syntax}")
    return text


def _int(text: str, lo: int, hi: int, what: str, hint: str) -> int:
    if not re.fullmatch(r"[0-9]{1,5}", text, re.A) or not lo <= int(text) <= hi:
        raise Invalid(f"invalid mcast6 {what} [{text}]", f"expected an integer {lo}..{hi}; {hint}")
    return int(text)


def parse_mcast6(tokens: list[str]) -> tuple[str, str, int, int, int]:
    """(interface, group, port, hops, loop) from the fields of an mcast6 line; raises Invalid.

    The hop limit is 0..4 and loop 0 or 1, as 3.0.6 checks them (mcast's TTL rule).
    Fields after the fifth are the caller's to warn about.
    """
    tokens = [t for t in tokens if t]
    if not tokens:
        raise Invalid("mcast6 statement without device", MCAST6_SYNTAX)
    iface = interface(tokens[0], MCAST6_SYNTAX)
    if len(tokens) < 5:
        raise Invalid("mcast6 needs 5 fields", MCAST6_SYNTAX)
    group = mcast6_group(tokens[1])
    port = _int(tokens[2], 1, 65535, "port", MCAST6_SYNTAX)
    hops = _int(tokens[3], 0, 4, "hops", MCAST6_SYNTAX)
    loop = _int(tokens[4], 0, 1, "loop", MCAST6_SYNTAX)
    return iface, group, port, hops, loop


def parse_ucast6(tokens: list[str]) -> tuple[str, str]:
    """(interface, peer) from the fields of a ucast6 line (only the first peer counts)."""
    tokens = [t for t in tokens if t]
    if len(tokens) < 2:
        raise Invalid("ucast6 needs an interface and a peer", UCAST6_SYNTAX)
    iface = interface(tokens[0], UCAST6_SYNTAX)
    return iface, ucast6_peer(tokens[1], iface)
