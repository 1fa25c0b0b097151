"""Resource script running: 3.0.6's text-based status rule, timeouts, environment."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.rsc.scripts import child_env, judge_status, run_script


@pytest.mark.parametrize(
    "text,running",
    [
        ("httpd is running", True),
        ("Running OK", True),
        ("OK", True),
        ("httpd is stopped", False),
        ("httpd is not running", False),
        ("NOT Running", False),
        ("", False),
        ("status unknown", False),
        ("lighttpd (pid 42) is running...", True),
    ],
)
def test_status_is_judged_by_text(text: str, running: bool) -> None:
    assert judge_status(text) is running


def script(tmp_path, body: str) -> str:
    path = tmp_path / "rsc"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_run_captures_output_and_exit_code(tmp_path) -> None:
    path = script(tmp_path, 'echo "$HA_CURHOST $1 $2"; exit 3\n')
    res = asyncio.run(run_script([path, "arg", "start"], child_env({"HA_CURHOST": "n1"}), 5))
    assert res.rc == 3 and res.output.strip() == "n1 arg start"


def test_hang_is_killed_with_its_children(tmp_path) -> None:
    marker = tmp_path / "child.pid"
    path = script(tmp_path, f"sleep 600 & echo $! > {marker}; wait\n")
    res = asyncio.run(run_script([path, "start"], child_env({}), 0.5))
    assert res.rc is None and res.describe() == "timed out"
    child = int(marker.read_text())
    for _ in range(100):     # SIGKILL delivery is asynchronous: bounded wait for it to land
        if not alive(child):
            break
        time.sleep(0.02)
    assert not alive(child)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_daemon_left_running_does_not_block(tmp_path) -> None:
    # An init script that starts a daemon keeping stdout open must still return at once.
    path = script(tmp_path, "(sleep 3 &) ; echo started; exit 0\n")
    res = asyncio.run(asyncio.wait_for(run_script([path, "start"], child_env({}), 10), 2))
    assert res.ok and "started" in res.output


def test_missing_script_is_reported(tmp_path) -> None:
    res = asyncio.run(run_script([str(tmp_path / "nope"), "start"], child_env({}), 1))
    assert res.rc == 127 and "cannot run" in res.output
