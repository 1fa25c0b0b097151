"""authkeys parser with Heartbeat 3.0.6 semantics (spec 4.1).

Key material never appears in a repr, an error message or a hint: errors name the line
and what was expected, never the text that was found on it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from appliance.errors import ConfigError, ConfigErrors

WHITESPACE = " \t\n\r\f"  # what sscanf("%s") stops at in 3.0.6
MAX_AUTH = 16  # indexes 0..15
METHODS = ("crc", "md5", "sha1")
_NEEDS_KEY = {"crc": False, "md5": True, "sha1": True}
# 3.0.6 reads `auth N` with sscanf("auth %d") and method lines with sscanf("%d%s%s").
_AUTH_RE = re.compile(r"auth[ \t\n\r\f]*([+-]?[0-9]+)", re.A)
_METHOD_RE = re.compile(
    r"([+-]?[0-9]+)[ \t\n\r\f]*([^ \t\n\r\f]+)(?:[ \t\n\r\f]+([^ \t\n\r\f]+))?", re.A
)
_SYNTAX = "expected `auth N` or `N METHOD [KEY]`, METHOD being crc, md5 or sha1"


@dataclass(frozen=True)
class AuthMethod:
    index: int
    method: str  # "crc" | "md5" | "sha1"
    key: bytes = field(repr=False)  # secret: kept out of repr/str and every message


@dataclass(frozen=True)
class AuthKeys:
    active: int  # index used to sign outbound packets
    methods: dict[int, AuthMethod]  # every defined index (all are accepted on receipt)
    path: str

    @property
    def active_method(self) -> AuthMethod:
        return self.methods[self.active]


def _method_line(
    lineno: int, m: re.Match[str], path: str, methods: dict[int, AuthMethod]
) -> ConfigError | AuthMethod:
    """One `N METHOD [KEY]` line, checked in 3.0.6's order: index, duplicate, method, key."""
    index_text, method, key = m.group(1), m.group(2), m.group(3)
    index = int(index_text) if len(index_text) <= 10 else MAX_AUTH
    if not 0 <= index < MAX_AUTH:
        return ConfigError(path, lineno, "key index out of range", f"use 0..{MAX_AUTH - 1}")
    if index in methods:
        return ConfigError(path, lineno, f"Multiply defined authnum [{index}]", "one line per N")
    if method not in METHODS:
        # The unknown word is not echoed: a line missing its method has the key there.
        return ConfigError(path, lineno, "unknown authentication method", "use crc, md5 or sha1")
    if _NEEDS_KEY[method] and key is None:
        hint = f"write `{index} {method} KEY`"
        return ConfigError(path, lineno, f"Auth method [{method}] requires a key", hint)
    if not _NEEDS_KEY[method] and key is not None:
        return ConfigError(path, lineno, "crc takes no key", f"write `{index} crc` alone")
    try:
        # surrogateescape gives back the file's raw bytes (load_authkeys decodes that way).
        raw = b"" if key is None else key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return ConfigError(path, lineno, "key is not valid text", "use a printable ASCII key")
    return AuthMethod(index, method, raw)


def parse_authkeys(text: str, path: str = "/etc/ha.d/authkeys") -> AuthKeys:
    """Parse authkeys text; raises ConfigErrors listing every problem (never the key)."""
    errors: list[ConfigError] = []
    methods: dict[int, AuthMethod] = {}
    authnum: int | None = None  # value of the latest `auth N` line seen so far
    shown = ""  # that N as written, for the error message
    auth_line: int | None = None
    active: int | None = None
    defined_at: dict[int, int] = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        bp = raw.lstrip(WHITESPACE).split("\x00", 1)[0]  # a C string ends at NUL
        if not bp or bp[0] == "#":
            continue
        if bp[0] == "a":
            m = _AUTH_RE.match(bp)
            if m is None:
                errors.append(ConfigError(path, lineno, "invalid auth line", "expected `auth N`"))
            else:
                shown = m.group(1) if len(m.group(1)) <= 10 else "N"
                authnum = int(m.group(1)) if len(m.group(1)) <= 10 else MAX_AUTH  # never matches
                auth_line = lineno
            continue
        m = _METHOD_RE.match(bp)
        if m is None:
            errors.append(ConfigError(path, lineno, "invalid line", _SYNTAX))
            continue
        result = _method_line(lineno, m, path, methods)
        if isinstance(result, ConfigError):
            errors.append(result)
            continue
        methods[result.index] = result
        defined_at[result.index] = lineno
        # 3.0.6 matches the active index while reading, so `auth N` must come first.
        if result.index == authnum:
            active = result.index
    if active is None:
        if authnum is None:
            errors.append(ConfigError(path, None, "No auth line", "add `auth N` before `N ...`"))
        else:
            hint = f"the `auth {shown}` line must come before a valid `{shown} METHOD KEY` line"
            if authnum in defined_at:
                hint = f"move `auth {shown}` above line {defined_at[authnum]}, which defines it"
            errors.append(ConfigError(path, auth_line, f"Auth Key [{shown}] not found", hint))
    if errors:
        raise ConfigErrors(errors)
    assert active is not None
    return AuthKeys(active=active, methods=methods, path=path)


def _mode_error(path: str, mode: int) -> ConfigErrors | None:
    if mode & 0o044:  # readable by group or other
        return ConfigErrors(
            [
                ConfigError(
                    path,
                    None,
                    f"Bad permissions on keyfile [{path}], 600 recommended",
                    f"chmod 600 {path}",
                )
            ]
        )
    return None


def _open_error(path: str, exc: OSError) -> ConfigErrors:
    message = f"Cannot open keyfile [{path}]: {exc.strerror or exc}"
    return ConfigErrors([ConfigError(path, None, message, "create it with mode 600")])


def check_permissions(path: str) -> None:
    """Refuse a keyfile readable by group or other, as 3.0.6 does (exit 6)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _open_error(path, exc) from None
    bad = _mode_error(path, mode)
    if bad is not None:
        raise bad


def load_authkeys(path: str = "/etc/ha.d/authkeys") -> AuthKeys:
    """Check permissions, then parse; the mode is taken from the open file (no race)."""
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang start-up.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            bad = _mode_error(path, mode)
            if bad is not None:
                raise bad
            if not stat.S_ISREG(mode):
                raise OSError(0, "not a regular file")
            data = f.read()
    except OSError as exc:
        raise _open_error(path, exc) from None
    return parse_authkeys(data.decode("utf-8", "surrogateescape"), path)
