"""Running resource scripts: `<path> [args] start|stop|status` with a timeout (spec §9.2).

Scripts run as children with the system environment (the frozen bundle's LD_LIBRARY_PATH is
restored by the packaging runtime hook) plus Heartbeat's HA_* variables, in their own process
group so a hung script and everything it forked can be killed together.

Once the daemon has dropped its privileges (appliance.privsep), they are started by its root
helper instead (appliance.spawner, same contract): `set_runner` installs that route.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from typing import Awaitable, Callable

_NOT_RUNNING = re.compile(r"[Nn][Oo][Tt] *[Rr]unning")
_RUNNING = re.compile(r"[Rr]unning|OK")
MAX_OUTPUT = 64 * 1024


def judge_status(output: str) -> bool:
    """3.0.6 decides "running" from the status text, not the exit code."""
    if _NOT_RUNNING.search(output):
        return False
    return bool(_RUNNING.search(output))


@dataclass(frozen=True)
class ScriptResult:
    rc: int | None          # None: timed out (killed)
    output: str

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def describe(self) -> str:
        if self.rc is None:
            return "timed out"
        return f"exit {self.rc}"


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(extra)
    return env


Runner = Callable[[list[str], dict[str, str], float], Awaitable["ScriptResult"]]
_runner: Runner | None = None


def set_runner(runner: Runner | None) -> None:
    """Route every script through `runner` (the privileged helper), or back to run_local."""
    global _runner
    _runner = runner


async def run_script(argv: list[str], env: dict[str, str], timeout: float) -> ScriptResult:
    """Run one script; never raises for the script's own failures."""
    if _runner is not None:
        return await _runner(argv, env, timeout)
    return await run_local(argv, env, timeout)


async def run_local(argv: list[str], env: dict[str, str], timeout: float) -> ScriptResult:
    """Run one script as a child of this process."""
    # Output goes to an unlinked temp file, not a pipe: a daemon the script leaves running
    # often keeps its stdout open, and we must not wait for that daemon to exit.
    with tempfile.TemporaryFile() as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return ScriptResult(127, f"cannot run {argv[0]}: {exc.strerror}")
        try:
            rc: int | None = await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            _kill_group(proc.pid)
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                pass
            rc = None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        out.seek(0)
        text = out.read(MAX_OUTPUT).decode("utf-8", "replace")
    return ScriptResult(rc, text)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
