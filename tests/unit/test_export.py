"""`heartbeat export`: the Pacemaker configuration equivalent to ha.cf + haresources.

The --cib output is checked by Pacemaker itself: crm_verify (schema and scheduler) and
crm_simulate (where the scheduler places each group as nodes leave and come back), both on a
CIB file, no cluster needed.  --pcs and --crm are parsed back and must describe exactly what
the CIB describes.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from appliance.config import haresources
from appliance.config.extension import Extension, MonitorSettings
from appliance.config.hacf import HaConfig, parse_hacf
from appliance.config.haresources import ResourceGroup, parse_haresources
from appliance.export import export

TUTORIAL_HACF = """\
logfile        /var/log/ha-log
logfacility     local0
keepalive 2
deadtime 15
initdead 120
udpport        694
bcast   eth0
node   server1.example.com
node   server2.example.com
node   server3.example.com
"""
TUTORIAL_HARESOURCES = "server1.example.com 192.168.56.200 httpd\n"
TWO_NODE_OFF = "bcast eth0\nnode alpha beta\nauto_failback off\n"


def config(hacf: str, hares: str, local: str | None = None) -> tuple[HaConfig, list[ResourceGroup]]:
    nodes = [line.split()[1:] for line in hacf.splitlines() if line.startswith("node")]
    cfg = parse_hacf(hacf, "ha.cf", local or nodes[0][0], udpport_default=694)
    return cfg, parse_haresources(hares, "haresources", cfg.nodes)


def all_formats(cfg, groups, ext=None, locate=None) -> dict[str, str]:
    return {fmt: export(fmt, cfg, groups, ext, locate) for fmt in ("pcs", "crm", "cib")}


# ---- Pacemaker's own tools ------------------------------------------------------------------


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} missing (pacemaker-cli-utils, installed by scripts/setup)")
        pytest.skip(f"{tool} not installed (pacemaker-cli-utils)")
    return path


def crm_verify(xml: str, tmp_path) -> None:
    path = tmp_path / "cib.xml"
    path.write_text(xml)
    p = subprocess.run([need("crm_verify"), "-V", "--xml-file", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "error" not in (p.stdout + p.stderr).lower(), p.stdout + p.stderr


def placement(cib: str, tmp_path, *steps: list[str]) -> list[dict[str, str]]:
    """Run crm_simulate step by step (each step a list of -u/-d NODE), with quorum; after each
    step, group id -> the node running it, from crm_mon on the simulated CIB."""
    need("crm_simulate")
    need("crm_mon")
    current = tmp_path / "sim-0.xml"
    current.write_text(cib)
    seen = []
    for i, step in enumerate(steps, 1):
        out = tmp_path / f"sim-{i}.xml"
        p = subprocess.run(["crm_simulate", "-x", str(current), "-S", "-q", "1", *step, "-O", str(out)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        mon = subprocess.run(["crm_mon", "-1", "--output-as=xml"], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, CIB_file=str(out)))
        assert mon.returncode == 0, mon.stdout + mon.stderr
        where = {}
        for g in ET.fromstring(mon.stdout).iter("group"):
            nodes = {n.get("name") for r in g.iter("resource") for n in r.findall("node")}
            assert len(nodes) <= 1, (g.get("id"), nodes)   # a group runs on one node
            where[g.get("id")] = nodes.pop() if nodes else None
        seen.append(where)
        current = out
    return seen


def up(*nodes: str) -> list[str]:
    return [a for n in nodes for a in ("-u", n)]


def down(*nodes: str) -> list[str]:
    return [a for n in nodes for a in ("-d", n)]


# ---- parsing the three outputs back into one shape -----------------------------------------


def model() -> dict:
    return {"properties": {}, "defaults": {}, "groups": [], "locations": []}


def from_cib(xml: str) -> dict:
    root = ET.fromstring(xml)
    m = model()
    m["properties"] = {nv.get("name"): nv.get("value") for nv in root.iter("cluster_property_set")
                       for nv in nv.findall("nvpair")}
    m["defaults"] = {nv.get("name"): nv.get("value") for nv in root.findall(
        "configuration/rsc_defaults/meta_attributes/nvpair")}
    for g in root.iter("group"):
        members = []
        for p in g.findall("primitive"):
            agent = ":".join(x for x in (p.get("class"), p.get("provider"), p.get("type")) if x)
            params = {nv.get("name"): nv.get("value") for nv in p.findall("instance_attributes/nvpair")}
            ops = [(o.get("name"), o.get("interval"), o.get("timeout")) for o in p.findall("operations/op")]
            members.append((p.get("id"), agent, params, ops))
        meta = {nv.get("name"): nv.get("value") for nv in g.findall("meta_attributes/nvpair")}
        m["groups"].append((g.get("id"), members, meta))
    m["locations"] = [(c.get("rsc"), c.get("node"), int(c.get("score")))
                      for c in root.iter("rsc_location")]
    return m


def _pairs(words: list[str]) -> dict[str, str]:
    return dict(w.split("=", 1) for w in words)


def _ops(words: list[str]) -> list[tuple]:
    ops, current = [], None
    for w in words:
        if "=" not in w:
            current = {"name": w}
            ops.append(current)
        else:
            k, v = w.split("=", 1)
            current[k] = v
    return [(o["name"], o.get("interval"), o.get("timeout")) for o in ops]


def from_pcs(text: str) -> dict:
    m = model()
    groups: dict[str, tuple] = {}
    assert text.splitlines()[-1] == 'pcs cluster cib-push "$CIB"'
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] != ["pcs", "-f"]:
            continue
        assert words[2] == "$CIB"
        cmd = words[3:]
        if cmd[:2] == ["property", "set"]:
            m["properties"].update(_pairs(cmd[2:]))
        elif cmd[:2] == ["resource", "defaults"]:
            m["defaults"].update(_pairs(cmd[2:]))
        elif cmd[:2] == ["resource", "create"]:
            rid, agent, rest = cmd[2], cmd[3], cmd[4:]
            assert rest[-2] == "--group"
            gid, rest = rest[-1], rest[:-2]
            cut = rest.index("op")
            if gid not in groups:
                groups[gid] = (gid, [], {})
                m["groups"].append(groups[gid])
            groups[gid][1].append((rid, agent, _pairs(rest[:cut]), _ops(rest[cut + 1:])))
        elif cmd[:2] == ["resource", "meta"]:
            groups[cmd[2]][2].update(_pairs(cmd[3:]))
        elif cmd[:2] == ["constraint", "location"]:
            assert cmd[3] == "prefers"
            node, score = cmd[4].split("=")
            m["locations"].append((cmd[2], node, int(score)))
        else:
            raise AssertionError(f"unexpected pcs command: {line}")
    return m


def from_crm(text: str) -> dict:
    m = model()
    prims: dict[str, tuple] = {}
    for stmt in text.replace("\\\n", " ").splitlines():
        words = shlex.split(stmt, comments=True)
        if not words:
            continue
        kind, rest = words[0], words[1:]
        if kind == "property":
            m["properties"].update(_pairs(rest[1:]))
        elif kind == "rsc_defaults":
            m["defaults"].update(_pairs(rest[1:]))
        elif kind == "primitive":
            rid, agent, params, ops = rest[0], rest[1], {}, []
            i = 2
            while i < len(rest):
                section = rest[i]
                j = i + 1
                while j < len(rest) and rest[j] not in ("params", "op"):
                    j += 1
                if section == "params":
                    params = _pairs(rest[i + 1:j])
                else:
                    ops += _ops(rest[i + 1:j])
                i = j
            prims[rid] = (rid, agent, params, ops)
        elif kind == "group":
            cut = rest.index("meta") if "meta" in rest else len(rest)
            m["groups"].append((rest[0], [prims[r] for r in rest[1:cut]], _pairs(rest[cut + 1:])))
        elif kind == "location":
            assert rest[2].endswith(":")
            m["locations"].append((rest[1], rest[3], int(rest[2][:-1])))
        else:
            raise AssertionError(f"unexpected crm statement: {stmt}")
    return m


def check_all(cfg, groups, tmp_path, ext=None, locate=None) -> dict:
    """crm_verify accepts the CIB; pcs and crm say exactly the same; returns the model."""
    out = all_formats(cfg, groups, ext, locate)
    crm_verify(out["cib"], tmp_path)
    m = from_cib(out["cib"])
    assert from_pcs(out["pcs"]) == m
    assert from_crm(out["crm"]) == m
    return m


def primitives(m: dict) -> list[tuple]:
    return [p for _gid, members, _meta in m["groups"] for p in members]


# ---- the scenarios ---------------------------------------------------------------------------


def test_tutorial_three_nodes(tmp_path) -> None:
    cfg, groups = config(TUTORIAL_HACF, TUTORIAL_HARESOURCES)
    m = check_all(cfg, groups, tmp_path)
    [(gid, members, meta)] = m["groups"]
    assert gid == "grp-ip-192.168.56.200" and meta == {}
    assert [(p[0], p[1], p[2]) for p in members] == [
        ("ip-192.168.56.200", "ocf:heartbeat:IPaddr2", {"ip": "192.168.56.200"}),
        ("httpd", "lsb:httpd", {}),
    ]
    ip_ops, lsb_ops = members[0][3], members[1][3]
    assert ip_ops == [("monitor", "10s", "30s"), ("start", "0s", "120s"), ("stop", "0s", "120s")]
    assert lsb_ops[0] == ("monitor", "30s", "30s")
    # home first, then the takeover order: server2, server3
    assert m["locations"] == [(gid, "server1.example.com", 100), (gid, "server2.example.com", 2),
                              (gid, "server3.example.com", 1)]
    assert m["defaults"] == {"resource-stickiness": "0"}          # legacy: fails back like on
    assert m["properties"] == {"stonith-enabled": "false"}        # 3 nodes: default quorum policy
    text = export("crm", cfg, groups)
    assert "WARNING: stonith-enabled=false" in text


def test_tutorial_placement_follows_the_takeover_rule(tmp_path) -> None:
    """Pacemaker's scheduler, simulated: home first, then the next node in takeover order,
    then back home (auto_failback on)."""
    hacf = TUTORIAL_HACF + "auto_failback on\n"
    cfg, groups = config(hacf, TUTORIAL_HARESOURCES + "server3.example.com 192.168.56.201 smb\n")
    s1, s2, s3 = "server1.example.com", "server2.example.com", "server3.example.com"
    g1, g3 = "grp-ip-192.168.56.200", "grp-ip-192.168.56.201"
    seen = placement(export("cib", cfg, groups), tmp_path, up(s1, s2, s3), down(s1), down(s3),
                     up(s1, s3))
    assert seen == [{g1: s1, g3: s3}, {g1: s2, g3: s3}, {g1: s2, g3: s2}, {g1: s1, g3: s3}]


def test_two_nodes_auto_failback_off(tmp_path) -> None:
    cfg, groups = config(TWO_NODE_OFF, "alpha 10.0.0.10 httpd\n")
    m = check_all(cfg, groups, tmp_path)
    assert m["properties"] == {"stonith-enabled": "false", "no-quorum-policy": "ignore"}
    assert m["defaults"] == {"resource-stickiness": "1000"}
    assert m["locations"] == [("grp-ip-10.0.0.10", "alpha", 100)]   # two nodes: home only
    # stays on beta after alpha comes back (sticky), as Heartbeat with auto_failback off
    seen = placement(export("cib", cfg, groups), tmp_path, up("alpha", "beta"), down("alpha"),
                     up("alpha"))
    assert [s["grp-ip-10.0.0.10"] for s in seen] == ["alpha", "beta", "beta"]


def test_several_groups_with_different_homes(tmp_path) -> None:
    hares = ("server2.example.com 192.168.56.210 httpd\n"
             "server1.example.com 192.168.56.211 mysql\n"
             "server3.example.com 192.168.56.212 httpd smb\n")
    cfg, groups = config(TUTORIAL_HACF, hares)
    m = check_all(cfg, groups, tmp_path)
    assert [g[0] for g in m["groups"]] == ["grp-ip-192.168.56.210", "grp-ip-192.168.56.211",
                                           "grp-ip-192.168.56.212"]
    assert [p[0] for p in primitives(m)] == ["ip-192.168.56.210", "httpd", "ip-192.168.56.211",
                                             "mysql", "ip-192.168.56.212", "httpd-2", "smb"]
    assert primitives(m)[5][1] == "lsb:httpd"             # same script, unique id
    homes = {(rsc, node) for rsc, node, score in m["locations"] if score == 100}
    assert homes == {("grp-ip-192.168.56.210", "server2.example.com"),
                     ("grp-ip-192.168.56.211", "server1.example.com"),
                     ("grp-ip-192.168.56.212", "server3.example.com")}
    order = [n for rsc, n, _s in m["locations"] if rsc == "grp-ip-192.168.56.212"]
    assert order == ["server3.example.com", "server1.example.com", "server2.example.com"]


def test_ipaddr2_with_nic_netmask_broadcast_and_label(tmp_path) -> None:
    hares = ("alpha IPaddr2::10.0.0.5/24/eth1:web/10.0.0.255 "
             "IPaddr::10.0.1.5/255.255.255.0/eth2 10.0.2.5/16/10.0.255.255\n")
    cfg, groups = config(TWO_NODE_OFF, hares)
    m = check_all(cfg, groups, tmp_path)
    assert [(p[1], p[2]) for p in primitives(m)] == [
        ("ocf:heartbeat:IPaddr2", {"ip": "10.0.0.5", "cidr_netmask": "24", "nic": "eth1",
                                   "iflabel": "web", "broadcast": "10.0.0.255"}),
        ("ocf:heartbeat:IPaddr2", {"ip": "10.0.1.5", "cidr_netmask": "24", "nic": "eth2"}),
        ("ocf:heartbeat:IPaddr2", {"ip": "10.0.2.5", "cidr_netmask": "16", "broadcast": "10.0.255.255"}),
    ]


def test_resources_with_arguments(tmp_path) -> None:
    hares = ("alpha 10.0.0.10 Filesystem::/dev/sda1::/data::ext3 httpd "
             "MailTo::root@example.com::failover portblock::tcp::80,443::unblock\n")
    cfg, groups = config(TWO_NODE_OFF, hares)
    m = check_all(cfg, groups, tmp_path)
    prims = primitives(m)
    assert prims[1][:3] == ("Filesystem", "ocf:heartbeat:Filesystem",
                            {"device": "/dev/sda1", "directory": "/data", "fstype": "ext3"})
    assert prims[1][3][0] == ("monitor", "20s", "30s")
    assert prims[2][:3] == ("httpd", "lsb:httpd", {})
    assert prims[3][:3] == ("MailTo", "ocf:heartbeat:MailTo",
                            {"email": "root@example.com", "subject": "failover"})
    assert prims[4][2] == {"protocol": "tcp", "portno": "80,443", "action": "unblock"}


def test_where_the_script_lives_decides_lsb_or_ocf(tmp_path) -> None:
    """Heartbeat looks in resource.d first: an init.d `apache` is lsb, a resource.d script
    that wraps no known OCF agent is lsb with a warning, arguments of lsb scripts are flagged."""
    hares = "alpha 10.0.0.10 apache myapp::-p::8080 Filesystem::/dev/sdb1::/srv::xfs ghost\n"
    where = {"apache": "init.d", "myapp": "resource.d", "Filesystem": "resource.d"}
    cfg, groups = config(TWO_NODE_OFF, hares)
    m = check_all(cfg, groups, tmp_path, locate=where.get)
    assert [p[1] for p in primitives(m)] == ["ocf:heartbeat:IPaddr2", "lsb:apache", "lsb:myapp",
                                             "ocf:heartbeat:Filesystem", "lsb:ghost"]
    for fmt, text in all_formats(cfg, groups, locate=where.get).items():
        assert "myapp is a Heartbeat resource.d script, not an LSB init script" in text, fmt
        assert "LSB scripts take no arguments, dropped: -p 8080" in text, fmt
        assert "ghost: not found on this machine" in text, fmt
    # without a locator (pure use) known wrappers are OCF, everything else plain lsb
    plain = from_cib(export("cib", cfg, groups))
    assert [p[1] for p in primitives(plain)][1] == "ocf:heartbeat:apache"


def test_ids_are_valid_and_unique(tmp_path) -> None:
    hares = "alpha 10.0.0.10 1svc httpd httpd::a\nbeta 10.0.0.11 httpd\n"
    cfg, groups = config(TWO_NODE_OFF, hares)
    m = check_all(cfg, groups, tmp_path)
    ids = [p[0] for p in primitives(m)] + [g[0] for g in m["groups"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", i) for i in ids), ids
    assert "r1svc" in ids


def test_health_checks_become_monitor_ops_and_failure_handling(tmp_path) -> None:
    """hb-appliance.cf [monitor]: interval/timeout -> the monitor op; restarts in place ->
    migration-threshold; failure_timeout -> failure-timeout."""
    on = MonitorSettings(interval=5.0, timeout=2.5, restarts=2, failure_timeout=600.0)
    ext = Extension(start_timeout=60.0, stop_timeout=90.0, monitor_groups={"10.0.0.10": on})
    cfg, groups = config(TWO_NODE_OFF, "alpha 10.0.0.10 httpd\nbeta 10.0.0.11 smb\n")
    m = check_all(cfg, groups, tmp_path, ext=ext)
    (_g1, members1, meta1), (_g2, members2, meta2) = m["groups"]
    assert meta1 == {"migration-threshold": "3", "failure-timeout": "600s"} and meta2 == {}
    assert members1[1][3] == [("monitor", "5s", "2500ms"), ("start", "0s", "60s"), ("stop", "0s", "90s")]
    assert members2[1][3][0] == ("monitor", "30s", "30s")


def test_ipv6_addresses(tmp_path) -> None:
    if "IPv6addr" not in getattr(haresources, "IP_RESOURCES", ()):
        pytest.skip("this tree has no IPv6 resources")
    cfg, groups = config(TWO_NODE_OFF, "alpha IPv6addr::2001:db8::10/64/eth0/nodad httpd\n")
    m = check_all(cfg, groups, tmp_path)
    assert primitives(m)[0][:3] == ("ip-2001_db8_10", "ocf:heartbeat:IPaddr2",
                                    {"ip": "2001:db8::10", "cidr_netmask": "64", "nic": "eth0",
                                     "nodad": "true"})


def test_cib_is_complete_and_comments_are_well_formed() -> None:
    cfg, groups = config(TUTORIAL_HACF, "server1.example.com 192.168.56.200 httpd::--foreground\n")
    xml = export("cib", cfg, groups, locate=lambda _n: "resource.d")
    assert "dropped: - -foreground" in xml           # "--" may not appear inside a comment
    root = ET.fromstring(xml)
    assert root.tag == "cib" and root.get("validate-with", "").startswith("pacemaker-")
    assert [c.tag for c in root] == ["configuration", "status"] and len(root.find("status")) == 0
    conf = root.find("configuration")
    for tag in ("crm_config", "nodes", "resources", "constraints", "rsc_defaults"):
        assert conf.find(tag) is not None, tag
    assert [(n.get("id"), n.get("uname")) for n in conf.find("nodes")] == [
        ("1", "server1.example.com"), ("2", "server2.example.com"), ("3", "server3.example.com")]
    assert "<!--" in xml and not re.search(r"<!--.*--[^>]", xml)


# ---- the command ------------------------------------------------------------------------


def _etc(tmp_path, hares: str = "alpha 10.0.0.10 myapp\n", hacf: str = TWO_NODE_OFF) -> str:
    etc = tmp_path / "ha.d"
    (etc / "resource.d").mkdir(parents=True)
    (etc / "ha.cf").write_text(hacf)
    (etc / "haresources").write_text(hares)
    (etc / "nodeinfo").write_text("alpha\n")
    keys = etc / "authkeys"
    keys.write_text("auth 1\n1 sha1 secret\n")
    keys.chmod(0o600)
    script = etc / "resource.d" / "myapp"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return str(etc)


def test_command_reads_the_configuration_like_check_mode(tmp_path, monkeypatch, capsys) -> None:
    from appliance.cli.heartbeat import run

    monkeypatch.setenv("HA_DIR", _etc(tmp_path))
    assert run(["export", "--crm"]) == 0
    out = capsys.readouterr().out
    assert "primitive myapp lsb:myapp" in out
    assert "myapp is a Heartbeat resource.d script" in out     # found in HA_DIR/resource.d
    assert run(["export", "--cib"]) == 0
    crm_verify(capsys.readouterr().out, tmp_path)
    with pytest.raises(SystemExit) as info:
        run(["export"])                                    # a format is required
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        run(["export", "--pcs", "--crm"])


def test_command_reports_configuration_errors_with_exit_6(tmp_path, monkeypatch, capsys) -> None:
    from appliance.cli.heartbeat import run

    monkeypatch.setenv("HA_DIR", _etc(tmp_path, hares="gamma 10.0.0.10\n"))
    assert run(["export", "--pcs"]) == 6
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ERROR:" in captured.err and "haresources:1" in captured.err and "gamma" in captured.err
