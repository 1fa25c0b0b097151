"""The privileged helper `hba-privsep`: a root child of the daemon that runs its scripts.

appliance.privsep starts it before the daemon gives up its privileges: a fork that executes
the program afresh (`heartbeat --privsep-helper CHAN SYNC`, see exec_argv), so the helper holds
a bare interpreter and this module instead of a copy of the whole daemon (~13 MB resident
instead of ~23); where that exec fails, the forked copy serves as it is.  From then on resource
scripts, notification hooks and health checks start here, as full root with every capability,
exactly as they did as children of the daemon.  It never reads the network.  It exits when the
daemon's end of the socket closes (the daemon exited, however it exited); scripts still
running then carry on, as they did when the daemon itself was killed.

Protocol, over an AF_UNIX SOCK_SEQPACKET socketpair (one datagram per message): a JSON header,
then NUL and a binary payload where there is one.

    daemon -> helper   {"id": N, "argv": [...], "env": {...}, "timeout": seconds}
                       {"id": N, "cancel": true}            (the daemon's task was cancelled)
    helper -> daemon   {"id": N, "rc": int | null, "error": text} NUL output (<= 64 KiB)

and a second, synchronous socketpair for the file operations an unprivileged daemon cannot do:

    {"op": "open_authkeys"}      -> {"ok": true} with the open descriptor (SCM_RIGHTS),
                                    or {"errno": E}
    {"op": "cleanup", "pid": P}  -> {"ok": true}: remove the pid file if it names P, and the
                                    control socket (the daemon is exiting)

rc null means the script timed out and its process group was killed, as in run_script.  With
a strict :class:`Policy` (the daemon runs as an unprivileged user) the helper runs only what
the configuration names, so the daemon's socket is not a "run anything as root" service.
"""

from __future__ import annotations

import ctypes
import errno
import gc
import json
import os
import re
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import time

TYPE_CHECKING = False       # typing is not imported at run time: ~0.5 MB in the helper
if TYPE_CHECKING:
    from typing import IO, Any

TITLE = "hba-privsep"
EXEC_FLAG = "--privsep-helper"  # argv[1] of the exec'd helper, then the two descriptors
MAX_OUTPUT = 64 * 1024       # of a script's output, as appliance.rsc.scripts keeps it (not
                             # imported from there: that would bring asyncio into the helper)
VERBS = ("start", "stop", "status")
KILL_GRACE = 5.0             # after SIGKILL of a timed-out script, wait this long for its exit
REFUSED_RC = 126             # like a shell's "cannot execute"
_EXTRA_ENV = re.compile(r"HA_NOTIFY_[A-Z0-9_]+|HA_GROUP")   # what hooks and checks add


class Policy:
    """What the helper may run for the daemon; fixed when the daemon starts (as root).
    (A plain class, like _Job: dataclasses would cost the helper ~1.3 MB resident.)"""

    __slots__ = ("strict", "script_dirs", "resources", "hooks", "commands", "base_env",
                 "authkeys", "pidfile", "control_socket")

    def __init__(
        self, strict: bool, script_dirs: tuple[str, ...] = (),
        resources: frozenset[tuple[str, tuple[str, ...]]] = frozenset(),   # (script, args)
        hooks: frozenset[str] = frozenset(),            # argv[0], any arguments (notify hooks)
        commands: frozenset[tuple[str, ...]] = frozenset(),   # exact argv (health checks)
        base_env: dict[str, str] | None = None, authkeys: str = "/etc/ha.d/authkeys",
        pidfile: str = "/var/run/heartbeat.pid",
        control_socket: str = "/var/run/heartbeat/hba.sock",
    ) -> None:
        self.strict = strict
        self.script_dirs = script_dirs
        self.resources = resources
        self.hooks = hooks
        self.commands = commands
        self.base_env = dict(base_env or {})
        self.authkeys = authkeys
        self.pidfile = pidfile
        self.control_socket = control_socket

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def refuse(self, argv: list[str], env: dict[str, str]) -> str | None:
        """None if allowed, else why not.  Permissive unless strict: a uid-0 daemon could
        plant a script in resource.d anyway, so a check would only pretend."""
        if not self.strict:
            return None
        for key, value in env.items():
            if key in self.base_env:
                if self.base_env[key] != value:
                    return f"environment variable {key} differs from the configuration"
            elif not _EXTRA_ENV.fullmatch(key):
                return f"environment variable {key} is not allowed"
        if tuple(argv) in self.commands or argv[0] in self.hooks:
            return None
        directory, name = os.path.split(argv[0])
        if (
            directory in self.script_dirs
            and len(argv) >= 2
            and argv[-1] in VERBS
            and (name, tuple(argv[1:-1])) in self.resources
        ):
            return None
        return f"{argv[0]} with these arguments is no configured resource script, hook or check"

    def to_json(self) -> dict[str, Any]:
        return {
            "strict": self.strict, "script_dirs": list(self.script_dirs),
            "resources": sorted([name, list(args)] for name, args in self.resources),
            "hooks": sorted(self.hooks), "commands": sorted(list(c) for c in self.commands),
            "base_env": dict(self.base_env), "authkeys": self.authkeys,
            "pidfile": self.pidfile, "control_socket": self.control_socket,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Policy:
        return cls(
            strict=bool(obj["strict"]), script_dirs=tuple(obj["script_dirs"]),
            resources=frozenset((str(n), tuple(a)) for n, a in obj["resources"]),
            hooks=frozenset(obj["hooks"]), commands=frozenset(tuple(c) for c in obj["commands"]),
            base_env=dict(obj["base_env"]), authkeys=obj["authkeys"], pidfile=obj["pidfile"],
            control_socket=obj["control_socket"],
        )


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    return json.dumps(header).encode() + b"\0" + payload


def decode(data: bytes) -> tuple[dict[str, Any], bytes]:
    head, _, payload = data.partition(b"\0")
    obj = json.loads(head)
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    return obj, payload


class _Job:
    __slots__ = ("rid", "argv0", "proc", "out", "deadline", "killed_at")

    def __init__(self, rid: int, argv0: str, proc: subprocess.Popen, out: IO[bytes],
                 deadline: float) -> None:
        self.rid = rid
        self.argv0 = argv0
        self.proc = proc
        self.out = out
        self.deadline = deadline
        self.killed_at: float | None = None


class Helper:
    def __init__(self, chan: socket.socket, sync: socket.socket, policy: Policy) -> None:
        self.chan = chan
        self.sync = sync
        self.policy = policy
        self.jobs: dict[int, _Job] = {}
        self.orphans: list[subprocess.Popen] = []   # answered (timed out) but not yet reaped
        self.core_limit = resource.getrlimit(resource.RLIMIT_CORE)

    # ------------------------------------------------------------------ loop
    def serve(self) -> None:
        """Until the daemon's end closes."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, _ignore)
        while True:
            now = time.monotonic()
            ready, _, _ = select.select([self.chan, self.sync, wake_r], [], [], self._wait(now))
            if wake_r in ready:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            for sock, handle in ((self.sync, self._file_op), (self.chan, self._request)):
                if sock in ready:
                    data = sock.recv(1 << 20)
                    if not data:
                        return
                    try:
                        handle(data)
                    except Exception:  # noqa: BLE001 - one bad request must not end the helper
                        pass
            self._reap(time.monotonic())

    def _wait(self, now: float) -> float | None:
        due = [j.deadline if j.killed_at is None else j.killed_at + KILL_GRACE
               for j in self.jobs.values()]
        if self.orphans:
            due.append(now + 1.0)
        return max(0.0, min(due) - now) if due else None

    # ------------------------------------------------------------------ scripts
    def _request(self, data: bytes) -> None:
        try:
            head, _ = decode(data)
            rid = int(head["id"])
        except (ValueError, KeyError, TypeError):
            return
        if head.get("cancel"):
            job = self.jobs.get(rid)
            if job is not None and job.killed_at is None:
                _kill_group(job.proc.pid)
                job.killed_at = time.monotonic()
            return
        argv, env, timeout = head.get("argv"), head.get("env"), head.get("timeout")
        if (
            not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv)
            or not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values())
            or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            return self._answer(rid, 127, "malformed request")
        why = self.policy.refuse(argv, env)
        if why is not None:
            return self._answer(rid, REFUSED_RC, f"refused by privilege separation: {why}")
        out = _output_file()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, close_fds=True, preexec_fn=self._child_setup,
            )
        except Exception as exc:  # noqa: BLE001 - OSError, or ValueError for a NUL in argv/env
            out.close()
            return self._answer(rid, 127, f"cannot run {argv[0]}: {getattr(exc, 'strerror', None) or exc}")
        self.jobs[rid] = _Job(rid, argv[0], proc, out, time.monotonic() + float(timeout))

    def _child_setup(self) -> None:
        # The helper runs without core dumps (it holds the keys); scripts get the limit back.
        resource.setrlimit(resource.RLIMIT_CORE, self.core_limit)

    def _reap(self, now: float) -> None:
        self.orphans = [p for p in self.orphans if p.poll() is None]
        for job in list(self.jobs.values()):
            if job.proc.poll() is not None:
                self._finish(job, None if job.killed_at is not None else job.proc.returncode)
            elif job.killed_at is None and now >= job.deadline:
                _kill_group(job.proc.pid)
                job.killed_at = now
            elif job.killed_at is not None and now - job.killed_at >= KILL_GRACE:
                self.orphans.append(job.proc)
                self._finish(job, None)

    def _finish(self, job: _Job, rc: int | None) -> None:
        del self.jobs[job.rid]
        job.out.seek(0)
        output = job.out.read(MAX_OUTPUT)
        job.out.close()
        self._answer(job.rid, rc, "", output)

    def _answer(self, rid: int, rc: int | None, error: str, output: bytes = b"") -> None:
        try:
            self.chan.send(encode({"id": rid, "rc": rc, "error": error}, output))
        except OSError:
            pass   # the daemon is gone; the next recv sees EOF

    # ------------------------------------------------------------------ files
    def _file_op(self, data: bytes) -> None:
        try:
            head, _ = decode(data)
        except ValueError:
            head = {}
        op = head.get("op")
        if op == "open_authkeys":
            try:
                fd = os.open(self.policy.authkeys,
                             os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
            except OSError as exc:
                self.sync.send(encode({"errno": exc.errno or errno.EIO}))
                return
            try:
                socket.send_fds(self.sync, [encode({"ok": True})], [fd])
            finally:
                os.close(fd)
        elif op == "cleanup":
            self._cleanup(head.get("pid"))
            self.sync.send(encode({"ok": True}))
        else:
            self.sync.send(encode({"errno": errno.EINVAL}))

    def _cleanup(self, pid: object) -> None:
        try:
            with open(self.policy.pidfile) as f:
                if int(f.read().strip() or 0) == pid:
                    os.unlink(self.policy.pidfile)
        except (OSError, ValueError):
            pass
        try:
            if stat.S_ISSOCK(os.lstat(self.policy.control_socket).st_mode):
                os.unlink(self.policy.control_socket)
        except OSError:
            pass


def _output_file() -> IO[bytes]:
    """An unnamed file for a script's output (what tempfile.TemporaryFile does, without the
    ~1 MB its imports cost: shutil, random, bz2, lzma)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    for _ in range(100):
        path = os.path.join(base, f".hba-out-{os.getpid()}-{os.urandom(6).hex()}")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        os.unlink(path)
        return os.fdopen(fd, "w+b")
    raise FileExistsError(errno.EEXIST, "no unused name for a script's output file", base)


def _ignore(signum: int, frame: object) -> None:
    pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def exec_argv(chan_fd: int, sync_fd: int) -> list[str]:
    """How the helper runs this program again: the frozen binary itself, or this interpreter
    with the package (a source install)."""
    if getattr(sys, "frozen", False):
        head = [sys.executable]
    else:
        # -S: no site (~3 MB resident, and nothing from site-packages is needed); the package
        # is found from where this module was loaded.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        head = [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {root!r}); "
                "from appliance.cli.main import main; sys.exit(main())"]
    return [*head, EXEC_FLAG, str(chan_fd), str(sync_fd)]


def exec_main(args: list[str]) -> int:
    """Entry of the exec'd helper (`heartbeat --privsep-helper CHAN SYNC`): the daemon sent
    the policy on SYNC before it forked; nothing else is inherited (descriptors are
    close-on-exec but these two).  Never returns when started by the daemon."""
    try:
        chan_fd, sync_fd = (int(a) for a in args)
        chan = socket.socket(fileno=chan_fd)
        sync = socket.socket(fileno=sync_fd)
        if chan.type != socket.SOCK_SEQPACKET or sync.type != socket.SOCK_SEQPACKET:
            raise ValueError("not the daemon's sockets")
        sync.settimeout(10.0)
        policy = Policy.from_json(decode(sync.recv(1 << 20))[0])
        sync.settimeout(None)
    except (ValueError, OSError, KeyError, TypeError):
        sys.stderr.write(f"{TITLE}: started by the heartbeat daemon only\n")
        return 2
    from appliance.caps import set_dumpable

    set_dumpable(False)     # the policy may carry ha.cf's env secrets
    run_helper(chan, sync, policy)
    return 1    # not reached


def run_helper(chan: socket.socket, sync: socket.socket, policy: Policy) -> None:
    """Body of the forked child; never returns (os._exit), whatever happens."""
    status = 0
    try:
        _prepare(keep=(chan.fileno(), sync.fileno()))
        sync.send(encode({"ready": True}))
        Helper(chan, sync, policy).serve()
    except BaseException:  # noqa: BLE001 - no logging here: the log thread lives in the daemon
        status = 1
    finally:
        os._exit(status)


def _prepare(keep: tuple[int, ...]) -> None:
    # Objects inherited from the daemon stay shared copy-on-write: the collector must not
    # touch them (gc.freeze), and nothing of the daemon (sockets, log files, the watchdog)
    # stays open here.
    gc.freeze()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        # Handled, not ignored: a `kill` of the whole group (e.g. systemd's control-group stop
        # while the daemon still stops its groups) must not take the helper away from the
        # daemon, and handlers (unlike SIG_IGN) are reset when a script is executed.
        signal.signal(sig, _ignore)
    signal.set_wakeup_fd(-1)
    for fd in _open_fds():
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    _set_title(TITLE)


def _open_fds() -> list[int]:
    try:
        return [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return list(range(3, 1024))


def _set_title(title: str) -> None:
    """Rename the process (`ps`, /proc/PID/cmdline, comm) so it is not another `heartbeat`:
    tools and tests that count heartbeat processes see the daemon only.  Overwrites the
    argument area in place, as setproctitle does; skipped where the kernel does not say where
    it is (before 3.5) or it does not hold what /proc/self/cmdline shows."""
    from appliance.caps import set_comm

    set_comm(title)
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])   # arg_start, arg_end (stat fields 48, 49)
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, IndexError, ValueError):
        return
    size = end - start
    if not 0 < size < 1 << 20 or ctypes.string_at(start, size) != cmdline:
        return
    raw = title.encode()[: size - 1]
    ctypes.memset(start, 0, size)
    ctypes.memmove(start, raw, len(raw))
