"""The `heartbeat` command: start (daemonized or -f), -k stop, -r reload, -s status, -v version;
`heartbeat export --pcs|--crm|--cib` prints the equivalent Pacemaker configuration.

Exit codes follow 3.0.6: 0 success, 1 not running (-s), 6 configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from appliance import HEARTBEAT_COMPAT_VERSION, __version__
from appliance.config.sysconfig import SYSCONFIG
from appliance.errors import EXIT_CONFIG, ConfigError
from appliance.paths import Paths

STOP_WAIT = 600.0      # -k waits this long at most for resources to be released


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="heartbeat", add_help=True)
    p.add_argument("-f", action="store_true", help="run in the foreground")
    p.add_argument("-k", action="store_true", help="stop the running daemon")
    p.add_argument("-r", action="store_true", help="reload the configuration (SIGHUP)")
    p.add_argument("-s", action="store_true", help="report whether heartbeat is running")
    p.add_argument("-d", action="count", default=0, help="increase debug level")
    p.add_argument("-l", action="store_true", help="accepted for compatibility")
    p.add_argument("-M", action="store_true", help="accepted for compatibility")
    p.add_argument("-t", "--check", action="store_true", help="check the configuration and exit")
    p.add_argument("-v", "-V", "--version", action="store_true", dest="version")
    return p


def run(args: list[str]) -> int:
    if args and args[0] == "export":
        return export(args[1:])
    opts = _parser().parse_args(args)
    paths = Paths.from_env(sysconfig=SYSCONFIG)
    if opts.version:
        print(f"{HEARTBEAT_COMPAT_VERSION} (hb-appliance {__version__})")
        return 0
    if opts.k:
        return stop(paths)
    if opts.s:
        return status(paths)
    if opts.r:
        pid = running_pid(paths)
        if pid is None:
            print("heartbeat is stopped. No process", file=sys.stderr)
            return 1
        os.kill(pid, signal.SIGHUP)
        _log_signalled(paths, pid)
        return 0
    loaded = load_or_report(paths, "heartbeat not started")
    if loaded is None:
        return EXIT_CONFIG
    cfg, keys, groups, ext = loaded
    if opts.check:
        print_effective(cfg, groups, ext)
        return 0
    pid = running_pid(paths)
    if pid is not None:
        print(f"heartbeat: already running [pid {pid}].", file=sys.stderr)
        return 0
    if not opts.f and _frozen_onefile():
        return _respawn_detached(args, paths)
    if not opts.f and not _daemonize(paths):
        return 0            # the parent: the child carries on
    return _serve(cfg, keys, groups, ext, paths, opts.d, foreground=opts.f)


def _log_signalled(paths: Paths, pid: int) -> None:
    """3.0.6's `heartbeat -r` logs this line itself, into the configured log files (tools such
    as BasicSanityCheck count it there)."""
    from appliance import logsetup
    from appliance.config.hacf import load_hacf

    try:
        cfg = load_hacf(paths.hacf)
    except ConfigError:
        return          # the daemon refuses the reload and says why in its own log
    logsetup.setup(cfg.local_node, cfg.logfile, cfg.debugfile, cfg.logfacility, cfg.debug)
    try:
        logging.getLogger(logsetup.LOGGER).info("Signalling heartbeat pid %d to reread config files", pid)
    finally:
        logsetup.stop()


def load_or_report(paths: Paths, consequence: str):
    """All three files (and the extension file) loaded, or every error printed with file:line
    (`ERROR: ...`, as 3.0.6 prints them) and None; warnings printed either way."""
    from appliance.cli.configload import load_all

    try:
        loaded = load_all(paths)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"ERROR: {line}", file=sys.stderr)
        print(f"ERROR: Configuration error, {consequence}.", file=sys.stderr)
        return None
    for w in loaded[0].warnings:
        print(f"WARN: {w}", file=sys.stderr)
    return loaded


def print_effective(cfg, groups, ext) -> None:
    """The configuration as the daemon will run it, derived values included (-t)."""
    from appliance.core.ownership import takeover_order

    ms = lambda v: f"{v} ms"  # noqa: E731
    print(f"# configuration OK for node {cfg.local_node}")
    print(f"nodes          {' '.join(cfg.nodes)}")
    for m in cfg.media:
        where = m.group or m.peer or "broadcast"
        print(f"medium         {m.kind} {m.interface} {where} port {m.port}")
    for name in ("keepalive", "deadtime", "warntime", "initdead", "deadping"):
        print(f"{name:<14} {ms(getattr(cfg, name + '_ms'))}")
    print(f"auto_failback  {cfg.auto_failback}")
    print(f"watchdog       {cfg.watchdog or 'none'}")
    dev = cfg.stonith          # its parameters may hold a password: type and source only
    where = f"parameters from {dev.config_file}" if dev and dev.config_file else "parameters from ha.cf"
    print(f"stonith        {f'{dev.type} ({dev.directive}, {where})' if dev else 'none'}")
    print(f"logging        file={cfg.logfile} debug={cfg.debugfile} facility={cfg.logfacility}")
    print(f"scripts        start {ext.start_timeout}s stop {ext.stop_timeout}s status {ext.status_timeout}s")
    for g in groups:
        order = " ".join(takeover_order(cfg.nodes, g.home))
        rsc = " ".join(r.text for r in g.resources)
        print(f"group          {g.key}: {rsc}  (takeover order: {order})")
        m = ext.monitor_for(g.key)
        if m.enabled:
            check = f", check {m.check!r}" if m.check else ""
            print(f"  monitor      every {m.interval}s timeout {m.timeout}s fall {m.fall} rise {m.rise} "
                  f"restarts {m.restarts} within {m.failure_timeout}s{check}")
    refresh = f"refresh every {ext.refresh_interval}s" if ext.refresh_interval else "no refresh"
    print(f"announce       {ext.arp_count} ARP pairs {ext.arp_interval}s apart, {refresh}, "
          f"max {ext.max_rate or 'unlimited'} packets/s per interface")
    print(f"hooks          {', '.join(ext.notify) or 'none'}")
    listen = ext.metrics_listen and f"http://{ext.metrics_listen}/metrics"
    metrics = [x for x in (ext.metrics_textfile, listen) if x]
    print(f"metrics        {', '.join(metrics) or 'none'}")


def _serve(cfg, keys, groups, ext, paths: Paths, debug: int, foreground: bool) -> int:
    import asyncio

    from appliance import logsetup
    from appliance.daemon import Daemon
    from appliance.host import trim_memory
    from appliance.net.rtnl import lean_pyroute2

    trim_memory()
    lean_pyroute2()
    logsetup.setup(
        cfg.local_node, cfg.logfile, cfg.debugfile, cfg.logfacility, max(debug, cfg.debug),
        stderr=foreground and not (cfg.logfile or cfg.debugfile or cfg.logfacility),
    )
    _write_pidfile(paths)
    try:
        daemon = Daemon(cfg, keys, groups, paths, ext)
        return asyncio.run(daemon.run())
    except Exception:
        logging.getLogger(logsetup.LOGGER).exception("heartbeat: fatal internal error")
        return 1
    finally:
        _remove_pidfile(paths)
        logsetup.stop()


def _frozen_onefile() -> bool:
    """A PyInstaller onefile program: its launcher deletes the unpacked bundle when the process
    it started exits, so a double-forked daemon would lose its own code."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or bundle is None:
        return False
    return os.path.dirname(bundle) != os.path.dirname(os.path.realpath(sys.executable))


def _respawn_detached(args: list[str], paths: Paths) -> int:
    """Start a fresh `heartbeat -f` instance (with its own launcher) in a new session instead."""
    import subprocess

    env = dict(os.environ, PYINSTALLER_RESET_ENVIRONMENT="1")
    with open(os.devnull, "r+b") as null:
        child = subprocess.Popen(
            ["heartbeat", "-f", *args], executable=sys.executable, stdin=null, stdout=null,
            stderr=null, start_new_session=True, env=env, close_fds=True,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if running_pid(paths) is not None:
            return 0
        if child.poll() is not None:
            print(f"ERROR: heartbeat exited with status {child.returncode} while starting", file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("ERROR: heartbeat did not write its pid file within 30 s", file=sys.stderr)
    return 1


def _daemonize(paths: Paths) -> bool:
    """Classic double fork. Returns True in the daemon, False in the original process."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        # Wait (bounded) until the daemon has written its pid file, so `service start` is honest.
        os.set_blocking(r, True)
        try:
            os.read(r, 1)
        finally:
            os.close(r)
        os.waitpid(pid, 0)
        return False
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    _write_pidfile(paths)
    os.write(w, b"1")
    os.close(w)
    return True


def _write_pidfile(paths: Paths) -> None:
    os.makedirs(os.path.dirname(paths.pidfile), exist_ok=True)
    with open(paths.pidfile, "w") as f:
        f.write(f"{os.getpid()}\n")


def _remove_pidfile(paths: Paths) -> None:
    try:
        with open(paths.pidfile) as f:
            if int(f.read().strip() or 0) != os.getpid():
                return
        os.unlink(paths.pidfile)
    except (OSError, ValueError):
        pass


def running_pid(paths: Paths) -> int | None:
    """The daemon's pid if the pid file names a live heartbeat of OUR namespaces.

    Several nodes can share one pid namespace (a lab, containers): a stale pid file must never
    make `-k` signal some other node's process.
    """
    try:
        with open(paths.pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid():
        return None
    try:
        for ns in ("net", "mnt"):
            if os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"):
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return None
    return pid if b"heartbeat" in cmd or b"appliance" in cmd else None


def stop(paths: Paths) -> int:
    pid = running_pid(paths)
    if pid is None:
        print("INFO: Heartbeat already stopped.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return 0
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return 0
        except OSError:
            return 0
        time.sleep(0.05)
    print(f"ERROR: heartbeat pid {pid} did not stop within {STOP_WAIT:.0f} s", file=sys.stderr)
    return 1


def status(paths: Paths) -> int:
    pid = running_pid(paths)
    if pid is None:
        print("heartbeat is stopped. No process")
        return 1
    from appliance.config.hacf import local_node_name

    print(f"heartbeat OK [pid {pid} et al] is running on {os.uname().nodename} "
          f"[{local_node_name(paths.etc)}]...")
    return 0


def export(args: list[str]) -> int:
    """`heartbeat export --pcs|--crm|--cib`: read the configuration as -t does, print Pacemaker's."""
    p = argparse.ArgumentParser(prog="heartbeat export",
                                description="print the Pacemaker configuration equivalent to "
                                            "ha.cf + haresources")
    fmt = p.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--pcs", action="store_const", const="pcs", dest="fmt", help="pcs commands")
    fmt.add_argument("--crm", action="store_const", const="crm", dest="fmt",
                     help="crmsh `configure` syntax")
    fmt.add_argument("--cib", action="store_const", const="cib", dest="fmt", help="a whole CIB (XML)")
    opts = p.parse_args(args)
    from appliance.config.haresources import resolve_script
    from appliance.export import export as render

    paths = Paths.from_env(sysconfig=SYSCONFIG)
    loaded = load_or_report(paths, "nothing exported")
    if loaded is None:
        return EXIT_CONFIG
    cfg, _keys, groups, ext = loaded

    def locate(name: str) -> str | None:
        # Heartbeat's lookup (resource.d first): decides between an OCF agent and lsb.
        found = resolve_script(name, paths.resource_dirs)
        if found is None:
            return None
        return "resource.d" if os.path.dirname(found) == paths.resource_dirs[0] else "init.d"

    sys.stdout.write(render(opts.fmt, cfg, groups, ext, locate))
    return 0
