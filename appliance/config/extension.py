"""The optional extension file /etc/ha.d/hb-appliance.cf: settings Heartbeat 3.0.6 never had.

Real Heartbeat nodes never read it, and without it every default matches 3.0.6's behaviour as
closely as we can (no health checks, no hooks, no metrics, no periodic announcements).  Parsed
and validated by configobj against a spec, so a typo names the file, the line, the section and
what was expected.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace

from appliance.errors import ConfigError, ConfigErrors

_MONITOR_KEYS = """
interval = float(min=0.0, max=86400.0, default={interval})
timeout = float(min=0.1, max=3600.0, default={timeout})
rise = integer(min=1, max=100, default={rise})
fall = integer(min=1, max=100, default={fall})
restarts = integer(min=0, max=1000, default={restarts})
failure_timeout = float(min=0.0, default={failure_timeout})
check = string(default={check})
"""

SPEC = ("""
[resources]
start_timeout = float(min=0.1, default=120.0)
stop_timeout = float(min=0.1, default=120.0)
status_timeout = float(min=0.1, default=30.0)
retry_delay = float(min=0.0, default=30.0)

[announce]
arp_count = integer(min=0, max=100, default=5)
arp_interval = float(min=0.01, max=10.0, default=0.2)
refresh_interval = float(min=0.0, max=86400.0, default=0.0)
max_rate = integer(min=0, max=100000, default=200)

[monitor]
""" + _MONITOR_KEYS.format(interval=0.0, timeout=20.0, rise=1, fall=1, restarts=3,
                           failure_timeout=600.0, check='""') + """
[[__many__]]
""" + _MONITOR_KEYS.format(interval=None, timeout=None, rise=None, fall=None, restarts=None,
                           failure_timeout=None, check=None) + """
[hooks]
notify = force_list(default=list())
timeout = float(min=0.1, max=3600.0, default=30.0)

[metrics]
textfile = string(default="")
textfile_interval = float(min=0.5, max=3600.0, default=10.0)
listen = string(default="")
""").strip().splitlines()

SECTIONS = ("resources", "announce", "monitor", "hooks", "metrics")


@dataclass(frozen=True)
class MonitorSettings:
    """Health checks of one resource group (interval 0 = off, as Heartbeat v1)."""

    interval: float = 0.0
    timeout: float = 20.0
    rise: int = 1                 # consecutive good checks before a recovering group counts healthy
    fall: int = 1                 # consecutive bad checks before it counts failed
    restarts: int = 3             # restarts in place before the group goes to another node
    failure_timeout: float = 600.0  # restarts older than this are forgotten
    check: str = ""               # extra command (via /bin/sh -c); exit 0 = healthy

    @property
    def enabled(self) -> bool:
        return self.interval > 0


@dataclass(frozen=True)
class Extension:
    start_timeout: float = 120.0
    stop_timeout: float = 120.0
    status_timeout: float = 30.0
    retry_delay: float = 30.0
    arp_count: int = 5
    arp_interval: float = 0.2
    refresh_interval: float = 0.0   # periodic gratuitous ARP while active (0 = off)
    max_rate: int = 200             # announcement packets per second per interface (0 = no limit)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    monitor_groups: dict[str, MonitorSettings] = field(default_factory=dict)
    notify: tuple[str, ...] = ()
    notify_timeout: float = 30.0
    metrics_textfile: str = ""
    metrics_interval: float = 10.0
    metrics_listen: str = ""        # "ADDR:PORT" for the opt-in HTTP listener

    def monitor_for(self, key: str) -> MonitorSettings:
        return self.monitor_groups.get(key, self.monitor)


def load_extension(path: str, group_keys: list[str] | None = None) -> Extension:
    """Defaults when the file is absent; ConfigErrors listing every bad key otherwise."""
    if not os.path.exists(path):
        return Extension()
    from configobj import ConfigObj, ConfigObjError, flatten_errors
    from configobj.validate import Validator

    try:
        conf = ConfigObj(path, configspec=SPEC, file_error=True, raise_errors=False,
                         list_values=True, interpolation=False)
    except (ConfigObjError, OSError) as exc:
        line = getattr(exc, "line_number", None)
        hint = "INI-style `key = value` lines under [section] headers"
        raise ConfigErrors([ConfigError(path, line, f"cannot parse: {exc}", hint)]) from None
    lines = _read_lines(path)
    result = conf.validate(Validator(), preserve_errors=True)
    errors: list[ConfigError] = []
    if result is not True:
        for sections, key, err in flatten_errors(conf, result):
            where = "/".join([*sections, key or ""]).rstrip("/")
            text = f"[{where}]: {err or 'missing section'}"
            line = _line_of(lines, sections, key)
            errors.append(ConfigError(path, line, text, "see hb-appliance.cf(5)"))
    errors += _unknown_names(path, conf, lines, group_keys)
    errors += _semantic_errors(path, conf, lines)
    if errors:
        raise ConfigErrors(errors)
    r, a, m, h, x = (conf[s] for s in SECTIONS)
    base = _monitor(m, MonitorSettings())
    per_group = {k: _monitor(m[k], base) for k in m.sections}
    return Extension(
        r["start_timeout"], r["stop_timeout"], r["status_timeout"], r["retry_delay"],
        a["arp_count"], a["arp_interval"], a["refresh_interval"], a["max_rate"],
        base, per_group, tuple(h["notify"]), h["timeout"],
        x["textfile"], x["textfile_interval"], x["listen"],
    )


def parse_listen(text: str) -> tuple[str, int]:
    """"ADDR:PORT" or "[v6]:PORT" -> (addr, port); ValueError says what was expected."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text.strip())
    if not m:
        raise ValueError("expected ADDRESS:PORT, e.g. 127.0.0.1:9694")
    addr, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if not 0 < int(port) < 65536:
        raise ValueError(f"port {port} out of range 1..65535")
    return addr, int(port)


def _monitor(section, base: MonitorSettings) -> MonitorSettings:
    values = {f.name: section[f.name] for f in fields(MonitorSettings)
              if section.get(f.name) is not None}
    return replace(base, **values)


def _unknown_names(path: str, conf, lines: list[str], group_keys: list[str] | None) -> list[ConfigError]:
    errors: list[ConfigError] = []
    for section in conf:
        if section not in SECTIONS:
            errors.append(ConfigError(path, _line_of(lines, [section], None),
                                      f"unknown section [{section}]", f"known: {', '.join(SECTIONS)}"))
    for section in set(SECTIONS) & set(conf):
        known = {k for k in conf.configspec[section] if k != "__many__"}
        for key in conf[section].scalars:
            if key not in known:
                errors.append(ConfigError(path, _line_of(lines, [section], key),
                                          f"unknown key {key} in [{section}]",
                                          f"known: {', '.join(sorted(known))}"))
        for sub in conf[section].sections:
            if section != "monitor":
                errors.append(ConfigError(path, _line_of(lines, [section, sub], None),
                                          f"[{section}] has no subsections ([[{sub}]])"))
                continue
            if group_keys is not None and sub not in group_keys:
                errors.append(ConfigError(path, _line_of(lines, [section, sub], None),
                                          f"[[{sub}]] names no resource group",
                                          f"groups in haresources: {', '.join(group_keys) or 'none'}"))
            sub_known = {f.name for f in fields(MonitorSettings)}
            for key in conf[section][sub].scalars:
                if key not in sub_known:
                    errors.append(ConfigError(path, _line_of(lines, [section, sub], key),
                                              f"unknown key {key} in [monitor] [[{sub}]]",
                                              f"known: {', '.join(sorted(sub_known))}"))
    return errors


def _semantic_errors(path: str, conf, lines: list[str]) -> list[ConfigError]:
    errors: list[ConfigError] = []
    listen = conf["metrics"]["listen"]
    if listen and isinstance(listen, str):
        try:
            parse_listen(listen)
        except ValueError as exc:
            errors.append(ConfigError(path, _line_of(lines, ["metrics"], "listen"),
                                      f"[metrics] listen = {listen}: {exc}"))
    hooks = conf["hooks"]["notify"]
    for hook in hooks if isinstance(hooks, list) else []:
        if not os.path.isabs(str(hook)):
            errors.append(ConfigError(path, _line_of(lines, ["hooks"], "notify"),
                                      f"[hooks] notify: {hook} is not an absolute path",
                                      "give each hook script as /full/path"))
    textfile = conf["metrics"]["textfile"]
    if textfile and isinstance(textfile, str) and not os.path.isabs(textfile):
        errors.append(ConfigError(path, _line_of(lines, ["metrics"], "textfile"),
                                  f"[metrics] textfile = {textfile} is not an absolute path"))
    return errors


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _line_of(lines: list[str], sections: list[str], key: str | None) -> int | None:
    """Line number of `key` (or of the innermost section header) in the file, best effort:
    configobj's validator reports values, not positions."""
    path: list[str] = []
    header_line = None
    for no, raw in enumerate(lines, 1):
        text = raw.strip()
        header = re.fullmatch(r"(\[+)\s*(.*?)\s*\]+", text)
        if header:
            path = path[: len(header.group(1)) - 1] + [header.group(2).strip("\"'")]
            if path == list(sections):
                header_line = no
                if key is None:
                    return no
            continue
        if key is not None and path == list(sections) and re.match(rf"{re.escape(key)}\s*=", text):
            return no
    return header_line
