"""ha.cf parser with Heartbeat 3.0.6 semantics (spec sections 1, 5.5, 6.2, 10, 11).

Pure: the only reads are the optional nodeinfo/uname lookup (when no local node is given),
the services lookup for the default port and advisory checks that only produce warnings.
"""

from __future__ import annotations

import difflib
import os
import pwd
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from appliance.config import media6
from appliance.config import stonith as stonith_cfg
from appliance.config.hacf_values import (
    WHITESPACE,
    _choice,
    _crm,
    _facility,
    _failback,
    _ifname,
    _int,
    _Invalid,
    _mcast_group,
    _nodename,
    _time,
    parse_bool,
)
from appliance.config.stonith import StonithDevice
from appliance.errors import ConfigError, ConfigErrors

DELIMS = ", \t\n\r\f"  # heartbeat.h DELIMS: ordinary directives also split on commas
_DELIM_RE = re.compile(r"[, \t\n\r\f]+")
_WS_RE = re.compile(r"[ \t\n\r\f]+")
_END_RE = re.compile(r"[#\r\n\x00]")  # '#' anywhere starts a comment; CR/LF (and NUL, as C) end it
_UNDECODABLE = re.compile(r"[\ud800-\udfff]")  # what surrogateescape made of non-UTF-8 bytes
DEFAULT_UDPPORT = 694
MAX_NODES = 100  # MAXNODE in 3.0.6


@dataclass(frozen=True)
class Medium:
    kind: str  # "bcast" | "mcast" | "ucast" | "mcast6" | "ucast6"
    interface: str  # also the link name shown by cl_status
    port: int  # udpport in force when the line was parsed (3.0.6 ordering rule)
    group: str | None = None  # mcast/mcast6 group address
    ttl: int = 1  # mcast ttl / mcast6 hop limit, 0..4
    loop: int = 0  # mcast/mcast6 loop 0/1
    peer: str | None = None  # ucast peer address or hostname (first token only); ucast6: IPv6


@dataclass
class HaConfig:
    path: str
    local_node: str
    nodes: list[str]
    media: list[Medium]
    udpport: int
    keepalive_ms: int
    deadtime_ms: int
    warntime_ms: int
    initdead_ms: int
    deadping_ms: int
    auto_failback: str  # "on" | "off" | "legacy"
    logfile: str | None
    debugfile: str | None
    logfacility: str | None
    use_logd: bool
    debug: int
    watchdog: str | None
    realtime: bool
    rtprio: int | None
    hopfudge: int
    hbgenmethod: str
    msgfmt: str
    max_rexmit_delay_ms: int
    autojoin: str
    uuidfrom: str
    cluster: str
    ping: list[str]
    ping_groups: dict[str, list[str]]
    respawn: list[tuple[str, list[str]]]  # (user, argv)
    env: dict[str, str]  # `env FOO=bar` -> {"FOO": "bar"}; children get it as HA_FOO
    params: dict[str, str]  # what `cl_status hbparameter -p NAME` prints
    warnings: list[str]
    failfast: list[tuple[str, list[str]]] = field(default_factory=list)  # like respawn, reboots
    apiauth: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    stonith: StonithDevice | None = None  # the last stonith/stonith_host line for this node


def local_node_name(etc_dir: str = "/etc/ha.d") -> str:
    """The node's cluster name: first line of ETC/nodeinfo if present, else uname -n (spec 5.5)."""
    try:
        with open(os.path.join(etc_dir, "nodeinfo"), encoding="utf-8", errors="replace") as f:
            first = f.readline().strip(WHITESPACE)
        if first:
            return first.lower()
    except (OSError, ValueError):
        pass
    return os.uname().nodename.lower()


def default_udpport() -> int:
    """ha-cluster/udp from /etc/services, else 694 (spec 1)."""
    try:
        return socket.getservbyname("ha-cluster", "udp")
    except OSError:
        return DEFAULT_UDPPORT


# Ordinary directives (split on blanks and commas) and their value checks; the value
# returned is what the config uses, the token itself is what `params` records.
_CHECKS: dict[str, Callable[[str], object]] = {
    "cluster": str, "node": _nodename, "hopfudge": _int(0, 255),
    "keepalive": _time(1), "deadtime": _time(0), "deadping": _time(0), "initdead": _time(0),
    "warntime": _time(1), "watchdog": str, "udpport": _int(1, 65535),
    "baud": _choice("9600", "19200", "38400", "57600", "115200", "230400", "460800"),
    "logfacility": _facility, "logfile": str, "debugfile": str,
    "nice_failback": parse_bool, "auto_failback": _failback, "rtprio": _int(1, 99),
    "hbgenmethod": _choice("file", "time"), "realtime": parse_bool, "debug": _int(0, 255),
    "normalpoll": parse_bool, "msgfmt": _choice("classic", "netstring"),
    "use_logd": parse_bool, "conn_logd_time": _time(1), "use_apphbd": parse_bool,
    "log_badpack": parse_bool, "syslogmsgfmt": parse_bool, "coredumps": parse_bool,
    "coreroot": str, "crm": _crm, "pacemaker": _crm,
    "autojoin": _choice("none", "other", "any", fold=True),
    "uuidfrom": _choice("file", "nodename"), "compression": _choice("zlib", "bz2"),
    "compression_threshold": _int(1, 2**20), "traditional_compression": parse_bool,
    "env": str, "max_rexmit_delay": _int(1, 2**31 - 1, suffix="ms"),
    "record_config_changes": parse_bool, "record_pengine_inputs": parse_bool,
    "enable_config_writes": parse_bool, "memreserve": _int(1, 2**31 - 1),
    "quorum_server": str, "crm_daemon_dir": str, "crmd_spawns_pengine": parse_bool,
    "bcast": _ifname, "ping": str, "serial": str,
}  # fmt: skip
_WHOLE_LINE = (
    "mcast", "ucast", "mcast6", "ucast6", "ping_group", "stonith", "stonith_host", "apiauth",
    "respawn", "failfast",
)  # fmt: skip
# Media plugins 3.0.6 may load but this daemon cannot honour.
_UNSUPPORTED = ("ping6", "hbaping", "tipc", "rds", "openais")
_SINGLE_VALUED = set(_CHECKS) - {"node", "bcast", "ping", "serial", "env"}
_MULTI_MEDIA = ("bcast", "ucast", "ucast6")  # the ones whose port comes from udpport
# What 3.0.6 reports for unset directives (its Directives[] defaults, spec 10 for the rest).
_DEFAULT_PARAMS = {
    "cluster": "linux-ha", "hopfudge": "1", "keepalive": "1000ms", "deadtime": "30000ms",
    "baud": "19200", "auto_failback": "legacy", "hbgenmethod": "file", "realtime": "true",
    "msgfmt": "classic", "conn_logd_time": "60", "log_badpack": "true", "syslogmsgfmt": "true",
    "coredumps": "true", "crm": "false", "autojoin": "none", "uuidfrom": "file",
    "compression": "zlib", "compression_threshold": "2", "traditional_compression": "no",
    "max_rexmit_delay": "250", "record_config_changes": "on", "record_pengine_inputs": "on",
    "enable_config_writes": "on", "memreserve": "6500", "debug": "0",
}  # fmt: skip
_DEFAULT_APIAUTH = {
    "ipfail": (("hacluster",), ()), "ccm": (("hacluster",), ()), "ping": ((), ("haclient",)),
    "lha-snmpagent": (("root",), ()), "anon": (("root",), ("haclient",)),
}  # fmt: skip
_KNOWN = sorted(set(_CHECKS) | set(_WHOLE_LINE) | set(_UNSUPPORTED) | {"udp"})


class _Parser:
    """Accumulates one pass over ha.cf; every problem is collected, never raised early."""

    def __init__(self, path: str, port: int) -> None:
        self.path = path
        self.line = 0
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        self.params: dict[str, str] = {}
        self.parsed: dict[str, Any] = {}  # directive -> checked value of its last token
        self.lines: dict[str, int] = {}
        self.default_port = port
        self.port = port
        self.nodes: list[str] = []
        self.media: list[Medium] = []
        self.port_media_lines: list[tuple[int, int]] = []  # (line, port) of bcast/ucast
        self.ucast6_port: int | None = None  # ucast6.so reads udpport once, at its first line
        self.failback: str | None = None
        self.ping: list[str] = []
        self.ping_groups: dict[str, list[str]] = {}
        self.children: dict[str, list[tuple[str, list[str]]]] = {"respawn": [], "failfast": []}
        self.env: dict[str, str] = {}
        self.apiauth: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.local_node = ""  # for stonith_host lines; set by parse_hacf before the first line
        self.stonith: StonithDevice | None = None

    def error(self, message: str, hint: str = "", line: int | None = -1) -> None:
        self.errors.append(ConfigError(self.path, self.line if line == -1 else line, message, hint))

    def warn(self, message: str, line: int | None = -1) -> None:
        line = self.line if line == -1 else line
        where = f"{self.path}:{line}" if line else self.path
        self.warnings.append(f"{where}: {message}")

    def feed(self, lineno: int, raw: str) -> None:
        self.line = lineno
        bp = _END_RE.split(raw.lstrip(WHITESPACE), maxsplit=1)[0]
        if not bp:
            return
        if _UNDECODABLE.search(bp):
            self.error("line contains bytes that are not valid UTF-8", "ha.cf must be UTF-8 text")
            return
        directive = _WS_RE.split(bp, maxsplit=1)[0]
        rest = bp[len(directive) :].lstrip(DELIMS)
        if directive == "udp":  # DIRTYALIASKLUDGE in 3.0.6
            self.warn("directive 'udp' replaced by 'bcast'")
            directive = "bcast"
        if directive in _UNSUPPORTED:
            hint = "use bcast, mcast, ucast (IPv4 UDP), mcast6 or ucast6 (IPv6 UDP)"
            self.error(f"[{directive}] media are not supported by this daemon", hint)
        elif directive in _WHOLE_LINE:
            self.params[directive] = rest.rstrip(WHITESPACE)
            self.lines[directive] = lineno
            getattr(self, "_wl_" + directive)(rest)
        elif directive in _CHECKS:
            tokens = [t for t in _DELIM_RE.split(rest) if t]
            if not tokens:
                self.warn(f"directive [{directive}] has no value; ignored")
            elif len(tokens) > 1 and directive in _SINGLE_VALUED:
                self.warn(f"[{directive}] given {len(tokens)} values; the last one is used")
            for token in tokens:
                self.apply(directive, token)
        else:
            close = [k for k in _KNOWN if k.lower() == directive.lower()]
            if not close and len(directive) < 40:  # difflib is quadratic; junk gets no guess
                close = difflib.get_close_matches(directive, _KNOWN, n=1)
            hint = "directives are case-sensitive; see the ha.cf directive table"
            if close:
                hint = f"directives are case-sensitive: did you mean '{close[0]}'?"
            self.error(f"Illegal directive [{directive}]", hint)

    def apply(self, directive: str, token: str) -> None:
        try:
            value = _CHECKS[directive](token)
            special = getattr(self, "_do_" + directive, None)
            if special is not None:
                special(directive, token, value)
        except _Invalid as bad:
            self.error(bad.message or f"invalid {directive} [{token}]", bad.hint)
            return
        self.params[directive] = token
        self.parsed[directive] = value
        self.lines[directive] = self.line

    # ---- ordinary directives with side effects -------------------------------------------

    def _do_node(self, _d: str, _t: str, name: str) -> None:
        if name in self.nodes:
            self.warn(f"node [{name}] listed more than once")
        elif len(self.nodes) >= MAX_NODES:
            raise _Invalid(f"at most {MAX_NODES} nodes", f"too many nodes at [{name}]")
        else:
            self.nodes.append(name)

    def _do_bcast(self, _d: str, _t: str, ifname: str) -> None:
        self.add_medium(Medium("bcast", ifname, self.port))

    def _do_ping(self, _d: str, token: str, _v: object) -> None:
        if token.lower() not in self.ping:
            self.ping.append(token.lower())

    def _do_serial(self, _d: str, token: str, _v: object) -> None:
        self.warn(f"serial medium [{token}] is not supported by this daemon; ignored")

    def _do_env(self, _d: str, token: str, _v: object) -> None:
        name, eq, value = token.partition("=")
        if not name or not eq:
            raise _Invalid("expected env NAME=VALUE")
        self.env[name] = value

    def _do_udpport(self, _d: str, _t: str, port: int) -> None:
        # Media read the port when their line is parsed; earlier ones keep the old one.
        stale = sorted({line for line, used in self.port_media_lines if used != port})
        if stale:
            lines = ", ".join(map(str, stale))
            msg = f"udpport setting must precede media statements: media on line(s) {lines}"
            self.warn(f"{msg} keep port {self.port}")
        self.port_media_lines.clear()
        self.port = port

    def _do_watchdog(self, _d: str, token: str, _v: object) -> None:
        if "watchdog" in self.parsed:
            raise _Invalid("give the watchdog device once", "Watchdog device multiply specified")

    def _do_baud(self, _d: str, _t: str, _v: object) -> None:
        if "baud" in self.parsed:  # 3.0.6 refuses a second baud too
            raise _Invalid("give baud once", "Baudrate multiply specified")

    def _do_nice_failback(self, _d: str, token: str, on: bool) -> None:
        self.failback = "off" if on else "legacy"
        msg = f"nice_failback is obsolete; '{token}' is read as 'auto_failback {self.failback}'"
        self.warn(msg)

    def _do_auto_failback(self, _d: str, _t: str, mode: str) -> None:
        self.failback = mode

    def _do_crm(self, directive: str, token: str, on: bool) -> None:
        if on:
            msg = "this daemon runs Heartbeat's classic haresources mode; Pacemaker/CRM mode"
            msg += f" ({directive} {token}) is not supported"
            raise _Invalid(f"remove the line or set `{directive} no`", msg)

    _do_pacemaker = _do_crm

    # ---- whole-line directives -----------------------------------------------------------

    def add_medium(self, medium: Medium) -> None:
        if medium in self.media:
            self.warn(f"{medium.kind} medium on [{medium.interface}] declared twice")
        self.media.append(medium)
        if medium.kind in _MULTI_MEDIA:
            self.port_media_lines.append((self.line, medium.port))

    def _wl_mcast(self, rest: str) -> None:
        tok = _WS_RE.split(rest.strip(WHITESPACE))
        if len(tok) < 5:
            hint = "syntax: mcast IFACE GROUP PORT TTL LOOP, e.g. mcast eth0 239.0.0.1 694 1 0"
            return self.error("mcast needs 5 fields", hint)
        if len(tok) > 5:
            self.warn(f"mcast: extra fields ignored: {' '.join(tok[5:])}")
        checks = (_ifname, _mcast_group, _int(1, 65535), _int(0, 4), _int(0, 1))
        values: list[Any] = []
        for what, text, check in zip(("interface", "group", "port", "ttl", "loop"), tok, checks):
            try:
                values.append(check(text))
            except _Invalid as bad:
                self.error(f"invalid mcast {what} [{text}]", bad.hint)
        if len(values) == 5:
            iface, group, port, ttl, loop = values
            self.add_medium(Medium("mcast", iface, port, group=group, ttl=ttl, loop=loop))

    def _wl_ucast(self, rest: str) -> None:
        tok = _WS_RE.split(rest.strip(WHITESPACE))
        if len(tok) < 2:
            return self.error("ucast needs an interface and a peer", "syntax: ucast IFACE PEER")
        if len(tok) > 2:
            self.warn("ucast: only the first peer on a line is used; give one ucast line per peer")
        try:
            self.add_medium(Medium("ucast", _ifname(tok[0]), self.port, peer=tok[1]))
        except _Invalid as bad:
            self.error(f"invalid ucast interface [{tok[0]}]", bad.hint)

    def _wl_mcast6(self, rest: str) -> None:
        tok = _WS_RE.split(rest.strip(WHITESPACE))
        if len(tok) > 5:
            self.warn(f"mcast6: extra fields ignored: {' '.join(tok[5:])}")
        try:
            iface, group, port, hops, loop = media6.parse_mcast6(tok)
        except media6.Invalid as bad:
            return self.error(str(bad), bad.hint)
        self.add_medium(Medium("mcast6", iface, port, group=group, ttl=hops, loop=loop))

    def _wl_ucast6(self, rest: str) -> None:
        tok = _WS_RE.split(rest.strip(WHITESPACE))
        if len(tok) > 2:
            self.warn("ucast6: only the first peer on a line is used; give one line per peer")
        try:
            iface, peer = media6.parse_ucast6(tok)
        except media6.Invalid as bad:
            return self.error(str(bad), bad.hint)
        if self.ucast6_port is None:
            self.ucast6_port = self.port
        elif self.ucast6_port != self.port:
            self.warn(f"ucast6 keeps port {self.ucast6_port} from its first line, as 3.0.6 does")
        self.add_medium(Medium("ucast6", iface, self.ucast6_port, peer=peer))

    def _wl_ping_group(self, rest: str) -> None:
        tok = [t.lower() for t in _WS_RE.split(rest.strip(WHITESPACE)) if t]
        if len(tok) < 2:
            return self.error("ping_group needs a name and hosts", "ping_group NAME HOST...")
        if tok[0] in self.ping_groups:
            return self.error(f"ping_group [{tok[0]}] defined twice", "use one line per group")
        self.ping_groups[tok[0]] = tok[1:]

    def _wl_stonith(self, rest: str) -> None:
        try:
            self.stonith = stonith_cfg.parse_stonith(rest, self.line)
        except stonith_cfg.Invalid as bad:
            self.error(str(bad), bad.hint)

    def _wl_stonith_host(self, rest: str) -> None:
        # As 3.0.6: the last line that applies to this node wins; other nodes' lines are skipped.
        try:
            device = stonith_cfg.parse_stonith_host(rest, self.local_node, self.line)
        except stonith_cfg.Invalid as bad:
            return self.error(str(bad), bad.hint)
        if device is not None:
            self.stonith = device

    def _wl_apiauth(self, rest: str) -> None:
        usage = "syntax: apiauth CLIENT [uid=a,b] [gid=c,d], at least one of uid= and gid="
        tok = [t for t in _WS_RE.split(rest.strip(WHITESPACE)) if t]
        lists: dict[str, tuple[str, ...]] = {}
        for item in tok[1:]:
            kind, eq, names = item.partition("=")
            if kind not in ("uid", "gid") or not eq or kind in lists:
                return self.error(f"Invalid apiauth directive [{rest.strip()}]", usage)
            lists[kind] = tuple(n for n in names.split(",") if n)
        if not tok or not lists:
            return self.error(f"Invalid apiauth directive [{rest.strip()}]", usage)
        if tok[0] in self.apiauth:
            return self.error(f"Duplicate apiauth directive for API client {tok[0]}", usage)
        self.apiauth[tok[0]] = (lists.get("uid", ()), lists.get("gid", ()))

    def _wl_respawn(self, rest: str, kind: str = "respawn") -> None:
        tok = [t for t in _WS_RE.split(rest.strip(WHITESPACE)) if t]
        usage = f"syntax: {kind} USER /absolute/path [args]"
        if len(tok) < 2:
            return self.error(f"{kind} needs a user and a command", usage)
        user, argv = tok[0], tok[1:]
        if not argv[0].startswith("/"):
            return self.error(f"Client child command [{argv[0]}] is not full pathname", usage)
        # Only warnings: configs are often checked on another machine than the one they run on.
        try:
            pwd.getpwnam(user)
        except (KeyError, ValueError):
            self.warn(f"{kind}: user [{user}] does not exist on this machine")
        try:
            runnable = os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)
        except (OSError, ValueError):
            runnable = False
        if not runnable:
            self.warn(f"{kind}: [{argv[0]}] is not an executable file on this machine")
        self.children[kind].append((user, argv))

    def _wl_failfast(self, rest: str) -> None:
        self._wl_respawn(rest, "failfast")

    # ---- after the last line -------------------------------------------------------------

    def timers(self) -> tuple[int, int, int, int, int]:
        """Spec 6.2 defaults and start-up checks; derived defaults are recorded as NNNms."""
        p, at, params = self.parsed, self.lines.get, self.params
        keepalive, deadtime = p.get("keepalive", 1000), p.get("deadtime", 30000)
        if deadtime <= 2 * keepalive:
            msg = f"Dead time [{deadtime}] is too small compared to keepalive [{keepalive}]"
            line = at("deadtime", at("keepalive"))
            self.error(msg, "deadtime must be more than twice keepalive", line)
        initdead = p.get("initdead")
        if initdead is None:
            initdead = deadtime if deadtime > 10000 else 12000 if deadtime < 6000 else 2 * deadtime
            params["initdead"] = f"{initdead}ms"
        if initdead < deadtime:
            msg = f"Initial dead time [{initdead}] is smaller than deadtime [{deadtime}]"
            self.error(msg, "initdead must be >= deadtime", at("initdead"))
        elif initdead < 10000:
            msg = f"Initial dead time [{initdead} ms] may be too small: allow for slow network"
            self.warn(msg + " start-up (>= deadtime and >= 10 seconds)", at("initdead"))
        warntime = p.get("warntime")
        if warntime is None:
            warntime = deadtime // 2
            params["warntime"] = f"{warntime}ms"
        elif warntime >= deadtime:
            self.warn("warntime should be less than deadtime", at("warntime"))
        deadping = p.get("deadping")
        if deadping is None:
            deadping = deadtime
            params["deadping"] = f"{deadping}ms"
        elif deadping <= 2 * keepalive:
            msg = f"Ping dead time [{deadping}] is too small compared to keepalive [{keepalive}]"
            self.error(msg, "deadping must be more than twice keepalive", at("deadping"))
        return keepalive, deadtime, warntime, initdead, deadping

    def membership(self, local_node: str, autojoin: str) -> list[str]:
        nodes = list(self.nodes)
        if local_node in nodes:
            pass
        elif autojoin == "any":  # 3.0.6 adds the local node itself
            nodes.append(local_node)
            self.warn(f"Current node [{local_node}] added to configuration", None)
        elif not nodes:
            self.error("no nodes defined", "add one `node NAME` line per cluster member", None)
        else:
            msg = f"Current node [{local_node}] not in configuration: nodes are {', '.join(nodes)}"
            self.error(msg, "hostname (uname -n) must match a node line", None)
        if autojoin != "none":
            msg = "3.0.6 refuses autojoin with haresources management (R1 style conflicts)"
            self.warn(msg, self.lines["autojoin"])
        return nodes

    def logging(self) -> tuple[str | None, str | None, bool]:
        """Spec 11 / 3.0.6 check_logd_usage: file defaults and when logd is implied."""
        facility, explicit = self.parsed.get("logfacility"), self.parsed.get("use_logd")
        logfile, debugfile = self.parsed.get("logfile"), self.parsed.get("debugfile")
        if logfile is None and debugfile is None and facility is None:
            if explicit is False:
                msg = "No log entry found in ha.cf and use_logd is set to off"
                hint = "add logfacility, logfile or debugfile, or set use_logd yes"
                self.error(msg, hint, self.lines["use_logd"])
            self.params.setdefault("use_logd", "yes")
            return None, None, True
        if facility is not None:  # stray script output goes nowhere rather than to a terminal
            logfile = logfile or "/dev/null"
            debugfile = debugfile or "/dev/null"
        return logfile, debugfile, bool(explicit)

    def finish(self, local_node: str) -> HaConfig:
        p, params = self.parsed, self.params
        keepalive, deadtime, warntime, initdead, deadping = self.timers()
        params.setdefault("udpport", str(self.default_port))
        if not self.media:
            hint = "add a bcast, mcast, ucast, mcast6 or ucast6 line"
            self.error("No heartbeat media defined", hint, None)
        nodes = self.membership(local_node, p.get("autojoin", "none"))
        failback = self.failback or "legacy"
        params["auto_failback"] = params.get("auto_failback", failback)
        if failback == "legacy":
            msg = "Deprecated 'legacy' auto_failback option selected; please convert to "
            msg += "'auto_failback on' (hb_standby is refused in legacy mode)"
            self.warn(msg, self.lines.get("auto_failback", self.lines.get("nice_failback")))
        logfile, debugfile, use_logd = self.logging()
        for key, value in _DEFAULT_PARAMS.items():
            params.setdefault(key, value)
        return HaConfig(
            path=self.path, local_node=local_node, nodes=nodes, media=list(self.media),
            udpport=int(params["udpport"]), keepalive_ms=keepalive, deadtime_ms=deadtime,
            warntime_ms=warntime, initdead_ms=initdead, deadping_ms=deadping,
            auto_failback=failback, logfile=logfile, debugfile=debugfile,
            logfacility=p.get("logfacility"), use_logd=use_logd, debug=p.get("debug", 0),
            watchdog=p.get("watchdog"), realtime=p.get("realtime", True), rtprio=p.get("rtprio"),
            hopfudge=p.get("hopfudge", 1), hbgenmethod=p.get("hbgenmethod", "file"),
            msgfmt=p.get("msgfmt", "classic"), max_rexmit_delay_ms=p.get("max_rexmit_delay", 250),
            autojoin=p.get("autojoin", "none"), uuidfrom=p.get("uuidfrom", "file"),
            cluster=p.get("cluster", "linux-ha"), ping=list(self.ping),
            ping_groups=dict(self.ping_groups), respawn=self.children["respawn"],
            env=dict(self.env), params=params, warnings=self.warnings,
            failfast=self.children["failfast"], apiauth={**_DEFAULT_APIAUTH, **self.apiauth},
            stonith=self.stonith,
        )  # fmt: skip


def parse_hacf(
    text: str,
    path: str = "/etc/ha.d/ha.cf",
    local_node: str | None = None,
    *,
    udpport_default: int | None = None,
) -> HaConfig:
    """Parse ha.cf text; raises ConfigErrors listing every problem found.

    local_node None means this machine (nodeinfo beside `path`, else uname -n);
    udpport_default None means /etc/services ha-cluster/udp, else 694.
    """
    if local_node is None:
        local_node = local_node_name(os.path.dirname(path) or ".")
    port = default_udpport() if udpport_default is None else udpport_default
    parser = _Parser(path, port)
    parser.local_node = local_node.lower()
    for lineno, raw in enumerate(text.split("\n"), 1):
        parser.feed(lineno, raw)
    config = parser.finish(local_node.lower())
    if parser.errors:
        raise ConfigErrors(parser.errors)
    return config


def load_hacf(path: str = "/etc/ha.d/ha.cf", local_node: str | None = None) -> HaConfig:
    """Read and parse ha.cf; an unreadable file is a ConfigErrors naming it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        msg = f"Cannot open config file [{path}]: {exc.strerror or exc}"
        hint = "copy the annotated sample ha.cf there, read it, customize it, and try again"
        raise ConfigErrors([ConfigError(path, None, msg, hint)]) from None
    return parse_hacf(data.decode("utf-8", "surrogateescape"), path, local_node)
