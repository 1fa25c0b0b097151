"""Small process helpers shared by the lab modules (bounded waits, PID-only kills)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Iterable, Mapping, Optional, Sequence


class LabError(RuntimeError):
    """The lab could not be built or driven."""


class LabCommandError(subprocess.CalledProcessError):
    """A CalledProcessError whose message carries the command's stderr/stdout tail."""

    def __str__(self) -> str:
        base = super().__str__()
        tail = (self.stderr or self.output or "").strip()
        if tail:
            base += " -- " + tail[-800:]
        return base


def run(
    argv: Sequence[str],
    timeout: float = 30,
    check: bool = True,
    input: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess:
    """Run argv with text output captured; on check, raise LabCommandError on rc != 0."""
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=dict(env) if env is not None else None,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, list(argv), proc.stdout, proc.stderr)
    return proc


def merged_env(env: Optional[Mapping[str, str]]) -> Optional[dict]:
    """os.environ overlaid with env (None stays None = inherit)."""
    if env is None:
        return None
    out = dict(os.environ)
    out.update(env)
    return out


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (PID 1 here may never reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # Field 3 follows the last ')' (comm may contain spaces and parentheses).
    rest = stat.rsplit(b")", 1)[-1].split()
    return not (rest and rest[0] in (b"Z", b"X"))


def netns_list() -> list:
    proc = run(["ip", "netns", "list"], check=False, timeout=10)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def netns_pids(ns: str) -> list:
    """PIDs whose network namespace is the named one ([] if it does not exist)."""
    proc = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    if proc.returncode != 0:
        return []
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def kill_pids(pids: Iterable[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        if pid <= 1 or pid == os.getpid():
            continue
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids: Iterable[int], timeout: float = 5.0) -> list:
    """Wait (bounded) until none of pids is alive; return the ones still alive."""
    pending = [p for p in pids]
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.02) + 2):
        pending = [p for p in pending if pid_alive(p)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return pending


def reap(popens: Iterable[subprocess.Popen], timeout: float = 2.0) -> None:
    """Collect exit statuses of our own children (killing them if still running)."""
    for p in popens:
        if p.poll() is not None:
            continue
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                p.kill()
                p.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
