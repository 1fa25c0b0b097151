"""The optional extension file /etc/ha.d/hb-appliance.cf: settings Heartbeat 3.0.6 never had.

Real Heartbeat nodes never read it, and without it every default matches 3.0.6's behaviour as
closely as we can.  Parsed and validated by configobj against a spec, so a typo names the file,
the section and what was expected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from appliance.errors import ConfigError, ConfigErrors

SPEC = """
[resources]
start_timeout = float(min=0.1, default=120.0)
stop_timeout = float(min=0.1, default=120.0)
status_timeout = float(min=0.1, default=30.0)
retry_delay = float(min=0.0, default=30.0)

[announce]
arp_count = integer(min=0, max=100, default=5)
arp_interval = float(min=0.01, max=10.0, default=0.2)
""".strip().splitlines()


@dataclass(frozen=True)
class Extension:
    start_timeout: float = 120.0
    stop_timeout: float = 120.0
    status_timeout: float = 30.0
    retry_delay: float = 30.0
    arp_count: int = 5
    arp_interval: float = 0.2


def load_extension(path: str) -> Extension:
    """Defaults when the file is absent; ConfigErrors listing every bad key otherwise."""
    if not os.path.exists(path):
        return Extension()
    from configobj import ConfigObj, ConfigObjError, flatten_errors
    from configobj.validate import Validator

    try:
        conf = ConfigObj(path, configspec=SPEC, file_error=True, raise_errors=False)
    except (ConfigObjError, OSError) as exc:
        line = getattr(exc, "line_number", None)
        hint = "INI-style `key = value` lines under [section] headers"
        raise ConfigErrors([ConfigError(path, line, f"cannot parse: {exc}", hint)]) from None
    result = conf.validate(Validator(), preserve_errors=True)
    errors: list[ConfigError] = []
    if result is not True:
        for sections, key, err in flatten_errors(conf, result):
            where = "/".join([*sections, key or ""]).rstrip("/")
            text = f"[{where}]: {err or 'missing section'}"
            errors.append(ConfigError(path, None, text, "see README: extension file"))
    known = {"resources", "announce"}
    for section in conf:
        if section not in known:
            hint = f"known: {', '.join(sorted(known))}"
            errors.append(ConfigError(path, None, f"unknown section [{section}]", hint))
    for section in known & set(conf):
        spec_keys = set(conf.configspec[section]) if section in conf.configspec else set()
        for key in conf[section]:
            if key not in spec_keys:
                errors.append(ConfigError(path, None, f"unknown key {key} in [{section}]",
                                          f"known: {', '.join(sorted(spec_keys))}"))
    if errors:
        raise ConfigErrors(errors)
    r, a = conf["resources"], conf["announce"]
    return Extension(r["start_timeout"], r["stop_timeout"], r["status_timeout"], r["retry_delay"],
                     a["arp_count"], a["arp_interval"])
