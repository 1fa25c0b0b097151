"""Process-level set-up of the daemon: realtime scheduling, memory locking, children's environment."""

from __future__ import annotations

import ctypes
import logging
import os

from appliance.config.hacf import HaConfig
from appliance.paths import Paths

log = logging.getLogger("heartbeat")


def script_env(cfg: HaConfig, local: str, paths: Paths) -> dict[str, str]:
    """What 3.0.6 exports to resource scripts (spec §8.9), plus ha.cf `env` lines."""
    env = {f"HA_{k}": v for k, v in cfg.env.items()}
    env.update(
        HA_CURHOST=local,
        HA_LOGD="yes" if cfg.use_logd else "no",
        HA_LOGFILE=cfg.logfile or "",
        HA_DEBUGLOG=cfg.debugfile or "",
        HA_LOGFACILITY=cfg.logfacility or "",
        HA_RSCTMP=os.path.join(paths.run, "rsctmp"),
    )
    if cfg.auto_failback != "legacy":
        env["HA_NICEFAILBACK"] = "yes"
    if cfg.debug:
        env["HA_debug"] = str(cfg.debug)
    return env


MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
THREAD_STACK = 256 * 1024    # our threads (log writer, child watchers) need little stack
M_ARENA_MAX = -8


def trim_memory() -> None:
    """Before any thread starts: with mlockall(MCL_FUTURE) every page we map is made resident,
    so a default 8 MiB thread stack or a 64 MiB per-thread malloc arena costs real memory."""
    import threading

    threading.stack_size(THREAD_STACK)
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


def set_realtime(cfg: HaConfig) -> None:
    """SCHED_RR and mlockall, as Heartbeat's `realtime` does; failures are only logged."""
    if not cfg.realtime:
        return
    prio = cfg.rtprio or max(1, os.sched_get_priority_max(os.SCHED_RR) // 2)
    try:
        # RESET_ON_FORK: resource scripts and the services they start run at normal priority.
        policy = os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0)
        os.sched_setscheduler(0, policy, os.sched_param(prio))
        log.info("Scheduling priority set to SCHED_RR %d", prio)
    except (OSError, AttributeError) as exc:
        log.warning("Cannot set realtime scheduling: %s", exc)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # MCL_ONFAULT (Linux 4.4+): lock pages as they are first used instead of making every
        # mapped page resident (whole libraries, malloc and interpreter arenas): the heartbeat
        # path is locked all the same, at a third of the memory.  Older kernels (EL6/EL7)
        # refuse the flag with EINVAL: lock everything there, as Heartbeat does.
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 and libc.mlockall(
            MCL_CURRENT | MCL_FUTURE
        ) != 0:
            log.error("Unable to lock pid %d in memory", os.getpid())
    except OSError:
        pass
