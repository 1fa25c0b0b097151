"""haresources parser with Heartbeat 3.0.6 / ResourceManager semantics (spec 9.2)."""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass

from appliance.errors import ConfigError, ConfigErrors

# ResourceManager turns any token starting like this into IPaddr::<token>.
_IP_SHORTHAND = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", re.A)
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}", re.A)
_BLANKS = re.compile(r"[ \t]+")  # ResourceManager collapses only blanks and tabs
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # controls, undecodable bytes
IFNAMSIZ = 16  # Linux interface names and IPaddr2 labels are at most 15 characters
IP_FORMS = (
    "forms: a.b.c.d, a.b.c.d/24, a.b.c.d/24/eth0, a.b.c.d/24/eth0/a.b.c.255, "
    "a.b.c.d/24/a.b.c.255; the mask may also be dotted, e.g. 255.255.255.0"
)
IP6_FORMS = (
    "IPv6 forms: IPv6addr::2001:db8::10, IPv6addr::2001:db8::10/64, "
    "IPv6addr::2001:db8::10/64/eth0, optionally followed by /nodad and/or /router "
    "(e.g. IPv6addr::2001:db8::10/64/eth0/nodad); IPaddr2:: takes the same IPv6 forms"
)
# Per-address options after the nic: ours, not Heartbeat's (its IPv6addr wrapper ignores
# everything after the nic, so a line using them still starts on a 3.0.6 node).
IP6_OPTIONS = ("nodad", "router")
IP_RESOURCES = ("IPaddr", "IPaddr2", "IPv6addr")


@dataclass(frozen=True)
class IpSpec:
    address: str  # dotted IPv4, or IPv6 in canonical (RFC 5952) text
    prefixlen: int | None  # from /bits or dotted mask; None = derive from the interface route
    interface: str | None  # nic, without label
    label: str | None  # IPaddr2 "eth0:web" -> label "eth0:web"; None otherwise (always for IPv6)
    broadcast: str | None  # IPv4 only
    family: int = 4  # 4 or 6
    nodad: bool = False  # IPv6: add with IFA_F_NODAD instead of waiting for DAD
    router: bool = False  # IPv6: set the router flag in our neighbour advertisements


@dataclass(frozen=True)
class Resource:
    name: str  # script name: "IPaddr", "IPaddr2", "httpd", ...
    args: tuple[str, ...]  # passed before the action: <script> [args...] start|stop|status
    text: str  # token as written
    ip: IpSpec | None  # set for IP shorthands, IPaddr::, IPaddr2:: and IPv6addr::


@dataclass(frozen=True)
class ResourceGroup:
    home: str  # lower-case preferred node
    key: str  # first resource token as written (the group's name on the wire)
    resources: tuple[Resource, ...]
    line: int  # first physical line of the entry


def _ipv4(text: str, what: str) -> str:
    if not _IPV4.fullmatch(text):
        raise ValueError(f"{what} [{text}] is not a dotted IPv4 address")
    for octet in text.split("."):
        if int(octet) > 255:
            raise ValueError(f"{what} [{text}] has an octet above 255")
        if len(octet) > 1 and octet[0] == "0":
            # inet_aton and iproute2 would read a leading zero as octal.
            raise ValueError(f"{what} [{text}] has a leading zero (ambiguous: octal)")
    return text


def _prefixlen(text: str) -> int:
    if re.fullmatch(r"[0-9]{1,3}", text, re.A):
        if not 1 <= int(text) <= 32:
            raise ValueError(f"netmask [/{text}] must be 1..32 bits")
        return int(text)
    value = 0
    for octet in _ipv4(text, "netmask").split("."):
        value = value << 8 | int(octet)
    inverted = ~value & 0xFFFFFFFF
    if value == 0 or inverted & (inverted + 1):  # host bits must be one contiguous run
        raise ValueError(f"netmask [{text}] is not a contiguous mask")
    return bin(value).count("1")


def _nic(text: str) -> tuple[str, str | None]:
    """'eth0' -> ('eth0', None); 'eth0:web' -> ('eth0', 'eth0:web')."""
    iface, colon, alias = text.partition(":")
    if not iface or len(iface) >= IFNAMSIZ or not re.fullmatch(r"[^\s:/]+", iface):
        raise ValueError(f"interface [{iface}] is not a valid interface name")
    if not colon:
        return iface, None
    if not alias or len(text) >= IFNAMSIZ or not re.fullmatch(r"[^\s/]+", alias):
        raise ValueError(f"label [{text}] is invalid: at most {IFNAMSIZ - 1} characters")
    return iface, text


def parse_ip_spec(text: str) -> IpSpec:
    """a.b.c.d[/mask[/nic[/broadcast]]] or a.b.c.d/mask/broadcast; ValueError says why."""
    parts = text.split("/")
    if len(parts) > 4:
        raise ValueError(f"too many '/' parts in [{text}]")
    address = _ipv4(parts[0], "address")
    prefix = _prefixlen(parts[1]) if len(parts) > 1 and parts[1] else None
    iface = label = broadcast = None
    if len(parts) > 2:
        third = parts[2]
        if re.match("[0-9]", third):  # IPaddr's rule: a digit here starts the broadcast, not a nic
            if len(parts) > 3:
                raise ValueError(f"the broadcast address must be the last part of [{text}]")
            broadcast = _ipv4(third, "broadcast")
        elif third:
            iface, label = _nic(third)
    if len(parts) > 3 and parts[3]:
        broadcast = _ipv4(parts[3], "broadcast")
    return IpSpec(address, prefix, iface, label, broadcast)


def _ipv6(text: str) -> str:
    """Canonical text of a unicast IPv6 address that can float between nodes."""
    if "%" in text:
        raise ValueError(f"address [{text}] has a %zone; give the interface as ADDR/PREFIX/NIC")
    try:
        ip = ipaddress.IPv6Address(text)
    except ValueError:
        raise ValueError(f"address [{text}] is not an IPv6 address") from None
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
        raise ValueError(f"address [{text}] is not a unicast address")
    if ip.is_link_local:
        # fe80::/10 exists on every link anyway and needs a zone to be usable: nothing to move.
        raise ValueError(f"address [{text}] is link-local; a floating address must be global")
    if ip.ipv4_mapped is not None:
        raise ValueError(f"address [{text}] is IPv4-mapped; write the IPv4 address instead")
    return str(ip)


def parse_ip6_spec(text: str) -> IpSpec:
    """ADDR[/PREFIX[/NIC[/nodad][/router]]] (IPv6addr's form plus our options); ValueError says why.

    The options may also follow the prefix directly (ADDR/64/nodad): a part that is one of the
    option words is never taken for an interface name.
    """
    parts = text.split("/")
    address = _ipv6(parts[0])
    prefix = None
    if len(parts) > 1 and parts[1]:
        if not re.fullmatch(r"[0-9]{1,3}", parts[1], re.A) or not 1 <= int(parts[1]) <= 128:
            raise ValueError(f"prefix length [/{parts[1]}] must be 1..128 bits")
        prefix = int(parts[1])
    iface = None
    rest = parts[2:]
    if rest and rest[0] not in IP6_OPTIONS:
        nic = rest.pop(0)
        if nic:
            if re.match("[0-9]", nic):
                raise ValueError(f"[{nic}] looks like a broadcast address: IPv6 has none")
            iface, label = _nic(nic)
            if label is not None:
                raise ValueError(f"[{nic}]: IPv6 addresses have no labels; give the interface only")
    options: set[str] = set()
    for word in rest:
        if word not in IP6_OPTIONS:
            raise ValueError(f"[{word}] is not an option: expected {' or '.join(IP6_OPTIONS)}")
        if word in options:
            raise ValueError(f"option [{word}] is given twice")
        options.add(word)
    return IpSpec(address, prefix, iface, None, None, 6, "nodad" in options, "router" in options)


def _is_ipv6_spec(text: str) -> bool:
    """Whether an IP resource argument is meant as IPv6 (its address part has a colon)."""
    return ":" in text.split("/", 1)[0]


def parse_resource(token: str) -> Resource:
    """One haresources RESOURCE token; ValueError says what is wrong with it."""
    if _UNPRINTABLE.search(token):
        raise ValueError("it contains control characters or bytes that are not UTF-8")
    if _IP_SHORTHAND.match(token):
        return Resource("IPaddr", (token,), token, _checked_ip("IPaddr", token))
    if _bare_ipv6(token):
        # 3.0.6 would split this at '::' and look for a script named after the first half.
        raise ValueError("a bare IPv6 address is not an IP shorthand; write IPv6addr::" + token)
    name, sep, rest = token.partition("::")
    # The shell splits args on '::' and word-splits them, so empty ones vanish.
    args = tuple(a for a in rest.split("::") if a) if sep else ()
    if not name:
        raise ValueError("the resource name before '::' is missing")
    if "/" in name or name in (".", ".."):
        raise ValueError("a resource name is a script in resource.d or init.d, not a path")
    ip = None
    if name in IP_RESOURCES:
        if not args:
            form = "2001:db8::10[/prefix[/nic]]" if name == "IPv6addr" else (
                "a.b.c.d[/mask[/nic[/bcast]]]")
            raise ValueError(f"{name} needs an address: {name}::{form}")
        if name == "IPv6addr" or _is_ipv6_spec(rest):
            # An IPv6 address contains '::' itself: the whole rest is the one argument
            # (3.0.6's ResourceManager would split it there; see README, IPv6).
            args = (rest,)
            if name == "IPaddr":
                raise ValueError("IPaddr is IPv4 only; use IPv6addr:: (or IPaddr2::) for IPv6")
            ip = parse_ip6_spec(rest)
        else:
            ip = _checked_ip(name, args[0])
    return Resource(name, args, token, ip)


def _bare_ipv6(token: str) -> bool:
    """An IPv6 address written without IPv6addr::, e.g. 2001:db8::10/64.

    3.0.6 would run it as a script (2001:db8 with argument 10/64), which never exists. The
    price: a script named with one to four hex digits whose '::' arguments complete an
    address ("cafe::beef") is read as an address too; no real script looks like that.
    """
    try:
        ipaddress.IPv6Address(token.split("/", 1)[0])
    except ValueError:
        return False
    return True


def _checked_ip(name: str, spec: str) -> IpSpec:
    ip = parse_ip_spec(spec)
    if ip.label is not None and name != "IPaddr2":
        raise ValueError("IPaddr takes a base interface only; use IPaddr2 for a label")
    return ip


def _ip_hint(token: str) -> str:
    """The forms to show for a bad IP resource token ("" for other resources)."""
    name, sep, rest = token.partition("::")
    if name == "IPv6addr" or (sep and name in IP_RESOURCES and _is_ipv6_spec(rest)):
        return IP6_FORMS
    if _bare_ipv6(token):
        return IP6_FORMS
    if _IP_SHORTHAND.match(token) or (sep and name in IP_RESOURCES):
        return IP_FORMS
    return ""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line, joined text) per entry, as ResourceManager's sed pipeline sees it.

    Comments go first, then blank lines, then a trailing backslash joins the next line
    directly (no space is inserted), so a backslash followed by blanks does not continue.
    """
    entries: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = re.split(r"[#\x00]", raw, maxsplit=1)[0]
        line = line[:-1] if line.endswith("\r") else line  # tolerate CRLF files
        if not line.strip(" \t"):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + line)
        else:
            pending = (lineno, line)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1])
            continue
        entries.append(pending)
        pending = None
    if pending is not None:
        entries.append(pending)
    return entries


def parse_haresources(
    text: str, path: str = "/etc/ha.d/haresources", nodes: list[str] | None = None
) -> list[ResourceGroup]:
    """Parse haresources text; raises ConfigErrors listing every problem found."""
    errors: list[ConfigError] = []
    groups: list[ResourceGroup] = []
    key_lines: dict[str, int] = {}
    known = None if nodes is None else [n.lower() for n in nodes]
    for lineno, entry in _logical_lines(text):
        tokens = _BLANKS.split(entry.strip(" \t"))
        home = tokens[0].lower()
        if _UNPRINTABLE.search(home):
            hint = "node names are printable UTF-8 text"
            errors.append(ConfigError(path, lineno, "invalid node name", hint))
        elif known is not None and home not in known:
            listed = ", ".join(known) if known else "none"
            hint = f"the first field must be one of the ha.cf node lines: {listed}"
            errors.append(ConfigError(path, lineno, f"Bad nodename in {path} [{tokens[0]}]", hint))
        if len(tokens) < 2:
            hint = "each line reads NODENAME RESOURCE [RESOURCE ...]"
            errors.append(ConfigError(path, lineno, f"no resources for node [{home}]", hint))
            continue
        resources = []
        for token in tokens[1:]:
            try:
                resources.append(parse_resource(token))
            except ValueError as exc:
                hint = _ip_hint(token)
                errors.append(ConfigError(path, lineno, f"invalid resource [{token}]: {exc}", hint))
        key = tokens[1]
        if key in key_lines:
            hint = "the first resource of a line names the group; it must be unique"
            message = f"duplicate group key [{key}] (first used on line {key_lines[key]})"
            errors.append(ConfigError(path, lineno, message, hint))
            continue
        key_lines[key] = lineno
        if len(resources) == len(tokens) - 1:
            groups.append(ResourceGroup(home, key, tuple(resources), lineno))
    if errors:
        raise ConfigErrors(errors)
    return groups


def load_haresources(
    path: str = "/etc/ha.d/haresources", nodes: list[str] | None = None
) -> list[ResourceGroup]:
    """Read and parse haresources; a missing file means no groups (3.0.6 runs without)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        message = f"Cannot open resources file [{path}]: {exc.strerror or exc}"
        raise ConfigErrors([ConfigError(path, None, message, "check the file")]) from None
    return parse_haresources(data.decode("utf-8", "surrogateescape"), path, nodes)


def resolve_script(
    name: str, dirs: tuple[str, ...] = ("/etc/ha.d/resource.d", "/etc/init.d")
) -> str | None:
    """First regular executable file named `name` in dirs (spec 9.2), else None."""
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        return None
    for directory in dirs:
        candidate = os.path.join(directory, name)
        try:
            st = os.stat(candidate)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    return None
