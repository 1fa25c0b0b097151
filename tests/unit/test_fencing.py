"""STONITH: the ha.cf lines, the pure before-takeover rule, and the `stonith` command adapter."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from appliance.config.hacf import parse_hacf
from appliance.config.stonith import Invalid, StonithDevice, parse_stonith, parse_stonith_host
from appliance.core.fencing import RETRY_DELAYS, Fencing, may_hold
from appliance.core.ownership import Decision
from appliance.errors import ConfigErrors
from appliance.rsc.stonith import StonithRunner

BASE = "keepalive 1\ndeadtime 10\ninitdead 20\nbcast eth0\nnode alpha beta\n"
SECRET = "s3cr3t-pw"


def hacf(extra: str, local: str = "alpha"):
    return parse_hacf(BASE + extra, local_node=local, udpport_default=694)


# ------------------------------------------------------------------ parsing


def test_stonith_host_for_every_node_and_for_us() -> None:
    d = parse_stonith_host("*  null alpha beta", "alpha", 7)
    assert d == StonithDevice("null", params="alpha beta", line=7)
    assert d is not None and d.directive == "stonith_host"
    d = parse_stonith_host(f"ALPHA external/ipmi beta 10.0.0.9 admin {SECRET} lan", "alpha")
    assert d is not None and d.type == "external/ipmi"
    assert d.params == f"beta 10.0.0.9 admin {SECRET} lan"
    assert SECRET not in repr(d)


def test_stonith_host_for_another_node_is_skipped() -> None:
    assert parse_stonith_host("beta baytech 10.0.0.3 login pw", "alpha") is None
    assert parse_stonith_host("beta", "alpha") is None        # 3.0.6 does not look further


def test_stonith_with_config_file() -> None:
    d = parse_stonith("baytech /etc/ha.d/conf/stonith.baytech", 3)
    assert (d.type, d.config_file, d.params, d.directive) == (
        "baytech", "/etc/ha.d/conf/stonith.baytech", None, "stonith")


@pytest.mark.parametrize("rest, message", [
    ("", "No Stonith type given"),
    ("baytech", "No Stonith config file given"),
    ("bay;tech /f", "Invalid Stonith type"),
])
def test_stonith_errors(rest: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse_stonith(rest)


@pytest.mark.parametrize("rest, message", [
    ("", "No Stonith hostname argument given"),
    ("*", "No Stonith type given"),
    (f"* $(reboot) {SECRET}", "Invalid Stonith type"),
])
def test_stonith_host_errors(rest: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as exc:
        parse_stonith_host(rest, "alpha")
    assert SECRET not in str(exc.value) and SECRET not in exc.value.hint


def test_hacf_keeps_the_last_line_for_this_node() -> None:
    cfg = hacf("stonith_host * null alpha beta\nstonith_host alpha ssh beta\nstonith_host beta null x\n")
    assert cfg.stonith == StonithDevice("ssh", params="beta", line=7)
    assert hacf("").stonith is None
    assert hacf("stonith_host beta null alpha\n").stonith is None


def test_hacf_bad_stonith_line_is_a_config_error_without_the_secret() -> None:
    with pytest.raises(ConfigErrors) as exc:
        hacf(f"stonith_host * bad!type {SECRET}\n")
    assert "Invalid Stonith type" in str(exc.value) and SECRET not in str(exc.value)


# ------------------------------------------------------------------ the rule


def acquire(key: str) -> Decision:
    return Decision(key, "acquire", "alpha", f"taking {key}")


def test_what_a_dead_node_may_hold() -> None:
    assert may_hold(departed=True, known=False, held=frozenset(), ready=False) == frozenset()
    assert may_hold(departed=False, known=False, held=frozenset(), ready=False) is None
    assert may_hold(departed=False, known=True, held=frozenset({"g"}), ready=False) is None
    assert may_hold(departed=False, known=True, held=frozenset({"g"}), ready=True) == {"g"}
    assert may_hold(departed=False, known=True, held=frozenset(), ready=True) == frozenset()
    # It was the rightful owner of g2: it may have been starting it when it died.
    assert may_hold(False, True, frozenset({"g"}), True, frozenset({"g2"})) == {"g", "g2"}
    assert may_hold(True, True, frozenset({"g"}), True, frozenset({"g2"})) == frozenset()


def test_reset_unneeded_for_a_node_that_gave_everything_up() -> None:
    f = Fencing()
    assert f.node_died("beta", frozenset()) is False
    assert f.gate([acquire("g")]) == [acquire("g")] and f.due(0.0) == []


def test_acquire_waits_for_the_reset_then_proceeds() -> None:
    f = Fencing()
    assert f.node_died("beta", None) is True
    out = f.gate([acquire("g1"), Decision("g2", "keep", "alpha", "we hold g2")])
    assert out[0].action == "wait" and "STONITH of beta" in out[0].reason
    assert out[1].action == "keep"
    assert f.due(0.0) == ["beta"]
    f.started("beta")
    assert f.due(0.0) == []                                   # one reset at a time
    assert f.finished("beta", ok=True, now=1.0) is None
    assert f.gate([acquire("g1")]) == [acquire("g1")]


def test_only_groups_the_dead_node_may_hold_wait() -> None:
    f = Fencing()
    f.node_died("beta", frozenset({"g1"}))
    out = f.gate([acquire("g1"), acquire("g2")])
    assert [d.action for d in out] == ["wait", "acquire"]


def test_no_reset_until_an_acquire_wants_it() -> None:
    f = Fencing()
    f.node_died("beta", None)
    assert f.due(0.0) == []                                   # nobody needs its groups yet
    f.gate([Decision("g", "none", "gamma", "gamma should hold g")])
    assert f.due(0.0) == []


def test_failed_reset_is_retried_with_back_off_and_nothing_moves() -> None:
    f = Fencing()
    f.node_died("beta", None)
    f.gate([acquire("g")])
    delays = []
    now = 0.0
    for _ in range(len(RETRY_DELAYS) + 2):
        assert f.due(now) == ["beta"]
        f.started("beta")
        delay = f.finished("beta", ok=False, now=now)
        assert delay is not None
        delays.append(delay)
        assert f.due(now) == [] and f.next_due() == now + delay
        assert f.gate([acquire("g")])[0].action == "wait"
        now += delay
    assert delays == [*RETRY_DELAYS, RETRY_DELAYS[-1], RETRY_DELAYS[-1]]


def test_node_back_or_reset_by_a_peer_settles_it() -> None:
    f = Fencing()
    f.node_died("beta", None)
    f.node_back("beta")
    assert f.gate([acquire("g")]) == [acquire("g")]
    f.node_died("beta", None)
    assert f.reset_reported("beta", "bad") is False
    assert f.reset_reported("beta", "OK") is True
    assert f.gate([acquire("g")]) == [acquire("g")]


# ------------------------------------------------------------------ the command


def fake_stonith(tmp_path, rc: int) -> str:
    """A stand-in for /usr/sbin/stonith: records its argv and the -F file, exits rc."""
    path = tmp_path / "stonith"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/argv\n'
        'case "$*" in *-m*) echo "<resource-agent><shortdesc lang=\\"en\\">FAKE device</shortdesc>"\n'
        "  exit 0;; esac\n"
        f'while [ $# -gt 0 ]; do [ "$1" = -F ] && cat "$2" >> {tmp_path}/params; shift; done\n'
        f'echo "login failed for admin/{SECRET}"\n'
        f"exit {rc}\n"
    )
    path.chmod(0o755)
    return str(path)


def runner(tmp_path, rc: int) -> StonithRunner:
    device = StonithDevice("external/fake", params=f"beta admin {SECRET}")
    r = StonithRunner(device, str(tmp_path / "run"), {"PATH": "/usr/bin:/bin"}, fake_stonith(tmp_path, rc))
    r.prepare()
    return r


def test_parameters_go_through_a_private_file_never_argv(tmp_path) -> None:
    r = runner(tmp_path, 0)
    mode = stat.S_IMODE(os.stat(r.param_file).st_mode)
    assert mode == 0o600
    assert r.argv("beta") == [r.program, "-t", "external/fake", "-F", r.param_file, "-T", "reset", "beta"]
    out = asyncio.run(r.reset("beta"))
    assert out.ok and out.result == "OK"
    assert SECRET not in (tmp_path / "argv").read_text()
    assert (tmp_path / "params").read_text() == f"beta admin {SECRET}\n"
    assert asyncio.run(r.description()) == "FAKE device"
    assert (r.program, "-t", "external/fake", "-m") in r.commands(["beta"])
    assert tuple(r.argv("beta")) in r.commands(["beta"])


@pytest.mark.parametrize("rc, result", [(4, "badhost"), (5, "bad"), (1, "bad")])
def test_failure_results_and_masked_output(tmp_path, rc: int, result: str) -> None:
    out = asyncio.run(runner(tmp_path, rc).reset("beta"))
    assert not out.ok and out.result == result
    assert f"exit {rc}" in out.detail and SECRET not in out.detail and "***" in out.detail


def test_stonith_configfile_is_passed_as_is(tmp_path) -> None:
    device = StonithDevice("baytech", config_file="/etc/ha.d/conf/stonith.baytech")
    r = StonithRunner(device, str(tmp_path), {}, "/usr/sbin/stonith")
    r.prepare()                                               # nothing to write
    assert not os.listdir(tmp_path)
    assert r.argv("beta")[3:5] == ["-F", "/etc/ha.d/conf/stonith.baytech"]


@pytest.mark.skipif(not os.access("/usr/sbin/stonith", os.X_OK), reason="cluster-glue not installed")
def test_real_null_device(tmp_path) -> None:
    device = StonithDevice("null", params="alpha beta")
    r = StonithRunner(device, str(tmp_path), {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    r.prepare()
    assert asyncio.run(r.reset("beta")).ok
    assert asyncio.run(r.description()) == "NULL STONITH device"


@pytest.mark.skipif(not os.access("/usr/sbin/stonith", os.X_OK), reason="cluster-glue not installed")
def test_unknown_plugin_type_is_a_configuration_error(tmp_path) -> None:
    from appliance.cli.configload import load_all
    from appliance.paths import Paths

    (tmp_path / "authkeys").write_text("auth 1\n1 sha1 key\n")
    (tmp_path / "authkeys").chmod(0o600)
    (tmp_path / "haresources").write_text("alpha 10.0.0.10\n")
    paths = Paths(etc=str(tmp_path))
    (tmp_path / "ha.cf").write_text(BASE + f"stonith_host * nosuchplugin {SECRET}\n")
    with pytest.raises(ConfigErrors) as exc:
        load_all(paths, "alpha")
    assert "ha.cf:6: Invalid Stonith type [nosuchplugin]" in str(exc.value)
    assert SECRET not in str(exc.value)
    (tmp_path / "ha.cf").write_text(BASE + "stonith_host * null alpha beta\n")
    assert load_all(paths, "alpha")[0].stonith == StonithDevice("null", params="alpha beta", line=6)
