"""ha.cf mcast6 / ucast6 (3.0.6's IPv6 media plugins) and their sockaddrs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import media6
from appliance.config.hacf import Medium, parse_hacf
from appliance.errors import ConfigErrors
from appliance.net.media import destination_ipv6

HEAD = "logfacility local0\nauto_failback on\n"  # lines 1-2
NODES = "node node1 node2\n"


def parse(body: str):
    return parse_hacf(HEAD + body + NODES, "ha.cf", "node1", udpport_default=694)


def only_error(body: str):
    with pytest.raises(ConfigErrors) as info:
        parse(body)
    errors = [e for e in info.value.errors if "No heartbeat media" not in e.message]
    assert len(errors) == 1, errors
    return errors[0]


def test_mcast6_and_ucast6_lines() -> None:
    cfg = parse("mcast6 eth0 FF12::1:2:3:4 694 1 0\nucast6 eth1 2001:DB8::2\nucast6 eth1 fe80::2%eth1\n")
    assert cfg.media == [
        Medium("mcast6", "eth0", 694, group="ff12::1:2:3:4", ttl=1, loop=0),
        Medium("ucast6", "eth1", 694, peer="2001:db8::2"),
        Medium("ucast6", "eth1", 694, peer="fe80::2"),
    ]


def test_ucast6_port_is_read_once_like_the_306_plugin() -> None:
    cfg = parse("udpport 700\nucast6 eth0 2001:db8::2\nudpport 800\nucast6 eth0 2001:db8::3\n")
    assert [m.port for m in cfg.media] == [700, 700]
    assert any("keeps port 700" in w for w in cfg.warnings)
    assert any("udpport setting must precede media" in w for w in cfg.warnings)


def test_extra_fields_are_warnings() -> None:
    cfg = parse("mcast6 eth0 ff12::1 694 1 0 junk\nucast6 eth0 2001:db8::2 2001:db8::3\n")
    assert len(cfg.media) == 2
    assert any("extra fields ignored: junk" in w for w in cfg.warnings)
    assert any("only the first peer" in w for w in cfg.warnings)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mcast6", "mcast6 statement without device"),
        ("mcast6 eth0 ff12::1 694 1", "mcast6 needs 5 fields"),
        ("mcast6 eth0 ff0e::1 694 1 0", "invalid mcast6 group [ff0e::1]"),  # global scope
        ("mcast6 eth0 ff11::1 694 1 0", "invalid mcast6 group"),  # interface-local
        ("mcast6 eth0 ff32::1 694 1 0", "invalid mcast6 group"),  # prefix-based flags
        ("mcast6 eth0 ff12:: 694 1 0", "invalid mcast6 group"),  # all zero after the scope
        ("mcast6 eth0 2001:db8::1 694 1 0", "invalid mcast6 group"),
        ("mcast6 eth0 239.0.0.1 694 1 0", "invalid mcast6 group"),
        ("mcast6 eth0 ff12::1 0 1 0", "invalid mcast6 port [0]"),
        ("mcast6 eth0 ff12::1 ha-cluster 1 0", "invalid mcast6 port"),
        ("mcast6 eth0 ff12::1 694 5 0", "invalid mcast6 hops [5]"),
        ("mcast6 eth0 ff12::1 694 1 2", "invalid mcast6 loop [2]"),
        ("mcast6 averyveryverylongname ff12::1 694 1 0", "invalid interface"),
        ("ucast6", "ucast6 needs an interface and a peer"),
        ("ucast6 eth0", "ucast6 needs an interface and a peer"),
        ("ucast6 eth0 peer.example.com", "invalid ucast6 peer"),
        ("ucast6 eth0 ff02::1", "multicast, unspecified or loopback"),
        ("ucast6 eth0 ::1", "multicast, unspecified or loopback"),
        ("ucast6 eth0 ::", "multicast, unspecified or loopback"),
        ("ucast6 eth0 fe80::2%eth1", "zone %eth1 is not the medium's interface eth0"),
        ("ucast6 eth0 10.0.0.2", "invalid ucast6 peer"),
    ],
)
def test_bad_lines_name_file_line_and_syntax(line: str, message: str) -> None:
    error = only_error(line + "\n")
    assert (error.path, error.line) == ("ha.cf", 3)
    assert message in error.message
    assert error.hint


def test_valid_group_scopes() -> None:
    for group in ("ff02::694", "ff12::1:2:3:4", "ff04::1", "ff05::1", "ff08::1", "ff15::9"):
        assert media6.mcast6_group(group) == group


@given(st.ip_addresses(v=6))
def test_group_check_never_crashes(addr) -> None:
    try:
        group = media6.mcast6_group(str(addr))
    except media6.Invalid:
        return
    assert addr.is_multicast and group == str(addr)


def test_destinations() -> None:
    # An interface that does not exist gets scope id 0: sends then fail and are counted.
    assert destination_ipv6(Medium("ucast6", "nosuchif0", 694, peer="2001:db8::2")) == (
        "2001:db8::2", 694, 0, 0)
    assert destination_ipv6(Medium("ucast6", "lo", 694, peer="fe80::2"))[3] > 0  # scoped
    assert destination_ipv6(Medium("mcast6", "lo", 700, group="ff12::1"))[1:3] == (700, 0)
    assert destination_ipv6(Medium("ucast6", "lo", 694)) is None
