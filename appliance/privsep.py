"""Privilege separation of the daemon (README "Security model").

The daemon needs root only to set itself up (bind UDP 694, create its sockets under
/var/run/heartbeat, open the watchdog, SCHED_RR and mlockall) and, later, for what the
resource scripts do.  It parses packets from the network for its whole life, so after the
set-up :func:`lockdown` (called once from Daemon.run, right after the last privileged step):

1. turns core dumps off (PR_SET_DUMPABLE 0; RLIMIT_CORE 0 once scripts no longer start here):
   the authkeys secret must not land in a core file.  Always, whatever the mode;
2. starts the root helper (appliance.spawner; fork + exec of this program, so it is small):
   from then on every script, hook and health
   check is started by it, as full root with every capability, as before;
3. gives up everything else: capabilities limited to what the daemon itself uses (keep_caps:
   CAP_NET_ADMIN for netlink addresses, CAP_NET_RAW for gratuitous ARP, neighbour
   advertisements and ping nodes, CAP_KILL to signal API clients of other users,
   CAP_IPC_LOCK with `realtime` so mlockall'ed memory can grow),
   the same bounding set, securebits NOROOT (uid 0 regains nothing through execve),
   no_new_privs; with `user` also uid/gid of an unprivileged account.

Modes, HBA_PRIVSEP in the environment or in /etc/sysconfig/heartbeat:
  caps (default)  helper + capability drop; the daemon keeps uid 0 (so it still owns every
                  root-owned file: a bound on mistakes and on exploits that need a capability,
                  not a wall against code execution).
  user[:NAME]     also switch to NAME (default hacluster, group haclient): then the helper
                  runs only what the configuration names (spawner.Policy) and re-reads the
                  root-only authkeys for the daemon on reload.  Falls back to `caps` (logged)
                  if the account does not exist or a configured script is not executable
                  for it.
  off             no helper, full root (core dumps still off).
In both helper modes the helper removes the pid file and the control socket at exit, since
their directories may no longer be writable for the daemon.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import gc
import grp
import itertools
import logging
import os
import pwd
import resource
import socket
import stat
import sys
from dataclasses import dataclass, field
from typing import Any

from appliance import caps
from appliance.config.haresources import resolve_script
from appliance.config.sysconfig import SYSCONFIG
from appliance.rsc import scripts
from appliance.rsc.scripts import ScriptResult, child_env
from appliance.spawner import KILL_GRACE, Policy, decode, encode, exec_argv, run_helper

log = logging.getLogger("heartbeat")

ENV = "HBA_PRIVSEP"
DEFAULT_USER = "hacluster"
DEFAULT_GROUP = "haclient"
SOCKBUF = 1 << 20            # replies carry up to 64 KiB of script output in one datagram


@dataclass
class Status:
    mode: str                        # what runs: "caps", "user" or "off"
    helper_pid: int | None = None
    uid: int = 0
    keep: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def setting(sysconfig: str = SYSCONFIG) -> str:
    value = os.environ.get(ENV)
    if value is None:
        from appliance.config.sysconfig import load_sysconfig

        value = load_sysconfig(sysconfig).get(ENV)
    return (value or "caps").strip()


def parse_setting(text: str) -> tuple[str, str | None]:
    """(mode, user name); ValueError for anything else."""
    low = text.lower()
    if low in ("", "caps", "on", "yes", "true", "1"):
        return "caps", None
    if low in ("off", "no", "false", "0"):
        return "off", None
    if low == "user":
        return "user", DEFAULT_USER
    if low.startswith("user:") and len(text) > 5:
        return "user", text[5:]
    raise ValueError(f"{ENV}={text!r}: expected caps, user, user:NAME or off")


def keep_caps(cfg: Any) -> list[str]:
    keep = ["net_admin", "net_raw", "kill"]
    if getattr(cfg, "realtime", False):
        keep.append("ipc_lock")
    return keep


def build_policy(d: Any, strict: bool) -> Policy:
    """What the helper may run: the configuration as loaded at start (as root)."""
    settings = d.executor.settings
    resources = frozenset(
        (r.name, tuple(r.args)) for g in d.groups for r in g.resources if r.ip is None
    )
    # Hooks and health checks come from the extension file (appliance.addons), if any.
    ext = getattr(getattr(d, "addons", None), "ext", None)
    hooks = frozenset(str(h) for h in (getattr(ext, "notify", None) or ()))
    monitors = [getattr(ext, "monitor", None), *(getattr(ext, "monitor_groups", None) or {}).values()]
    commands = frozenset(("/bin/sh", "-c", m.check) for m in monitors if getattr(m, "check", ""))
    stonith = getattr(d, "stonith", None)       # the STONITH device's reset commands, if any
    if stonith is not None:
        commands |= stonith.commands(list(d.cfg.nodes))
    return Policy(
        strict=strict, script_dirs=tuple(settings.script_dirs), resources=resources, hooks=hooks,
        commands=commands, base_env=child_env(settings.env), authkeys=d.paths.authkeys,
        pidfile=d.paths.pidfile, control_socket=d.paths.control_socket,
    )


def lockdown(d: Any) -> Status:
    """Called once by Daemon.run after its privileged set-up, in the main thread, inside the
    running event loop.  Never raises: what cannot be done is logged and the daemon runs on."""
    status = Status("off")
    try:
        caps.set_dumpable(False)
    except OSError as exc:
        status.notes.append(f"core dumps stay possible ({exc.strerror})")
    try:
        mode, user = parse_setting(setting())
    except ValueError as exc:
        log.error("%s; using caps", exc)
        mode, user = "caps", None
    if mode == "off" or os.geteuid() != 0:
        why = f"{ENV}=off" if mode == "off" else "not started as root"
        log.warning("Privilege separation off (%s): resource scripts run as children of the daemon", why)
        return status
    ids = _account(user, status.notes) if mode == "user" else None
    if ids is not None:
        blocked = _unreachable_scripts(d, ids)
        # A onefile program runs from a 0700 directory its root launcher unpacked: later
        # (lazy) imports would fail for another user. The RPM's onedir form has no such limit.
        bundle = getattr(sys, "_MEIPASS", None)
        if bundle and not _may(bundle, ids[0], ids[2]):
            blocked.append(f"the unpacked program in {bundle}")
        if blocked:
            status.notes.append(f"{', '.join(blocked)} not executable for {user}: keeping uid 0")
            ids = None
    policy = build_policy(d, strict=ids is not None)
    try:
        client = HelperClient.start(policy)
    except (OSError, RuntimeError) as exc:
        log.error("Privilege separation off (%s): resource scripts run as children of the daemon", exc)
        return status
    status.helper_pid = client.pid
    status.mode = "user" if ids is not None else "caps"
    soft_hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, soft_hard[1]))
    status.keep = keep_caps(d.cfg)
    _drop(caps.mask(status.keep), ids, status.notes)
    status.uid = os.getuid()
    loop = asyncio.get_running_loop()
    client.attach(loop)
    scripts.set_runner(client.run)
    # The pid file and control socket may sit in directories the daemon can no longer write
    # (/var/run/heartbeat is hacluster's in the RPM): the helper removes them at exit.
    atexit.register(client.cleanup, os.getpid())
    if ids is not None:
        from appliance.config import authkeys

        authkeys.set_opener(client.open_authkeys)
    _renew_threads(loop, status.notes)
    _report(status)
    loop.call_later(2.0, _check_threads, caps.mask(status.keep))
    return status


def _exec_helper(chan: socket.socket, sync: socket.socket, policy: Policy) -> None:
    """In the forked child: run the program afresh as the helper; if that fails, serve from
    this copy of the daemon (as it was before the exec existed; it reads the policy message
    itself, so the synchronous channel starts clean either way)."""
    try:
        os.set_inheritable(chan.fileno(), True)
        os.set_inheritable(sync.fileno(), True)
        argv = exec_argv(chan.fileno(), sync.fileno())
        os.execv(argv[0], argv)
    except BaseException:  # noqa: BLE001 - anything: fall back, never return into the daemon
        try:
            sync.recv(1 << 20)
        except OSError:
            pass
    run_helper(chan, sync, policy)


# ---------------------------------------------------------------------- dropping


def _account(user: str | None, notes: list[str]) -> tuple[int, int, list[int]] | None:
    try:
        pw = pwd.getpwnam(user or DEFAULT_USER)
    except KeyError:
        notes.append(f"no account {user}: keeping uid 0")
        return None
    try:
        gid = grp.getgrnam(DEFAULT_GROUP).gr_gid
    except KeyError:
        gid = pw.pw_gid
    return pw.pw_uid, gid, sorted({gid, pw.pw_gid})


def _unreachable_scripts(d: Any, ids: tuple[int, int, list[int]]) -> list[str]:
    """Configured scripts the daemon, once unprivileged, could not find (resolve_script
    checks that a script is executable, with the daemon's own permissions)."""
    uid, _gid, gids = ids
    dirs = tuple(d.executor.settings.script_dirs)
    out = []
    for name in sorted({r.name for g in d.groups for r in g.resources if r.ip is None}):
        path = resolve_script(name, dirs)
        if path is not None and not all(_may(p, uid, gids) for p in (os.path.dirname(path), path)):
            out.append(path)
    return out


def _may(path: str, uid: int, gids: list[int]) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _drop(keep: int, ids: tuple[int, int, list[int]] | None, notes: list[str]) -> None:
    """Main thread only (credentials are per thread); order matters: the bounding set and
    securebits need CAP_SETPCAP, the uid change CAP_SETUID, so capset comes last."""
    try:
        caps.drop_bounding(keep)
    except OSError as exc:
        notes.append(f"bounding set unchanged ({exc.strerror})")
    bits = caps.SECBIT_NOROOT | caps.SECBIT_NOROOT_LOCKED
    if ids is not None:
        bits |= caps.SECBIT_KEEP_CAPS     # keep the permitted set through the uid change
    try:
        caps.set_securebits(bits | caps.SECBIT_NO_CAP_AMBIENT_RAISE | caps.SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)
    except OSError:
        try:                               # kernels before 4.3 have no ambient set
            caps.set_securebits(bits)
        except OSError as exc:
            notes.append(f"securebits unchanged ({exc.strerror})")
    if ids is not None:
        uid, gid, gids = ids
        os.setgroups(gids)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)        # glibc applies it to every thread
    try:
        caps.capset(keep, keep, 0)
    except OSError as exc:
        notes.append(f"capabilities unchanged ({exc.strerror})")
    try:
        caps.clear_ambient()
    except OSError:
        pass
    try:
        caps.set_no_new_privs()
    except OSError:
        notes.append("no_new_privs unavailable (kernel before 3.5)")
    try:
        caps.set_dumpable(False)           # a uid change may have reset it
    except OSError:
        pass


def _renew_threads(loop: asyncio.AbstractEventLoop, notes: list[str]) -> None:
    """Threads started before the drop still hold the old credentials: the log writer and any
    executor thread are replaced by new ones, created by this (now reduced) thread."""
    from appliance import logsetup

    listener = getattr(logsetup, "_listener", None)
    if listener is not None and getattr(listener, "_thread", None) is not None:
        listener.stop()    # flushes what is queued
        listener.start()
    old = getattr(loop, "_default_executor", None)
    if old is not None:
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(thread_name_prefix="asyncio"))
        old.shutdown(wait=False)


def _report(status: Status) -> None:
    who = f"uid {status.uid}"
    try:
        who = f"user {pwd.getpwuid(status.uid).pw_name}"
    except KeyError:
        pass
    log.info(
        "Privilege separation (%s): resource scripts run as root by helper [%d]; the daemon runs"
        " as %s with %s, no new privileges, no core dumps",
        status.mode, status.helper_pid or 0, who, ",".join("cap_" + c for c in status.keep),
    )
    for note in status.notes:
        log.warning("Privilege separation: %s", note)


def _check_threads(keep: int) -> None:
    for tid, (eff, prm) in caps.thread_caps().items():
        extra = (eff | prm) & ~keep
        if extra:
            log.warning("Privilege separation: thread %d still holds %s", tid, ",".join(caps.names(extra)))


# ---------------------------------------------------------------------- the helper, seen from the daemon


class HelperClient:
    """The daemon's side of appliance.spawner: runs scripts there, asynchronously."""

    def __init__(self, pid: int, chan: socket.socket, sync: socket.socket, authkeys: str) -> None:
        self.pid = pid
        self.authkeys = authkeys
        self.chan = chan
        self.sync = sync
        self.pending: dict[int, asyncio.Future[ScriptResult]] = {}
        self.ids = itertools.count(1)
        self.gone = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def start(cls, policy: Policy) -> HelperClient:
        chan, chan_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sync, sync_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (chan, chan_peer):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKBUF)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKBUF)
        # Objects that exist now are never collected by the daemon afterwards (gc.freeze): fewer
        # objects for each collection, and, should the exec fail, the forked helper's copy
        # stays shared instead of being rewritten by the daemon's collector.
        gc.freeze()
        # The policy goes first: the exec'd helper reads it before anything else.
        sync.send(encode(policy.to_json()))
        pid = os.fork()
        if pid == 0:
            _exec_helper(chan_peer, sync_peer, policy)   # never returns
        chan_peer.close()
        sync_peer.close()
        client = cls(pid, chan, sync, policy.authkeys)
        try:
            # The helper says when it is ready (renamed, descriptors closed): the daemon gives
            # up its privileges only once something privileged is there to run the scripts.
            sync.settimeout(10.0)
            if decode(sync.recv(4096))[0].get("ready") is not True:
                raise OSError(5, "unexpected first message")
        except (OSError, ValueError) as exc:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
            raise RuntimeError(f"the privileged helper did not start: {exc}") from None
        return client

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.chan.setblocking(False)
        loop.add_reader(self.chan.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data = self.chan.recv(SOCKBUF)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                return self._lost()
            try:
                head, payload = decode(data)
                rid = int(head["id"])
            except (ValueError, KeyError, TypeError):
                continue
            fut = self.pending.pop(rid, None)
            if fut is not None and not fut.done():
                text = (head.get("error") or "") + payload.decode("utf-8", "replace")
                fut.set_result(ScriptResult(head.get("rc"), text))

    def _lost(self) -> None:
        if self.gone:
            return
        self.gone = True
        if self._loop is not None:
            self._loop.remove_reader(self.chan.fileno())
        log.critical("The privileged helper [%d] exited: resource scripts can no longer run", self.pid)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_result(ScriptResult(127, "the privileged helper is gone"))
        self.pending.clear()
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass

    async def run(self, argv: list[str], env: dict[str, str], timeout: float) -> ScriptResult:
        """scripts.run_script's contract: never raises for the script's own failures."""
        if self.gone or self._loop is None:
            return ScriptResult(127, "the privileged helper is gone")
        rid = next(self.ids)
        fut: asyncio.Future[ScriptResult] = self._loop.create_future()
        self.pending[rid] = fut
        try:
            await self._loop.sock_sendall(self.chan, encode({"id": rid, "argv": argv, "env": env,
                                                              "timeout": timeout}))
            return await asyncio.wait_for(fut, timeout + KILL_GRACE + 10.0)
        except asyncio.TimeoutError:
            return ScriptResult(None, "the privileged helper did not answer")
        except OSError:
            self._lost()
            return ScriptResult(127, "the privileged helper is gone")
        except asyncio.CancelledError:
            if not self.gone:
                try:
                    self.chan.send(encode({"id": rid, "cancel": True}))
                except OSError:
                    pass
            raise
        finally:
            self.pending.pop(rid, None)

    def _ask(self, request: dict[str, Any], timeout: float = 5.0) -> tuple[dict[str, Any], list[int]]:
        self.sync.settimeout(timeout)
        self.sync.send(encode(request))
        msg, fds, _flags, _addr = socket.recv_fds(self.sync, 65536, 1)
        if not msg:
            raise OSError(5, "the privileged helper is gone")
        return decode(msg)[0], fds

    def open_authkeys(self, path: str) -> int:
        """authkeys.set_opener hook: the root helper opens the (mode 600) keyfile for us."""
        if path != self.authkeys:     # the helper opens only the configured one
            return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        head, fds = self._ask({"op": "open_authkeys"})
        if fds:
            return fds[0]
        err = int(head.get("errno") or 5)
        raise OSError(err, os.strerror(err))

    def cleanup(self, pid: int) -> None:
        """At exit (atexit): the helper removes what an unprivileged daemon may not."""
        try:
            self._ask({"op": "cleanup", "pid": pid}, timeout=2.0)
        except (OSError, ValueError):
            pass
