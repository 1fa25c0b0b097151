"""ha.cf parser: 3.0.6 semantics (spec 6.2, 10, 11) and robustness on arbitrary input."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.hacf import (
    HaConfig,
    Medium,
    load_hacf,
    local_node_name,
    parse_hacf,
)
from appliance.config.hacf_values import MAX_TIME_MS, parse_time_ms
from appliance.errors import ConfigError, ConfigErrors

# The ha.cf from the tutorial (seed-tutorial.txt), verbatim, typo included.
TUTORIAL_HACF = """\
## logging ##
logfile        /var/log/ha-log
logfacility     local0hea

## timers ##
## All timers are set in seconds. Use 'ms' if you need to define time in milliseconds. ##

## heartbeat intervals ##
keepalive 2

## node is considered dead after this time ##
deadtime 15

## some servers take longer time to boot. this timer defines additional time to wait before confirming that a server is down ##
##  the recommended time for this timer is at least twice of the dead timer ##
initdead 120

## messaging parameters ##
udpport        694

bcast   eth0
## you can use multicasts or unicasts as well ##

## node definitions ##
## make sure that the hostnames match uname -n ##

node   server1.example.com
node   server2.example.com
node   server3.example.com
"""  # noqa: E501

MINIMAL = "bcast eth0\nnode node1 node2\n"


def parse(text: str, local: str = "node1", port: int = 694, path: str = "ha.cf") -> HaConfig:
    return parse_hacf(text, path, local, udpport_default=port)


def errors_of(text: str, local: str = "node1") -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        parse(text, local)
    return info.value.errors


def only_error(text: str, local: str = "node1") -> ConfigError:
    errors = errors_of(text, local)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


# ---- the tutorial ------------------------------------------------------------------------


def test_tutorial_typo_is_the_only_error_and_names_its_line() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_hacf(TUTORIAL_HACF, "/etc/ha.d/ha.cf", "server1.example.com", udpport_default=694)
    [error] = info.value.errors
    assert error.line == 3
    assert error.path == "/etc/ha.d/ha.cf"
    assert "invalid logfacility [local0hea]" in error.message
    assert "local0" in error.hint
    assert str(info.value).startswith("/etc/ha.d/ha.cf:3: invalid logfacility [local0hea]")


def test_tutorial_fixed_parses_to_expected_values() -> None:
    text = TUTORIAL_HACF.replace("local0hea", "local0")
    cfg = parse(text, "server2.example.com")
    assert cfg.nodes == ["server1.example.com", "server2.example.com", "server3.example.com"]
    assert cfg.local_node == "server2.example.com"
    assert cfg.media == [Medium("bcast", "eth0", 694)]
    assert (cfg.keepalive_ms, cfg.deadtime_ms, cfg.initdead_ms) == (2000, 15000, 120000)
    assert (cfg.warntime_ms, cfg.deadping_ms) == (7500, 15000)
    assert cfg.logfile == "/var/log/ha-log"
    assert cfg.debugfile == "/dev/null"  # facility set, no debugfile: spec 11
    assert cfg.logfacility == "local0"
    assert cfg.use_logd is False
    assert cfg.auto_failback == "legacy"
    assert any("legacy" in w for w in cfg.warnings)
    assert not any("udpport" in w for w in cfg.warnings)  # udpport precedes bcast
    assert cfg.params["deadtime"] == "15"
    assert cfg.params["udpport"] == "694"


# ---- parse_time_ms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1", 1000), ("1.5", 1500), ("0.1", 100), (".5", 500), ("2.", 2000), ("0", 0),
        ("0.001", 1), ("100ms", 100), ("100MS", 100), ("100msec", 100), ("250 ms", 250),
        ("1000us", 1), ("1000000us", 1000), ("1000000usec", 1000), ("499us", 0),
        ("500us", 1), ("501us", 1), ("1.5ms", 2), ("0.0004", 0), (" 7 ", 7000), ("010", 10000),
    ],
)  # fmt: skip
def test_parse_time_ms_units(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize(
    "text",
    ["30s", "", " ", "abc", "-1", "+1", "1.2.3", "1e3", "ms", "1 s", "1h", "1msx", "\uff11",
     "\u0663", "5 5", "9" * 40, str(MAX_TIME_MS // 1000 + 1)],
)  # fmt: skip
def test_parse_time_ms_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_ms(text)


@given(st.integers(0, MAX_TIME_MS // 1000))
def test_parse_time_ms_seconds(n: int) -> None:
    assert parse_time_ms(str(n)) == n * 1000


@given(st.integers(0, MAX_TIME_MS), st.sampled_from(["ms", "msec", "MS", " ms"]))
def test_parse_time_ms_milliseconds(n: int, unit: str) -> None:
    assert parse_time_ms(f"{n}{unit}") == n


@given(st.integers(0, 10**9), st.sampled_from(["us", "usec", "US"]))
def test_parse_time_ms_microseconds_round_half_up(n: int, unit: str) -> None:
    assert parse_time_ms(f"{n}{unit}") == (n + 500) // 1000


@given(st.integers(0, 10**6), st.integers(0, 999))
def test_parse_time_ms_fractional_seconds(whole: int, millis: int) -> None:
    assert parse_time_ms(f"{whole}.{millis:03d}") == whole * 1000 + millis


@given(st.text(max_size=40))
def test_parse_time_ms_only_raises_value_error(text: str) -> None:
    try:
        assert 0 <= parse_time_ms(text) <= MAX_TIME_MS
    except ValueError:
        pass


# ---- lexical rules -----------------------------------------------------------------------


def test_comments_blanks_and_crlf() -> None:
    text = (
        "# full comment\n\n   \t\n  keepalive 2 # trailing\r\n"
        "deadtime 10#glued\r\nbcast eth0\r\nnode node1\r\n"
    )
    cfg = parse(text)
    assert (cfg.keepalive_ms, cfg.deadtime_ms) == (2000, 10000)
    assert cfg.media[0].interface == "eth0"


def test_ordinary_directives_split_on_blanks_and_commas() -> None:
    cfg = parse("bcast eth0, eth1,eth2\tEth3\nnode node1,Node2 NODE3\n")
    assert [m.interface for m in cfg.media] == ["eth0", "eth1", "eth2", "Eth3"]
    assert cfg.nodes == ["node1", "node2", "node3"]


def test_duplicate_node_is_listed_once_with_a_warning() -> None:
    cfg = parse(MINIMAL + "node NODE2\n")
    assert cfg.nodes == ["node1", "node2"]
    assert any("node2" in w and "more than once" in w for w in cfg.warnings)


def test_single_valued_last_token_and_last_line_win() -> None:
    cfg = parse(MINIMAL + "deadtime 10 20\nkeepalive 3\nkeepalive 2\n")
    assert cfg.deadtime_ms == 20000
    assert cfg.keepalive_ms == 2000
    assert cfg.params["deadtime"] == "20"
    assert any("deadtime" in w and "last one" in w for w in cfg.warnings)


def test_directive_without_value_is_ignored_with_warning() -> None:
    cfg = parse(MINIMAL + "deadtime\n")
    assert cfg.deadtime_ms == 30000
    assert any("[deadtime] has no value" in w for w in cfg.warnings)


def test_nul_ends_the_line_like_c() -> None:
    cfg = parse(MINIMAL + "deadtime 10\x00junk here\n")
    assert cfg.deadtime_ms == 10000


def test_non_utf8_in_a_directive_is_an_error_but_fine_in_a_comment(tmp_path) -> None:
    good = tmp_path / "good.cf"
    good.write_bytes(b"# Maschinen f\xfcr den Cluster\n" + MINIMAL.encode())
    assert load_hacf(str(good), "node1").nodes == ["node1", "node2"]
    bad = tmp_path / "bad.cf"
    bad.write_bytes(MINIMAL.encode() + b"node n\xfcde\n")
    with pytest.raises(ConfigErrors) as info:
        load_hacf(str(bad), "node1")
    assert info.value.errors[0].line == 3
    assert "UTF-8" in info.value.errors[0].message


def test_line_numbers_are_physical_and_one_based() -> None:
    error = only_error("\n# c\n\nbogus 1\n" + MINIMAL)
    assert error.line == 4
    assert error.message == "Illegal directive [bogus]"


# ---- directives ----------------------------------------------------------------------------


def test_unknown_and_miscased_directives_are_illegal() -> None:
    errors = errors_of(MINIMAL + "bogus on\nKeepalive 2\nNode node3\n")
    assert [e.line for e in errors] == [3, 4, 5]
    assert errors[0].message == "Illegal directive [bogus]"
    assert all("case-sensitive" in e.hint for e in errors)
    assert "keepalive" in errors[1].hint
    assert "'node'" in errors[2].hint


ACCEPTED = """\
compression bz2
compression_threshold 2
traditional_compression no
coredumps true
coreroot /var/lib/heartbeat/cores
memreserve 6500
use_apphbd no
log_badpack off
syslogmsgfmt on
conn_logd_time 60
quorum_server qs.example.com
baud 19200
serial /dev/ttyS0
normalpoll yes
stonith baytech /etc/ha.d/conf/stonith.baytech
stonith_host * baytech 10.0.0.3 mylogin mysecretpassword
apiauth mgmtd uid=root
failfast hacluster /usr/lib/heartbeat/ccm
crm_daemon_dir /usr/lib/pacemaker
crmd_spawns_pengine yes
record_config_changes on
record_pengine_inputs off
enable_config_writes no
cluster mycluster
hopfudge 2
hbgenmethod time
msgfmt netstring
max_rexmit_delay 300
uuidfrom nodename
realtime off
rtprio 10
debug 3
watchdog /dev/watchdog
crm off
pacemaker no
"""


def test_every_accepted_directive_parses() -> None:
    cfg = parse(MINIMAL + ACCEPTED)
    assert (cfg.cluster, cfg.hopfudge, cfg.hbgenmethod, cfg.msgfmt) == (
        "mycluster", 2, "time", "netstring",
    )  # fmt: skip
    assert (cfg.max_rexmit_delay_ms, cfg.uuidfrom, cfg.realtime, cfg.rtprio) == (
        300, "nodename", False, 10,
    )  # fmt: skip
    assert (cfg.debug, cfg.watchdog) == (3, "/dev/watchdog")
    assert cfg.failfast == [("hacluster", ["/usr/lib/heartbeat/ccm"])]
    assert cfg.apiauth["mgmtd"] == (("root",), ())
    assert cfg.params["compression"] == "bz2"
    assert cfg.params["stonith_host"].startswith("* baytech")
    # The stonith_host line comes last and applies to every node (`*`): it is the device.
    assert cfg.stonith is not None and (cfg.stonith.type, cfg.stonith.params) == (
        "baytech", "10.0.0.3 mylogin mysecretpassword")
    assert "mysecretpassword" not in repr(cfg.stonith)
    assert any("serial medium" in w for w in cfg.warnings)
    assert cfg.media == [Medium("bcast", "eth0", 694)]


@pytest.mark.parametrize(
    "line",
    ["compression lzma", "compression_threshold 0", "memreserve -1", "hopfudge 256",
     "debug 256", "debug x", "rtprio 0", "rtprio 100", "hbgenmethod clock", "msgfmt Classic",
     "uuidfrom name", "autojoin some", "max_rexmit_delay 0", "udpport 0", "udpport 65536",
     "udpport ha", "baud 1200", "realtime maybe", "keepalive 0", "keepalive 1s",
     "warntime 0", "conn_logd_time 0", "auto_failback sometimes", "nice_failback perhaps",
     "coredumps 2", "env NOEQUALS", "env =value", "bcast /dev/x", "bcast averyveryverylongifname",
     "node " + "n" * 101, "logfacility local8", "crm perhaps"],
)  # fmt: skip
def test_invalid_values_are_errors_naming_the_line(line: str) -> None:
    error = only_error(MINIMAL + line + "\n")
    assert error.line == 3
    directive, value = line.split(" ", 1)
    assert error.message == f"invalid {directive} [{value}]"
    assert error.hint


@pytest.mark.parametrize("value", ["true", "On", "YES", "y", "1"])
def test_booleans_true(value: str) -> None:
    assert parse(MINIMAL + f"realtime {value}\n").realtime is True


@pytest.mark.parametrize("value", ["false", "OFF", "No", "n", "0"])
def test_booleans_false(value: str) -> None:
    assert parse(MINIMAL + f"realtime {value}\n").realtime is False


@pytest.mark.parametrize(
    "value", ["on", "yes", "respawn", "minimal", "manual", "valgrind", "ccm-only", "TRUE", "y", "1"]
)
@pytest.mark.parametrize("directive", ["crm", "pacemaker"])
def test_crm_true_values_are_refused(directive: str, value: str) -> None:
    error = only_error(MINIMAL + f"{directive} {value}\n")
    assert error.line == 3
    assert "classic haresources mode" in error.message
    assert "Pacemaker/CRM mode" in error.message and "not supported" in error.message
    assert f"`{directive} no`" in error.hint


@pytest.mark.parametrize("value", ["off", "false", "no", "n", "0", "NO"])
def test_crm_false_values_are_accepted(value: str) -> None:
    assert parse(MINIMAL + f"crm {value}\npacemaker {value}\n").nodes == ["node1", "node2"]


@pytest.mark.parametrize("directive", ["ping6", "hbaping", "tipc", "rds"])
def test_unsupported_media_are_errors(directive: str) -> None:
    error = only_error(MINIMAL + f"{directive} eth0 x\n")
    assert "not supported" in error.message and error.line == 3


def test_udp_is_an_alias_for_bcast() -> None:
    cfg = parse("udp eth1\nnode node1\n")
    assert cfg.media == [Medium("bcast", "eth1", 694)]
    assert any("'udp' replaced by 'bcast'" in w for w in cfg.warnings)


# ---- media and the udpport ordering rule ---------------------------------------------------


def test_udpport_applies_only_to_media_after_it() -> None:
    text = (
        "bcast eth0\nudpport 695\nbcast eth1\nucast eth2 10.0.0.2\n"
        "mcast eth3 239.0.0.1 700 2 1\nnode node1\n"
    )
    cfg = parse(text, port=694)
    assert cfg.media == [
        Medium("bcast", "eth0", 694),
        Medium("bcast", "eth1", 695),
        Medium("ucast", "eth2", 695, peer="10.0.0.2"),
        Medium("mcast", "eth3", 700, group="239.0.0.1", ttl=2, loop=1),
    ]
    assert cfg.udpport == 695
    [warning] = [w for w in cfg.warnings if "udpport" in w]
    assert warning.startswith("ha.cf:2:") and "line(s) 1" in warning and "694" in warning


def test_udpport_default_comes_from_services_or_injection() -> None:
    cfg = parse(MINIMAL, port=7000)
    assert cfg.udpport == 7000 and cfg.media[0].port == 7000
    assert cfg.params["udpport"] == "7000"
    real = parse_hacf(MINIMAL, "ha.cf", "node1")
    assert 1 <= real.udpport <= 65535  # 694 unless /etc/services names ha-cluster


def test_udpport_before_media_gives_no_warning_and_mcast_never_does() -> None:
    cfg = parse("mcast eth0 239.0.0.1 694 1 0\nudpport 700\nbcast eth1\nnode node1\n")
    assert not any("udpport" in w for w in cfg.warnings)
    assert [m.port for m in cfg.media] == [694, 700]


def test_mcast_fields_are_validated_together() -> None:
    errors = errors_of("mcast eth0 10.0.0.1 0 5 2\nbcast eth0\nnode node1\n")
    assert [e.message for e in errors] == [
        "invalid mcast group [10.0.0.1]",
        "invalid mcast port [0]",
        "invalid mcast ttl [5]",
        "invalid mcast loop [2]",
    ]
    assert all(e.line == 1 for e in errors)


@pytest.mark.parametrize("ttl", ["0", "1", "4"])
def test_mcast_ttl_range(ttl: str) -> None:
    assert parse(f"mcast eth0 239.1.2.3 694 {ttl} 1\nnode node1\n").media[0].ttl == int(ttl)


def test_mcast_needs_five_fields() -> None:
    error = only_error("mcast eth0 239.0.0.1 694\nbcast eth0\nnode node1\n")
    assert "5 fields" in error.message and "mcast IFACE GROUP PORT TTL LOOP" in error.hint


def test_ucast_uses_first_peer_only() -> None:
    cfg = parse("ucast eth0 10.0.0.2 10.0.0.3\nucast eth0 Node2\nnode node1\n")
    assert [m.peer for m in cfg.media] == ["10.0.0.2", "Node2"]
    assert any("only the first peer" in w for w in cfg.warnings)


def test_ucast_without_peer_is_an_error() -> None:
    assert "peer" in only_error("ucast eth0\nbcast eth0\nnode node1\n").message


def test_no_media_is_an_error() -> None:
    error = only_error("node node1\n")
    assert error.message == "No heartbeat media defined" and error.line is None


# ---- timers --------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = parse(MINIMAL)
    assert (cfg.keepalive_ms, cfg.deadtime_ms, cfg.warntime_ms) == (1000, 30000, 15000)
    assert (cfg.initdead_ms, cfg.deadping_ms) == (30000, 30000)
    assert (cfg.hopfudge, cfg.hbgenmethod, cfg.msgfmt, cfg.max_rexmit_delay_ms) == (
        1, "file", "classic", 250,
    )  # fmt: skip
    assert (cfg.autojoin, cfg.uuidfrom, cfg.cluster, cfg.realtime, cfg.debug) == (
        "none", "file", "linux-ha", True, 0,
    )  # fmt: skip
    assert cfg.auto_failback == "legacy" and cfg.watchdog is None and cfg.rtprio is None
    assert (cfg.logfile, cfg.debugfile, cfg.logfacility, cfg.use_logd) == (None, None, None, True)
    assert cfg.params["keepalive"] == "1000ms" and cfg.params["deadtime"] == "30000ms"
    assert cfg.params["warntime"] == "15000ms" and cfg.params["initdead"] == "30000ms"
    assert cfg.params["auto_failback"] == "legacy" and cfg.params["debug"] == "0"
    assert cfg.params["use_logd"] == "yes"
    assert set(cfg.apiauth) >= {"ipfail", "ccm", "ping", "lha-snmpagent", "anon"}


@pytest.mark.parametrize(
    ("deadtime", "initdead"), [("5", 12000), ("6", 12000), ("8", 16000), ("10", 20000),
                               ("11", 11000), ("10001ms", 10001), ("60", 60000)],
)  # fmt: skip
def test_initdead_default_rule(deadtime: str, initdead: int) -> None:
    cfg = parse(MINIMAL + f"deadtime {deadtime}\n")
    assert cfg.initdead_ms == initdead
    assert cfg.params["initdead"] == f"{initdead}ms"


def test_deadtime_must_exceed_twice_keepalive() -> None:
    error = only_error(MINIMAL + "keepalive 2\ndeadtime 4\n")
    assert error.message == "Dead time [4000] is too small compared to keepalive [2000]"
    assert error.line == 4
    parse(MINIMAL + "keepalive 2\ndeadtime 4001ms\n")
    assert only_error(MINIMAL + "keepalive 15\n").line == 3  # the default deadtime is 30


def test_initdead_below_deadtime_is_an_error_and_below_10s_a_warning() -> None:
    error = only_error(MINIMAL + "deadtime 20\ninitdead 15\n")
    assert "Initial dead time [15000] is smaller than deadtime [20000]" == error.message
    assert error.line == 4
    cfg = parse(MINIMAL + "deadtime 6\ninitdead 8\n")
    assert any("Initial dead time [8000 ms] may be too small" in w for w in cfg.warnings)


def test_warntime_default_and_late_warning() -> None:
    assert parse(MINIMAL + "deadtime 7\n").warntime_ms == 3500
    cfg = parse(MINIMAL + "deadtime 10\nwarntime 10\n")
    assert cfg.warntime_ms == 10000
    assert any("warntime should be less than deadtime" in w for w in cfg.warnings)


def test_deadping_default_and_minimum() -> None:
    assert parse(MINIMAL + "deadtime 12\n").deadping_ms == 12000
    assert parse(MINIMAL + "deadping 5\n").deadping_ms == 5000
    assert "Ping dead time" in only_error(MINIMAL + "keepalive 2\ndeadping 4\n").message


def test_time_units_in_directives() -> None:
    cfg = parse(MINIMAL + "keepalive 500ms\ndeadtime 1.5\nwarntime 1200000us\ninitdead 10\n")
    assert (cfg.keepalive_ms, cfg.deadtime_ms, cfg.warntime_ms) == (500, 1500, 1200)
    assert cfg.params["keepalive"] == "500ms"


# ---- nodes -------------------------------------------------------------------------------


def test_local_node_must_be_listed() -> None:
    error = only_error(MINIMAL, local="other")
    assert "Current node [other] not in configuration" in error.message
    assert "node1" in error.message
    assert "hostname (uname -n) must match a node line" in error.hint


def test_local_node_matching_is_case_insensitive() -> None:
    assert parse(MINIMAL, local="NODE1").local_node == "node1"


def test_no_node_lines_is_an_error() -> None:
    assert only_error("bcast eth0\n").message == "no nodes defined"


def test_autojoin_any_adds_the_local_node() -> None:
    cfg = parse("bcast eth0\nautojoin any\n", local="me")
    assert cfg.nodes == ["me"] and cfg.autojoin == "any"
    assert any("added to configuration" in w for w in cfg.warnings)
    assert any("autojoin" in w for w in cfg.warnings)


def test_too_many_nodes() -> None:
    names = " ".join(f"n{i}" for i in range(101))
    error = only_error(f"bcast eth0\nnode {names}\n", local="n0")
    assert "too many nodes" in error.message


# ---- failback, logging, children, env, ping --------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "mode"),
    [("auto_failback on", "on"), ("auto_failback OFF", "off"), ("auto_failback legacy", "legacy"),
     ("auto_failback yes", "on"), ("nice_failback on", "off"), ("nice_failback off", "legacy"),
     ("nice_failback on\nauto_failback on", "on"), ("auto_failback on\nnice_failback on", "off")],
)  # fmt: skip
def test_failback_modes(lines: str, mode: str) -> None:
    cfg = parse(MINIMAL + lines + "\n")
    assert cfg.auto_failback == mode
    assert any("legacy" in w and "Deprecated" in w for w in cfg.warnings) == (mode == "legacy")
    assert ("nice_failback" in lines) == any("obsolete" in w for w in cfg.warnings)


def test_logging_rules() -> None:
    cfg = parse(MINIMAL + "logfacility daemon\n")
    assert (cfg.logfile, cfg.debugfile, cfg.logfacility, cfg.use_logd) == (
        "/dev/null", "/dev/null", "daemon", False,
    )  # fmt: skip
    cfg = parse(MINIMAL + "logfile /var/log/ha-log\n")
    assert (cfg.logfile, cfg.debugfile, cfg.logfacility) == ("/var/log/ha-log", None, None)
    cfg = parse(MINIMAL + "logfacility none\n")
    assert (cfg.logfacility, cfg.use_logd) == (None, True)
    cfg = parse(MINIMAL + "logfacility LOCAL7\nuse_logd yes\ndebugfile /var/log/ha-debug\n")
    assert (cfg.logfacility, cfg.use_logd, cfg.debugfile) == ("local7", True, "/var/log/ha-debug")
    error = only_error(MINIMAL + "use_logd no\n")
    assert "No log entry found" in error.message and error.line == 3


def test_watchdog_given_twice_is_an_error() -> None:
    error = only_error(MINIMAL + "watchdog /dev/watchdog\nwatchdog /dev/watchdog1\n")
    assert error.line == 4 and "multiply specified" in error.message
    assert "multiply" in only_error(MINIMAL + "baud 9600\nbaud 19200\n").message


def test_respawn(tmp_path) -> None:
    prog = tmp_path / "ipfail"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    cfg = parse(MINIMAL + f"respawn root {prog} -v  -x\nrespawn hacluster /nonexistent/x\n")
    assert cfg.respawn == [("root", [str(prog), "-v", "-x"]), ("hacluster", ["/nonexistent/x"])]
    assert [w for w in cfg.warnings if "executable" in w] == [
        "ha.cf:4: respawn: [/nonexistent/x] is not an executable file on this machine"
    ]
    error = only_error(MINIMAL + "respawn hacluster ipfail\n")
    assert "is not full pathname" in error.message and error.line == 3
    assert "needs a user" in only_error(MINIMAL + "respawn hacluster\n").message


def test_env_names_are_stored_without_the_ha_prefix() -> None:
    cfg = parse(MINIMAL + "env FOO=bar BAZ= X=a=b\n")
    assert cfg.env == {"FOO": "bar", "BAZ": "", "X": "a=b"}


def test_ping_and_ping_groups() -> None:
    cfg = parse(MINIMAL + "ping 10.0.0.254 GW2\nping_group grp 10.0.0.1 10.0.0.2\n")
    assert cfg.ping == ["10.0.0.254", "gw2"]
    assert cfg.ping_groups == {"grp": ["10.0.0.1", "10.0.0.2"]}
    assert "ping_group" in only_error(MINIMAL + "ping_group lonely\n").message


def test_apiauth_validation() -> None:
    cfg = parse(MINIMAL + "apiauth ipfail gid=haclient uid=a,b\n")
    assert cfg.apiauth["ipfail"] == (("a", "b"), ("haclient",))
    assert "Invalid apiauth" in only_error(MINIMAL + "apiauth ipfail\n").message
    assert "Invalid apiauth" in only_error(MINIMAL + "apiauth x user=a\n").message
    twice = "apiauth x uid=a\napiauth x gid=b\n"
    assert "Duplicate apiauth" in only_error(MINIMAL + twice).message


def test_all_errors_are_collected() -> None:
    text = "keepalive x\nbogus\nlogfacility nope\nmcast eth0 1.2.3.4 1 1 1\n"
    errors = errors_of(text)
    assert [e.line for e in errors] == [1, 2, 3, 4, None, None]
    assert errors[-2].message == "No heartbeat media defined"


def test_params_record_values_as_written() -> None:
    cfg = parse(MINIMAL + "deadtime 6\nauto_failback ON\nmcast eth0 239.0.0.9 694 1 0\n")
    assert cfg.params["deadtime"] == "6"
    assert cfg.params["auto_failback"] == "ON"
    assert cfg.params["mcast"] == "eth0 239.0.0.9 694 1 0"
    assert cfg.params["node"] == "node2"


# ---- files -------------------------------------------------------------------------------


def test_load_missing_file_names_it(tmp_path) -> None:
    path = str(tmp_path / "ha.cf")
    with pytest.raises(ConfigErrors) as info:
        load_hacf(path, "node1")
    assert info.value.errors[0].path == path
    assert f"Cannot open config file [{path}]" in str(info.value)


def test_load_uses_nodeinfo_beside_the_file(tmp_path) -> None:
    (tmp_path / "ha.cf").write_text(MINIMAL)
    (tmp_path / "nodeinfo").write_text("Node2\nignored\n")
    assert local_node_name(str(tmp_path)) == "node2"
    cfg = load_hacf(str(tmp_path / "ha.cf"))
    assert cfg.local_node == "node2" and cfg.path == str(tmp_path / "ha.cf")


def test_local_node_name_falls_back_to_uname(tmp_path) -> None:
    assert local_node_name(str(tmp_path)) == os.uname().nodename.lower()


# ---- properties ----------------------------------------------------------------------------

# Any code point (lone surrogates included, as surrogateescape produces them) or the
# characters the grammar cares about.
NASTY = st.text(
    st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        st.sampled_from(list("#\\ \t\r\n\f\v\x00,.:/=0123456789")),
    ),
    max_size=300,
)


DIRECTIVE_WORDS = ["node", "bcast", "mcast", "ucast", "udpport", "keepalive", "deadtime",
                   "warntime", "initdead", "deadping", "auto_failback", "nice_failback", "crm",
                   "logfacility", "logfile", "use_logd", "watchdog", "respawn", "apiauth", "env",
                   "ping", "ping_group", "debug", "autojoin", "bogus", "udp", "baud", "#"]  # fmt: skip
VALUE_WORDS = ["node1", "eth0", "239.0.0.1", "694", "0", "1", "5", "on", "off", "legacy", "x=y",
               "10ms", "1.5", "30s", "local0", "/dev/null", "uid=a", "hacluster", ",", "any", ""]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_arbitrary_text_gives_config_or_config_errors(text: str) -> None:
    try:
        cfg = parse(text)
    except ConfigErrors as exc:
        assert exc.errors and all(isinstance(e, ConfigError) for e in exc.errors)
        assert all(e.line is None or 1 <= e.line <= text.count("\n") + 1 for e in exc.errors)
        str(exc)
    else:
        assert cfg.media and "node1" in cfg.nodes


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(DIRECTIVE_WORDS), st.lists(st.sampled_from(VALUE_WORDS))),
        max_size=12,
    )
)
def test_directive_soup_gives_config_or_config_errors(lines: list[tuple[str, list[str]]]) -> None:
    text = "\n".join(d + " " + " ".join(values) for d, values in lines)
    try:
        cfg = parse(text)
    except ConfigErrors as exc:
        assert exc.errors
    else:
        assert cfg.deadtime_ms > 2 * cfg.keepalive_ms and cfg.initdead_ms >= cfg.deadtime_ms


names = st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    keepalive=st.integers(1, 5000),
    extra=st.integers(1, 60000),
    nodes=st.lists(names, min_size=1, max_size=8, unique=True),
    ifaces=st.lists(st.sampled_from(["eth0", "eth1", "ens3", "bond0"]), min_size=1, max_size=3),
    port=st.integers(1, 65535),
    failback=st.sampled_from(["on", "off", "legacy"]),
    sep=st.sampled_from([" ", ",", ", ", "\t"]),
)
def test_generated_valid_configs_round_trip(
    keepalive: int, extra: int, nodes: list[str], ifaces: list[str], port: int,
    failback: str, sep: str,
) -> None:  # fmt: skip
    deadtime = 2 * keepalive + extra
    text = (
        f"keepalive {keepalive}ms\ndeadtime {deadtime}ms\ninitdead {max(deadtime, 10000)}ms\n"
        f"udpport {port}\nbcast {sep.join(ifaces)}\nauto_failback {failback}\n"
        f"node {sep.join(n.upper() for n in nodes)}\nlogfacility local0\n"
    )
    cfg = parse(text, local=nodes[-1])
    assert cfg.nodes == nodes
    assert (cfg.keepalive_ms, cfg.deadtime_ms, cfg.warntime_ms) == (
        keepalive, deadtime, deadtime // 2,
    )  # fmt: skip
    assert cfg.initdead_ms == max(deadtime, 10000)
    assert cfg.media == [Medium("bcast", i, port) for i in ifaces]
    assert cfg.udpport == port and cfg.auto_failback == failback
