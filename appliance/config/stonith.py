"""`stonith` and `stonith_host` lines of ha.cf, read as Heartbeat 3.0.6 reads them (pure).

    stonith TYPE CONFIGFILE                 the device's parameters are in CONFIGFILE
    stonith_host HOSTFROM TYPE PARAMS...    HOSTFROM is this node (uname -n) or `*`; PARAMS is
                                            the device's parameter string (`stonith -p` syntax)

3.0.6 keeps one device: each applicable line replaces the previous one (config.c: "This will
have to change to a list !!!"), and a stonith_host line for another host is skipped silently.
PARAMS often holds a password: it is kept out of repr(), error messages and the log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WS = re.compile(r"[ \t\n\r\f]+")
# cluster-glue plugin names: `null`, `ssh`, `external/ipmi`, `rcd_serial`, `apcmastersnmp`...
_TYPE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(/[A-Za-z0-9_][A-Za-z0-9_.+-]*)?")


class Invalid(ValueError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class StonithDevice:
    type: str
    config_file: str | None = None                    # `stonith TYPE CONFIGFILE`
    params: str | None = field(default=None, repr=False)   # `stonith_host ... PARAMS` (secret)
    line: int = 0

    @property
    def directive(self) -> str:
        return "stonith" if self.config_file is not None else "stonith_host"


def _check_type(text: str, directive: str) -> str:
    if not _TYPE.fullmatch(text):
        hint = "a cluster-glue plugin name, as `stonith -L` lists them (null, external/ssh, ...)"
        raise Invalid(f"Invalid Stonith type in {directive} line", hint)
    return text


def parse_stonith(rest: str, line: int = 0) -> StonithDevice:
    """`stonith TYPE CONFIGFILE`: the rest of the line after TYPE is the file name (3.0.6
    reads it with %[^\\r\\n])."""
    text = rest.strip(" \t\n\r\f")
    parts = _WS.split(text, maxsplit=1)
    if not text:
        raise Invalid("No Stonith type given", "syntax: stonith TYPE CONFIGFILE")
    if len(parts) < 2:
        raise Invalid("No Stonith config file given", "syntax: stonith TYPE CONFIGFILE")
    return StonithDevice(_check_type(parts[0], "stonith"), config_file=parts[1], line=line)


def parse_stonith_host(rest: str, local_node: str, line: int = 0) -> StonithDevice | None:
    """`stonith_host HOSTFROM TYPE PARAMS...`; None when HOSTFROM is another node (3.0.6
    accepts such a line without looking at the rest)."""
    usage = "syntax: stonith_host HOSTFROM|* TYPE PARAMS..."
    text = rest.strip(" \t\n\r\f")
    parts = _WS.split(text, maxsplit=2)
    if not text:
        raise Invalid("No Stonith hostname argument given", usage)
    host = parts[0].lower()
    if host != "*" and host != local_node.lower():
        return None
    if len(parts) < 2:
        raise Invalid("No Stonith type given", usage)
    params = parts[2] if len(parts) > 2 else ""
    return StonithDevice(_check_type(parts[1], "stonith_host"), params=params, line=line)
