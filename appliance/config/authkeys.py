"""authkeys parser with Heartbeat 3.0.6 semantics (spec 4.1).

Key material never appears in a repr, an error message or a hint: errors name the line
and what was expected, never the text that was found on it.

Besides 3.0.6's crc, md5 and sha1, hb-appliance reads methods that only its own nodes speak
(a 3.0.6 node refuses to start with them in its authkeys): sha256 (HMAC-SHA256, stdlib) and
the AEAD envelopes aes256gcm and chacha20poly1305 (through `cryptography`, imported here only
when a line names one of them). Their keys must be at least MIN_MODERN_KEY characters. A
build without `cryptography` (EL6) reports an AEAD line as a configuration error.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Callable

from appliance.errors import ConfigError, ConfigErrors

WHITESPACE = " \t\n\r\f"  # what sscanf("%s") stops at in 3.0.6
MAX_AUTH = 16  # indexes 0..15
LEGACY_METHODS = ("crc", "md5", "sha1")                  # what Heartbeat 3.0.6 knows
MODERN_METHODS = ("sha256", "aes256gcm", "chacha20poly1305")  # hb-appliance nodes only
AEAD_METHODS = ("aes256gcm", "chacha20poly1305")
METHODS = LEGACY_METHODS + MODERN_METHODS
MIN_MODERN_KEY = 16   # new methods have no compatibility to keep: refuse short pass phrases
_NEEDS_KEY = {m: m != "crc" for m in METHODS}
_METHOD_LIST = "crc, md5 or sha1 (Heartbeat 3.0.6), or sha256, aes256gcm, chacha20poly1305"
# 3.0.6 reads `auth N` with sscanf("auth %d") and method lines with sscanf("%d%s%s").
_AUTH_RE = re.compile(r"auth[ \t\n\r\f]*([+-]?[0-9]+)", re.A)
_METHOD_RE = re.compile(
    r"([+-]?[0-9]+)[ \t\n\r\f]*([^ \t\n\r\f]+)(?:[ \t\n\r\f]+([^ \t\n\r\f]+))?", re.A
)
_SYNTAX = f"expected `auth N` or `N METHOD [KEY]`, METHOD being {_METHOD_LIST}"


@dataclass(frozen=True)
class AuthMethod:
    index: int
    method: str  # one of METHODS
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
        return ConfigError(path, lineno, "unknown authentication method", f"use {_METHOD_LIST}")
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
    if method in MODERN_METHODS and len(raw) < MIN_MODERN_KEY:
        return ConfigError(path, lineno, f"{method} key too short",
                           f"use at least {MIN_MODERN_KEY} characters, e.g. from `openssl rand -hex 32`")
    if method in AEAD_METHODS:
        from appliance.wire.sealed import unavailable

        why = unavailable(method)   # imports `cryptography`: only when a line asks for AEAD
        if why is not None:
            return ConfigError(path, lineno, f"auth method {method} is not available in this build",
                               f"{why}; use sha256 here, or the EL7 package for AEAD")
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


# Opens the keyfile for load_authkeys. appliance.privsep replaces it when the daemon runs as an
# unprivileged user: its root helper opens the (root-only) file and passes the descriptor.
_opener: Callable[[str], int] | None = None


def set_opener(opener: Callable[[str], int] | None) -> None:
    global _opener
    _opener = opener


def _open(path: str) -> int:
    if _opener is not None:
        return _opener(path)
    # O_NONBLOCK: a FIFO planted at the path must not hang start-up.
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def load_authkeys(path: str = "/etc/ha.d/authkeys") -> AuthKeys:
    """Check permissions, then parse; the mode is taken from the open file (no race)."""
    try:
        fd = _open(path)
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
