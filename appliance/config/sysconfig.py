"""/etc/sysconfig/heartbeat: the packaged defaults file, shared with the init script and unit.

Shell syntax (KEY="value"), which configobj reads as plain key = value pairs.  The daemon uses
HA_DIR (where ha.cf, authkeys and haresources live); the scripts also use HEARTBEAT_OPTS.
"""

from __future__ import annotations

import os

SYSCONFIG = "/etc/sysconfig/heartbeat"


def load_sysconfig(path: str = SYSCONFIG) -> dict[str, str]:
    """The file's KEY=value pairs; {} when it is absent or unreadable (defaults then apply)."""
    if not os.path.exists(path):
        return {}
    from configobj import ConfigObj, ConfigObjError

    try:
        conf = ConfigObj(path, list_values=False, interpolation=False, file_error=True)
    except (ConfigObjError, OSError):
        return {}
    return {k: _unquote(v) for k, v in conf.items() if isinstance(v, str)}


def _unquote(value: str) -> str:
    # Shell quoting: KEY="a b" or KEY='a b'; configobj keeps the quotes with list_values off.
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
