"""haresources parser: spec 9.2 grammar, IP shorthands, script lookup, arbitrary input."""

from __future__ import annotations

import ipaddress
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.haresources import (
    IpSpec,
    Resource,
    ResourceGroup,
    load_haresources,
    parse_haresources,
    parse_ip6_spec,
    parse_ip_spec,
    parse_resource,
    resolve_script,
)
from appliance.errors import ConfigError, ConfigErrors

NODES = ["server1.example.com", "server2.example.com", "server3.example.com"]


def errors_of(text: str, nodes: list[str] | None = NODES) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        parse_haresources(text, "haresources", nodes)
    return info.value.errors


def ip(address: str, prefix=None, iface=None, label=None, bcast=None) -> IpSpec:
    return IpSpec(address, prefix, iface, label, bcast)


# ---- the tutorial ------------------------------------------------------------------------


def test_tutorial_line() -> None:
    [group] = parse_haresources("server1.example.com 192.168.56.200 httpd\n", nodes=NODES)
    assert group == ResourceGroup(
        home="server1.example.com",
        key="192.168.56.200",
        resources=(
            Resource("IPaddr", ("192.168.56.200",), "192.168.56.200", ip("192.168.56.200")),
            Resource("httpd", (), "httpd", None),
        ),
        line=1,
    )


def test_tutorial_multi_service_line() -> None:
    [group] = parse_haresources("server1.example.com 192.168.56.200 httpd smb nmb\n", nodes=NODES)
    assert [r.name for r in group.resources] == ["IPaddr", "httpd", "smb", "nmb"]


# ---- IP specs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("1.2.3.4", ip("1.2.3.4")),
        ("1.2.3.4/24", ip("1.2.3.4", 24)),
        ("1.2.3.4/24/eth0", ip("1.2.3.4", 24, "eth0")),
        ("1.2.3.4/24/eth0/1.2.3.255", ip("1.2.3.4", 24, "eth0", None, "1.2.3.255")),
        ("1.2.3.4/24/1.2.3.255", ip("1.2.3.4", 24, None, None, "1.2.3.255")),
        ("10.0.0.1/255.255.255.0", ip("10.0.0.1", 24)),
        ("10.0.0.1/255.255.255.255/lo", ip("10.0.0.1", 32, "lo")),
        ("10.0.0.1/128.0.0.0", ip("10.0.0.1", 1)),
        ("10.0.0.1/255.255.240.0/bond0", ip("10.0.0.1", 20, "bond0")),
        ("10.0.0.1/1", ip("10.0.0.1", 1)),
        ("10.0.0.1/32", ip("10.0.0.1", 32)),
        ("10.0.0.1/24/eth0:web", ip("10.0.0.1", 24, "eth0", "eth0:web")),
        ("10.0.0.1//eth1", ip("10.0.0.1", None, "eth1")),
        ("0.0.0.0", ip("0.0.0.0")),
        ("255.255.255.255", ip("255.255.255.255")),
    ],
)
def test_ip_spec_forms(text: str, spec: IpSpec) -> None:
    assert parse_ip_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.2.3.256", "above 255"), ("1.2.3", "not a dotted"), ("1.2.3.4.5", "not a dotted"),
        ("a.b.c.d", "not a dotted"), ("01.2.3.4", "leading zero"), ("1.2.3.4/0", "1..32"),
        ("1.2.3.4/33", "1..32"), ("1.2.3.4/255.0.255.0", "contiguous"),
        ("1.2.3.4/0.0.0.0", "contiguous"), ("1.2.3.4/255.255.255.1", "contiguous"),
        ("1.2.3.4/24/1.2.3.999", "above 255"), ("1.2.3.4/24/eth0/x", "not a dotted"),
        ("1.2.3.4/24/1.2.3.255/eth0", "last part"), ("1.2.3.4/24/eth0/1.2.3.255/x", "too many"),
        ("1.2.3.4/24/averyveryverylongname", "interface"),
        ("1.2.3.4/24/eth0:averylonglabel", "label"), ("1.2.3.4/24/eth0:", "label"),
        ("1.2.3.4/24/:web", "interface"), ("1.2.3.4/x", "not a dotted"), ("", "not a dotted"),
        ("\u0661.2.3.4", "not a dotted"),
    ],
)  # fmt: skip
def test_ip_spec_errors(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_ip_spec(text)


@given(st.integers(1, 32))
def test_dotted_and_bit_masks_agree(bits: int) -> None:
    value = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    dotted = ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))
    assert parse_ip_spec(f"10.1.2.3/{dotted}").prefixlen == bits
    assert parse_ip_spec(f"10.1.2.3/{bits}").prefixlen == bits


octet = st.integers(0, 255).map(str)
addresses = st.tuples(octet, octet, octet, octet).map(".".join)


@given(
    addresses,
    st.one_of(st.none(), st.integers(1, 32)),
    st.one_of(st.none(), st.sampled_from(["eth0", "ens18", "bond0.100", "br-lan"])),
    st.one_of(st.none(), addresses),
)
def test_generated_ip_specs_round_trip(address: str, prefix, iface, bcast) -> None:
    text = address
    if prefix is not None or iface is not None or bcast is not None:
        text += "/" + ("" if prefix is None else str(prefix))
    if iface is not None:
        text += "/" + iface
    if bcast is not None:
        text += "/" + bcast
    assert parse_ip_spec(text) == ip(address, prefix, iface, None, bcast)


@settings(max_examples=300)
@given(st.text(st.one_of(st.characters(), st.sampled_from(list("0123456789./:"))), max_size=60))
def test_ip_spec_only_raises_value_error(text: str) -> None:
    try:
        parse_ip_spec(text)
    except ValueError:
        pass


# ---- resources -----------------------------------------------------------------------------


def test_script_with_args() -> None:
    res = parse_resource("Filesystem::/dev/sdb1::/data::ext4")
    assert res == Resource("Filesystem", ("/dev/sdb1", "/data", "ext4"), res.text, None)


def test_empty_args_vanish_like_shell_word_splitting() -> None:
    assert parse_resource("pbres::alpha::::beta::").args == ("alpha", "beta")


def test_ipaddr_and_ipaddr2_resources() -> None:
    res = parse_resource("IPaddr::10.0.0.5/24/eth0")
    assert res.name == "IPaddr" and res.args == ("10.0.0.5/24/eth0",)
    assert res.ip == ip("10.0.0.5", 24, "eth0")
    res2 = parse_resource("IPaddr2::10.0.0.6/24/eth0:web")
    assert res2.ip == ip("10.0.0.6", 24, "eth0", "eth0:web")


@pytest.mark.parametrize(
    ("token", "why"),
    [("IPaddr::10.0.0.5/24/eth0:web", "IPaddr2 for a label"), ("10.0.0.5/24/eth0:0", "IPaddr2"),
     ("IPaddr", "needs an address"), ("IPaddr2::", "needs an address"),
     ("IPaddr::10.0.0.300", "above 255"), ("::x", "name"), ("../x", "not a path"),
     ("a/b::c", "not a path"), ("ht\x0btpd", "control"), ("192.168.1.1x", "not a dotted")],
)  # fmt: skip
def test_bad_resources(token: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_resource(token)


# ---- file grammar ------------------------------------------------------------------------


def test_comments_blanks_and_collapsing() -> None:
    text = (
        "# comment\n\n  \t \n"
        "server1.example.com\t 10.0.0.1   httpd # trailing comment\n"
        "  SERVER2.example.com  pbres::alpha\r\n"
    )
    groups = parse_haresources(text, nodes=NODES)
    assert [(g.home, g.key, g.line) for g in groups] == [
        ("server1.example.com", "10.0.0.1", 4),
        ("server2.example.com", "pbres::alpha", 5),
    ]


def test_backslash_continuation_reports_first_line() -> None:
    text = (
        "server1.example.com 10.0.0.1 \\\n"
        "   # a comment line inside the continuation\n"
        "\n"
        "  httpd \\\n"
        "  smb\n"
        "server2.example.com ab\\\n"
        "cd\n"
    )
    groups = parse_haresources(text, nodes=NODES)
    assert [r.text for r in groups[0].resources] == ["10.0.0.1", "httpd", "smb"]
    assert groups[0].line == 1
    assert groups[1].key == "abcd" and groups[1].line == 6  # joined without a space, as sed


def test_backslash_then_blanks_does_not_continue() -> None:
    errors = errors_of("server1.example.com 10.0.0.1 \\  \nhttpd\n")
    assert [(e.line, e.message) for e in errors] == [
        (2, "Bad nodename in haresources [httpd]"),
        (2, "no resources for node [httpd]"),
    ]


def test_trailing_backslash_on_last_line() -> None:
    [group] = parse_haresources("server1.example.com httpd \\", nodes=NODES)
    assert group.key == "httpd"


def test_bad_nodename_lists_the_nodes() -> None:
    [error] = errors_of("server1.example.com httpd\nserver9 smb\n")
    assert (error.line, error.message) == (2, "Bad nodename in haresources [server9]")
    assert "server1.example.com, server2.example.com" in error.hint


def test_nodes_none_skips_the_node_check() -> None:
    [group] = parse_haresources("AnyNode httpd\n")
    assert group.home == "anynode"


def test_node_without_resources() -> None:
    [error] = errors_of("server1.example.com\n")
    assert error.message == "no resources for node [server1.example.com]"


def test_duplicate_group_keys() -> None:
    [error] = errors_of("server1.example.com httpd\nserver2.example.com httpd smb\n")
    assert error.line == 2 and "duplicate group key [httpd]" in error.message
    assert "line 1" in error.message


def test_bad_ip_in_file_names_line_and_token() -> None:
    [error] = errors_of("server1.example.com 10.0.0.1/33 httpd\n")
    assert error.line == 1 and error.path == "haresources"
    assert error.message.startswith("invalid resource [10.0.0.1/33]")
    assert "a.b.c.d/24/eth0" in error.hint


def test_all_errors_collected() -> None:
    text = "bad1 x\nserver1.example.com 1.2.3.999\nserver1.example.com\nserver2.example.com x\n"
    errors = errors_of(text)
    assert [e.line for e in errors] == [1, 2, 3, 4]


def test_non_utf8_token(tmp_path) -> None:
    path = tmp_path / "haresources"
    path.write_bytes(b"# caf\xe9 comment\nserver1.example.com ht\xe9pd\n")
    with pytest.raises(ConfigErrors) as info:
        load_haresources(str(path), NODES)
    assert info.value.errors[0].line == 2


# ---- files -------------------------------------------------------------------------------


def test_load_missing_file_means_no_groups(tmp_path) -> None:
    assert load_haresources(str(tmp_path / "haresources"), NODES) == []


def test_load_file(tmp_path) -> None:
    path = tmp_path / "haresources"
    path.write_text("server1.example.com 192.168.56.200 httpd\n")
    [group] = load_haresources(str(path), NODES)
    assert group.key == "192.168.56.200"


def test_load_unreadable_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigErrors, match="Cannot open resources file"):
        load_haresources(str(tmp_path), NODES)  # a directory


def test_resolve_script(tmp_path) -> None:
    first, second = tmp_path / "resource.d", tmp_path / "init.d"
    first.mkdir()
    second.mkdir()
    for directory, name, mode in [(first, "IPaddr", 0o755), (second, "IPaddr", 0o755),
                                  (first, "httpd", 0o644), (second, "httpd", 0o755)]:  # fmt: skip
        (directory / name).write_text("#!/bin/sh\n")
        os.chmod(directory / name, mode)
    (first / "smb").mkdir()
    dirs = (str(first), str(second))
    assert resolve_script("IPaddr", dirs) == str(first / "IPaddr")
    assert resolve_script("httpd", dirs) == str(second / "httpd")  # not executable in first
    assert resolve_script("smb", dirs) is None  # a directory
    assert resolve_script("missing", dirs) is None
    assert resolve_script("../init.d/httpd", dirs) is None
    assert resolve_script("", dirs) is None
    assert resolve_script("x\x00y", dirs) is None


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



@settings(max_examples=300, deadline=None)
@given(NASTY, st.sampled_from([None, NODES]))
def test_arbitrary_text_gives_groups_or_config_errors(text: str, nodes) -> None:
    try:
        groups = parse_haresources(text, "haresources", nodes)
    except ConfigErrors as exc:
        assert exc.errors
        assert all(e.line is None or 1 <= e.line <= text.count("\n") + 1 for e in exc.errors)
        str(exc)
    else:
        assert len({g.key for g in groups}) == len(groups)
        assert all(g.resources for g in groups)


resource_tokens = st.one_of(
    addresses,
    st.sampled_from(["httpd", "smb", "Filesystem::/dev/sdb1::/data::ext4", "pbres::alpha"]),
    addresses.map(lambda a: f"IPaddr2::{a}/24/eth0:v"),
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(NODES), st.lists(resource_tokens, min_size=1, max_size=4)),
        max_size=6,
    ).filter(lambda lines: len({r[0] for _, r in lines}) == len(lines))
)
def test_generated_files_round_trip(lines) -> None:
    text = "\n".join(f"{node.upper()}  {' '.join(res)}" for node, res in lines)
    groups = parse_haresources(text, nodes=NODES)
    assert [(g.home, g.key, g.line) for g in groups] == [
        (node, res[0], i + 1) for i, (node, res) in enumerate(lines)
    ]
    for group, (_, res) in zip(groups, lines):
        assert [r.text for r in group.resources] == res
        for r in group.resources:
            assert (r.ip is not None) == (r.name in ("IPaddr", "IPaddr2"))


# ---- IPv6 (IPv6addr::, IPaddr2:: with an IPv6 address) -----------------------------------


def ip6(address: str, prefix=None, iface=None, nodad=False, router=False) -> IpSpec:
    return IpSpec(address, prefix, iface, None, None, 6, nodad, router)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("2001:db8::10", ip6("2001:db8::10")),
        ("2001:db8::10/64", ip6("2001:db8::10", 64)),
        ("2001:db8::10/64/eth0", ip6("2001:db8::10", 64, "eth0")),
        ("2001:DB8:0:0:0:0:0:10/64", ip6("2001:db8::10", 64)),  # canonical text
        ("2001:db8::10//eth1", ip6("2001:db8::10", None, "eth1")),
        ("2001:db8::10/128/lo", ip6("2001:db8::10", 128, "lo")),
        ("2001:db8::10/64/eth0/nodad", ip6("2001:db8::10", 64, "eth0", nodad=True)),
        ("2001:db8::10/64/eth0/router/nodad", ip6("2001:db8::10", 64, "eth0", True, True)),
        ("2001:db8::10/64/nodad", ip6("2001:db8::10", 64, nodad=True)),
        ("2001:db8::10/64//router", ip6("2001:db8::10", 64, router=True)),
        ("fd00:56::1/48/bond0.100", ip6("fd00:56::1", 48, "bond0.100")),
    ],
)
def test_ip6_spec_forms(text: str, spec: IpSpec) -> None:
    assert parse_ip6_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2001:db8::10/0", "1..128"), ("2001:db8::10/129", "1..128"), ("2001:db8::10/x", "1..128"),
        ("2001:db8::10/255.255.255.0", "1..128"), ("2001:db8::g", "not an IPv6"),
        ("10.0.0.1", "not an IPv6"), ("ff02::1", "not a unicast"), ("::", "not a unicast"),
        ("::1", "not a unicast"), ("fe80::1/64/eth0", "link-local"),
        ("::ffff:10.0.0.1", "IPv4-mapped"), ("2001:db8::10%eth0", "zone"),
        ("2001:db8::10/64/eth0:web", "no labels"), ("2001:db8::10/64/2001:db8::ff", "broadcast"),
        ("2001:db8::10/64/eth0/bogus", "not an option"), ("2001:db8::10/64/eth0/nodad/nodad", "twice"),
        ("2001:db8::10/64/eth0/eth1", "not an option"),
        ("2001:db8::10/64/averyveryverylongname", "interface"), ("", "not an IPv6"),
    ],
)  # fmt: skip
def test_ip6_spec_errors(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_ip6_spec(text)


def test_ipv6addr_resource_keeps_its_colons() -> None:
    # ResourceManager would split at '::'; the whole rest is the agent's one argument.
    res = parse_resource("IPv6addr::2001:db8::10/64/eth0")
    assert res == Resource("IPv6addr", ("2001:db8::10/64/eth0",), res.text,
                           ip6("2001:db8::10", 64, "eth0"))
    res2 = parse_resource("IPaddr2::2001:db8::11/64/eth0/nodad")
    assert res2.name == "IPaddr2" and res2.args == ("2001:db8::11/64/eth0/nodad",)
    assert res2.ip == ip6("2001:db8::11", 64, "eth0", nodad=True)
    # IPv4 IPaddr2 is untouched by the IPv6 path.
    assert parse_resource("IPaddr2::10.0.0.6/24/eth0:web").ip == ip("10.0.0.6", 24, "eth0", "eth0:web")


@pytest.mark.parametrize(
    ("token", "why"),
    [("IPv6addr", "needs an address"), ("IPv6addr::", "needs an address"),
     ("IPv6addr::10.0.0.1", "not an IPv6"), ("IPaddr::2001:db8::10/64", "IPv4 only"),
     ("2001:db8::10/64", "bare IPv6"), ("fd00::10", "bare IPv6"), ("IPv6addr::fe80::1", "link-local")],
)  # fmt: skip
def test_bad_ipv6_resources(token: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_resource(token)


def test_ipv6_errors_in_a_file_name_line_and_ipv6_forms() -> None:
    text = "server1.example.com 192.168.56.200 httpd\nserver2.example.com IPv6addr::2001:db8::1/200 x\n"
    [error] = errors_of(text)
    assert (error.path, error.line) == ("haresources", 2)
    assert error.message.startswith("invalid resource [IPv6addr::2001:db8::1/200]: prefix length")
    assert "IPv6addr::2001:db8::10/64/eth0" in error.hint and "nodad" in error.hint
    [bare] = errors_of("server1.example.com 2001:db8::10/64 httpd\n")
    assert "IPv6addr::2001:db8::10/64" in bare.message and "IPv6 forms" in bare.hint


v6_global = st.ip_addresses(v=6).filter(
    lambda a: not (a.is_multicast or a.is_unspecified or a.is_loopback or a.is_link_local
                   or a.ipv4_mapped is not None))


@given(
    v6_global,
    st.one_of(st.none(), st.integers(1, 128)),
    st.one_of(st.none(), st.sampled_from(["eth0", "ens18", "bond0.100", "br-lan"])),
    st.lists(st.sampled_from(["nodad", "router"]), unique=True),
    st.booleans(),
)
def test_generated_ip6_specs_round_trip(address, prefix, iface, options, exploded: bool) -> None:
    text = address.exploded if exploded else str(address)
    parts = [text, "" if prefix is None else str(prefix), iface or "", *options]
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    spec = ip6(str(address), prefix, iface, "nodad" in options, "router" in options)
    assert parse_ip6_spec("/".join(parts)) == spec
    for name in ("IPv6addr", "IPaddr2"):
        res = parse_resource(f"{name}::" + "/".join(parts))
        assert res.ip == spec and res.args == ("/".join(parts),)
    [group] = parse_haresources(f"server1.example.com IPv6addr::{'/'.join(parts)} httpd\n", nodes=NODES)
    assert group.resources[0].ip == spec and group.resources[1].ip is None


@settings(max_examples=300)
@given(st.text(st.one_of(st.characters(), st.sampled_from(list("0123456789abcdef:/%"))), max_size=60))
def test_ip6_spec_only_raises_value_error(text: str) -> None:
    try:
        spec = parse_ip6_spec(text)
    except ValueError:
        return
    assert spec.family == 6 and spec.label is None and spec.broadcast is None
    assert spec.address == str(ipaddress.IPv6Address(spec.address))


@settings(max_examples=200, deadline=None)
@given(st.text(st.one_of(st.characters(), st.sampled_from(list("0123456789abcdef:/"))), max_size=40))
def test_any_ipv6addr_token_gives_a_resource_or_value_error(rest: str) -> None:
    try:
        res = parse_resource("IPv6addr::" + rest)
    except ValueError:
        return
    assert res.ip is not None and res.ip.family == 6 and res.args == (rest,)
