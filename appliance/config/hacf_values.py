"""ha.cf value syntax: times, booleans, names, facilities, as 3.0.6 reads them."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Callable

WHITESPACE = " \t\n\r\f"  # heartbeat.h WHITESPACE
MAX_TIME_MS = 2**31 - 1  # keeps every timer usable as a C long / event-loop delay
MAX_NODENAME = 100  # HOSTLENG
TIME_HINT = "a time is seconds, e.g. 2 or 1.5, or NNNms / NNNus; 's' is not a valid suffix"
BOOL_HINT = "expected true/on/yes/y/1 or false/off/no/n/0"
_TRUE = {"true", "on", "yes", "y", "1"}
_FALSE = {"false", "off", "no", "n", "0"}
_CRM_TRUE = _TRUE | {"respawn", "minimal", "manual", "valgrind", "ccm-only"}
FACILITIES = (
    "auth authpriv cron daemon ftp kern lpr mail news syslog user uucp "
    "local0 local1 local2 local3 local4 local5 local6 local7"
).split()
_TIME_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t]*(ms|msec|us|usec)?", re.I | re.A)
_UNIT_SCALE = {"": Fraction(1000), "ms": Fraction(1), "msec": Fraction(1)}
_UNIT_SCALE.update({"us": Fraction(1, 1000), "usec": Fraction(1, 1000)})


def parse_time_ms(text: str) -> int:
    """3.0.6 cl_get_msec: seconds by default, 'ms'/'us' suffixes, rounded half up to whole ms."""
    m = _TIME_RE.fullmatch(text.strip(WHITESPACE))
    if m is None or len(m.group(1)) > 30:  # the length cap keeps Fraction() cheap on junk
        raise ValueError(f"invalid time [{text}]: {TIME_HINT}")
    ms = math.floor(Fraction(m.group(1)) * _UNIT_SCALE[(m.group(2) or "").lower()] + Fraction(1, 2))
    if ms > MAX_TIME_MS:
        raise ValueError(f"time [{text}] is too large (max {MAX_TIME_MS} ms)")
    return ms


class _Invalid(Exception):
    """A bad value; the caller adds file and line. `message` replaces the generic text."""

    def __init__(self, hint: str, message: str | None = None) -> None:
        super().__init__(hint)
        self.hint = hint
        self.message = message


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _Invalid(BOOL_HINT)


def _time(minimum: int) -> Callable[[str], object]:
    def check(text: str) -> int:
        try:
            ms = parse_time_ms(text)
        except ValueError:
            raise _Invalid(TIME_HINT) from None
        if ms < minimum:
            raise _Invalid(f"must be at least {minimum} ms; {TIME_HINT}")
        return ms

    return check


def _int(lo: int, hi: int, suffix: str = "") -> Callable[[str], object]:
    def check(text: str) -> int:
        digits = text[: -len(suffix)] if suffix and text.lower().endswith(suffix) else text
        if not re.fullmatch(r"[0-9]{1,10}", digits, re.A) or not lo <= int(digits) <= hi:
            raise _Invalid(f"expected an integer {lo}..{hi}")
        return int(digits)

    return check


def _choice(*options: str, fold: bool = False) -> Callable[[str], object]:
    def check(text: str) -> str:
        value = text.lower() if fold else text
        if value not in options:
            raise _Invalid("expected " + " or ".join(options))
        return value

    return check


def _facility(text: str) -> str | None:
    low = text.lower()
    if low == "none":
        return None
    if low not in FACILITIES:
        raise _Invalid("expected a syslog facility: " + ", ".join(FACILITIES) + " or none")
    return low


def _failback(text: str) -> str:
    if text.lower() == "legacy":
        return "legacy"
    try:
        return "on" if parse_bool(text) else "off"
    except _Invalid:
        raise _Invalid("expected on, off or legacy") from None


def _crm(text: str) -> bool:
    if text.lower() in _CRM_TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _Invalid("expected off/false/no to keep classic haresources mode")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _ifname(text: str) -> str:
    if len(text) > 15 or "/" in text or text in (".", "..") or _CONTROL.search(text):
        raise _Invalid("expected a network interface name of at most 15 characters")
    return text


def _nodename(text: str) -> str:
    if len(text) > MAX_NODENAME or _CONTROL.search(text):
        raise _Invalid(f"node names are printable, at most {MAX_NODENAME} characters")
    return text.lower()


def _mcast_group(text: str) -> str:
    octets = text.split(".")
    if (
        len(octets) != 4
        or not all(re.fullmatch(r"0|[1-9][0-9]{0,2}", o, re.A) for o in octets)
        or any(int(o) > 255 for o in octets)
        or not 224 <= int(octets[0]) <= 239
    ):
        raise _Invalid("expected a multicast IPv4 address, 224.0.0.0 .. 239.255.255.255")
    return text
