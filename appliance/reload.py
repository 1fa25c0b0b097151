"""`heartbeat -r` / SIGHUP in the daemon: re-read the configuration, as 3.0.6 words it.

3.0.6 re-reads authkeys in place ("Rereading authentication file.") and, when ha.cf's mtime
changed, shuts its processes down and re-execs itself ("Performing heartbeat restart exec.",
keeping its resources).  We re-read in place instead: keys apply at once, ha.cf settings that
cannot change under a running daemon are named in a warning, and held addresses never blink.
Mixed into the Daemon.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.config.authkeys import AuthKeys
    from appliance.config.hacf import HaConfig
    from appliance.config.haresources import ResourceGroup
    from appliance.paths import Paths
    from appliance.watchdog import SystemdNotify

log = logging.getLogger("heartbeat")


def hacf_mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


class ConfigReload:
    # Provided by the Daemon.
    cfg: HaConfig
    keys: AuthKeys
    groups: list[ResourceGroup]
    paths: Paths
    local: str
    sd: SystemdNotify
    hacf_mtime: int | None

    def _reload(self) -> None:
        from appliance.cli.configload import hacf_changes, load_all

        self.sd.notify("RELOADING=1")
        try:
            cfg, keys, groups, _ext = load_all(self.paths, self.local, probe_stonith=False)
        except Exception as exc:  # noqa: BLE001 - keep the running config on any error
            log.error("Reload refused, keeping the running configuration: %s", exc)
            self.sd.notify("READY=1")
            return
        mtime = hacf_mtime(self.paths.hacf)
        if mtime != self.hacf_mtime:
            # 3.0.6 re-execs itself when ha.cf's mtime changed ("Performing heartbeat restart
            # exec."); we re-read in place, so held addresses never blink.
            self.hacf_mtime = mtime
            log.info("ha.cf changed: heartbeat restart exec done in place, resources stay held")
            changed = hacf_changes(self.cfg, cfg)
            if changed:
                log.warning("ha.cf: changes to %s take effect when heartbeat restarts", ", ".join(changed))
        else:
            log.info("Rereading authentication file.")
        self.keys = keys
        if [(g.key, g.home) for g in groups] != [(g.key, g.home) for g in self.groups]:
            log.warning("haresources changed: restart heartbeat to apply group changes")
        log.info("Configuration reloaded (authkeys applied)")
        self.sd.notify("READY=1")
