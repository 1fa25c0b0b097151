"""Privilege separation: the root helper's protocol and policy, capability helpers, lockdown."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from appliance import caps
from appliance.privsep import HelperClient, keep_caps, parse_setting
from appliance.spawner import REFUSED_RC, Policy

ROOT = os.geteuid() == 0


def test_settings() -> None:
    assert parse_setting("") == ("caps", None)
    assert parse_setting("caps") == ("caps", None)
    assert parse_setting("OFF") == ("off", None)
    assert parse_setting("user") == ("user", "hacluster")
    assert parse_setting("user:hbd") == ("user", "hbd")
    with pytest.raises(ValueError):
        parse_setting("maybe")


def test_keep_caps() -> None:
    class Cfg:
        realtime = True

    assert keep_caps(Cfg()) == ["net_admin", "net_raw", "kill", "ipc_lock"]
    Cfg.realtime = False
    assert "ipc_lock" not in keep_caps(Cfg())


def test_cap_masks_and_proc_status() -> None:
    m = caps.mask(["net_admin", "CAP_NET_RAW", "kill"])
    assert m == (1 << 12) | (1 << 13) | (1 << 5)
    assert caps.names(m) == ["cap_kill", "cap_net_admin", "cap_net_raw"]
    eff, prm, _inh = caps.capget()
    st = caps.proc_status()
    assert int(st["CapEff"], 16) == eff and int(st["CapPrm"], 16) == prm
    assert caps.last_cap() >= 36


POLICY = Policy(
    strict=True,
    script_dirs=("/etc/ha.d/resource.d", "/etc/init.d"),
    resources=frozenset({("httpd", ()), ("Filesystem", ("/dev/sdb1", "/data", "ext4"))}),
    hooks=frozenset({"/usr/local/bin/notify"}),
    commands=frozenset({("/bin/sh", "-c", "curl -fs localhost")}),
    base_env={"PATH": "/usr/bin:/bin", "HA_CURHOST": "server1"},
)


@pytest.mark.parametrize("argv, env, allowed", [
    (["/etc/ha.d/resource.d/httpd", "start"], {"PATH": "/usr/bin:/bin"}, True),
    (["/etc/init.d/httpd", "status"], {}, True),
    (["/etc/ha.d/resource.d/Filesystem", "/dev/sdb1", "/data", "ext4", "stop"], {}, True),
    (["/etc/ha.d/resource.d/Filesystem", "/dev/sda1", "/etc", "ext4", "start"], {}, False),
    (["/etc/ha.d/resource.d/httpd", "reboot"], {}, False),
    (["/etc/ha.d/resource.d/httpd"], {}, False),
    (["/tmp/httpd", "start"], {}, False),
    (["/etc/ha.d/resource.d/../../../tmp/httpd", "start"], {}, False),
    (["/bin/sh", "-c", "id > /etc/passwd"], {}, False),
    (["/bin/sh", "-c", "curl -fs localhost"], {"HA_GROUP": "g"}, True),
    (["/usr/local/bin/notify", "active", "g"], {"HA_NOTIFY_EVENT": "active"}, True),
    (["/etc/init.d/httpd", "start"], {"LD_PRELOAD": "/tmp/x.so"}, False),
    (["/etc/init.d/httpd", "start"], {"BASH_ENV": "/tmp/x"}, False),
    (["/etc/init.d/httpd", "start"], {"PATH": "/tmp:/usr/bin"}, False),
    (["/etc/init.d/httpd", "start"], {"HA_CURHOST": "other"}, False),
])  # fmt: skip
def test_strict_policy(argv: list[str], env: dict[str, str], allowed: bool) -> None:
    assert (POLICY.refuse(argv, env) is None) == allowed
    assert Policy(strict=False).refuse(argv, env) is None


# ------------------------------------------------------------------ the helper, in-process


def with_helper(policy: Policy, body) -> object:
    async def main():
        client = HelperClient.start(policy)
        client.attach(asyncio.get_running_loop())
        try:
            return await body(client)
        finally:
            client.chan.close()
            client.sync.close()
            if not client.gone:
                os.waitpid(client.pid, 0)
    return asyncio.run(main())


def test_helper_runs_scripts_with_output_rc_env_and_timeout(tmp_path) -> None:
    marker = tmp_path / "grandchild"

    async def body(c: HelperClient):
        ok = await c.run(["/bin/sh", "-c", "echo out; echo err >&2; echo $X; exit 3"], {"X": "x1"}, 10)
        missing = await c.run(["/nonexistent/script", "start"], {}, 10)
        t0 = time.monotonic()
        hung = await c.run(["/bin/sh", "-c", f"(sleep 60; touch {marker}) & sleep 60"], {}, 0.5)
        took = time.monotonic() - t0
        parallel = await asyncio.gather(*(c.run(["/bin/sh", "-c", f"sleep 0.3; echo {i}"], {}, 5)
                                          for i in range(4)))
        return ok, missing, hung, took, parallel

    ok, missing, hung, took, parallel = with_helper(Policy(strict=False), body)
    assert ok.rc == 3 and ok.output.split() == ["out", "err", "x1"]
    assert missing.rc == 127 and "cannot run /nonexistent/script" in missing.output
    assert hung.rc is None and took < 5          # killed with its whole process group
    time.sleep(0.2)
    assert not marker.exists()
    assert [r.output.strip() for r in parallel] == ["0", "1", "2", "3"]


def test_helper_refuses_outside_a_strict_policy() -> None:
    async def body(c: HelperClient):
        return await c.run(["/bin/sh", "-c", "id"], {}, 5)

    res = with_helper(POLICY, body)
    assert res.rc == REFUSED_RC and "refused by privilege separation" in res.output


def test_cancel_kills_the_script(tmp_path) -> None:
    marker = tmp_path / "late"

    async def body(c: HelperClient):
        task = asyncio.ensure_future(c.run(["/bin/sh", "-c", f"sleep 1; touch {marker}"], {}, 30))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(1.5)

    with_helper(Policy(strict=False), body)
    assert not marker.exists()


def test_helper_opens_authkeys_and_cleans_up(tmp_path) -> None:
    keyfile = tmp_path / "authkeys"
    keyfile.write_text("auth 1\n1 sha256 0123456789abcdef\n")
    os.chmod(keyfile, 0o600)
    pidfile = tmp_path / "heartbeat.pid"
    pidfile.write_text("4242\n")
    policy = Policy(strict=True, authkeys=str(keyfile), pidfile=str(pidfile),
                    control_socket=str(tmp_path / "nosock"))

    async def body(c: HelperClient):
        fd = c.open_authkeys(str(keyfile))
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        c.cleanup(1111)           # not our pid file: kept
        kept = pidfile.exists()
        c.cleanup(4242)
        return data, kept

    data, kept = with_helper(policy, body)
    assert data.startswith(b"auth 1") and kept and not pidfile.exists()


def test_policy_crosses_the_exec_intact() -> None:
    assert Policy.from_json(POLICY.to_json()) == POLICY
    assert Policy.from_json(Policy(strict=False).to_json()) == Policy(strict=False)
    assert Policy(strict=False) != POLICY


def test_helper_is_a_fresh_light_program() -> None:
    """The helper is the program executed afresh, not a fork-copy of the daemon: none of the
    daemon's modules (asyncio) and far less memory than the process that started it."""
    import appliance.daemon  # noqa: F401 - this process now looks like the daemon

    async def body(c: HelperClient):
        with open(f"/proc/{c.pid}/status") as f:
            helper = {k: v for k, _, v in (line.partition(":") for line in f)}
        with open(f"/proc/{c.pid}/maps") as f:
            maps = f.read()
        return helper, maps

    helper, maps = with_helper(Policy(strict=False), body)
    with open("/proc/self/status") as f:
        mine = {k: v for k, _, v in (line.partition(":") for line in f)}
    rss = lambda st: int(st["VmRSS"].split()[0])  # noqa: E731
    assert rss(helper) < rss(mine) * 0.8, (rss(helper), rss(mine))
    assert "_asyncio" not in maps and "libssl" not in maps


def test_spawner_keeps_what_the_daemon_keeps_of_output() -> None:
    from appliance import spawner
    from appliance.rsc import scripts

    assert spawner.MAX_OUTPUT == scripts.MAX_OUTPUT
    argv = spawner.exec_argv(7, 8)
    assert argv[0] == sys.executable and argv[-3:] == [spawner.EXEC_FLAG, "7", "8"]
    done = subprocess.run(argv[:-3] + [spawner.EXEC_FLAG, "0", "1"], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and "started by the heartbeat daemon only" in done.stderr


def test_helper_is_renamed_and_its_loss_is_survived() -> None:
    async def body(c: HelperClient):
        with open(f"/proc/{c.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{c.pid}/comm") as f:
            comm = f.read().strip()
        os.kill(c.pid, 9)
        await asyncio.sleep(0.3)
        return cmdline, comm, await c.run(["/bin/true"], {}, 5), c.gone

    cmdline, comm, after, gone = with_helper(Policy(strict=False), body)
    assert cmdline.rstrip(b"\0") == b"hba-privsep" and comm == "hba-privsep"
    assert gone and after.rc == 127


# ------------------------------------------------------------------ lockdown, in a child process

LOCKDOWN = """
import asyncio, json, os, resource, sys, threading
from types import SimpleNamespace
from appliance import caps, logsetup
from appliance.privsep import lockdown
from appliance.rsc.scripts import run_script

logsetup.setup("t", None, None, None, stderr=True)
CHECK = "grep -E '^(Uid|CapEff|NoNewPrivs)' /proc/self/status"
d = SimpleNamespace(
    addons=SimpleNamespace(ext=SimpleNamespace(   # a health check: allowed by the strict policy
        notify=(), monitor=SimpleNamespace(check=CHECK), monitor_groups={})),
    cfg=SimpleNamespace(realtime=False), groups=[],
    executor=SimpleNamespace(settings=SimpleNamespace(script_dirs=("/nonexistent",), env={})),
    paths=SimpleNamespace(authkeys="/nonexistent/authkeys", pidfile="/nonexistent/pid",
                          control_socket="/nonexistent/sock"),
)

async def main():
    st = lockdown(d)
    res = await run_script(["/bin/sh", "-c", CHECK], dict(os.environ), 10)
    return {"mode": st.mode, "me": caps.proc_status(), "threads": caps.thread_caps(),
            "dumpable": caps.dumpable(), "core": resource.getrlimit(resource.RLIMIT_CORE)[0],
            "script": res.output, "helper": st.helper_pid}

print(json.dumps(asyncio.run(main())))
logsetup.stop()
"""


@pytest.mark.skipif(not ROOT, reason="dropping privileges needs root")
@pytest.mark.parametrize("mode", ["caps", "user", "off"])
def test_lockdown(mode: str) -> None:
    import json

    res = subprocess.run([sys.executable, "-c", textwrap.dedent(LOCKDOWN)], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "HBA_PRIVSEP": mode})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    full = int(caps.proc_status()["CapEff"], 16)
    keep = caps.mask(["net_admin", "net_raw", "kill"])
    script = dict(line.split(":\t") for line in out["script"].splitlines())
    assert int(script["CapEff"], 16) == full and script["Uid"].split()[0] == "0"
    assert script["NoNewPrivs"] == "0"          # scripts are not limited
    assert out["dumpable"] is False
    if mode == "off":
        assert out["helper"] is None and int(out["me"]["CapEff"], 16) == full
        assert "Privilege separation off" in res.stderr
        return
    me = out["me"]
    assert int(me["CapEff"], 16) == int(me["CapPrm"], 16) == keep
    assert int(me["CapBnd"], 16) == keep and me["NoNewPrivs"] == "1" and int(me["CapInh"], 16) == 0
    assert out["core"] == 0
    assert all(eff | prm == eff & keep | prm & keep for eff, prm in out["threads"].values())
    uid = int(me["Uid"].split()[0])
    assert (uid != 0) == (mode == "user")
    assert f"Privilege separation ({mode})" in res.stderr
