"""`heartbeat export`: the Pacemaker configuration equivalent to ha.cf + haresources.

Pure: takes the parsed configuration (and, optionally, a function telling where a resource
script lives) and returns text; the CLI does the reading.  One plan is built first and then
rendered three ways, so pcs commands, crmsh syntax and CIB XML always describe the same
resources, in the same order, with the same ids.

The translation:
* every haresources line becomes a Pacemaker group (members start in line order and stop in
  reverse, as Heartbeat's ResourceManager does);
* IP resources become ocf:heartbeat:IPaddr2, resource.d wrappers of OCF agents the OCF agent
  itself (OCF_AGENTS), everything else lsb:NAME (an /etc/init.d script);
* the home node gets location score 100; with more than two nodes the other nodes follow in
  the takeover order with lower scores, so Pacemaker picks the same successor as we do;
* auto_failback off -> resource-stickiness 1000 (outweighs every location score, so a group
  stays where it runs, yet `pcs resource move` still works, unlike INFINITY); on/legacy -> 0.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from appliance.config.extension import Extension, MonitorSettings
from appliance.config.hacf import HaConfig
from appliance.config.haresources import Resource, ResourceGroup
from appliance.core.ownership import takeover_order

FORMATS = ("pcs", "crm", "cib")
HOME_SCORE = 100
STICKY = "1000"
CIB_SCHEMA = "pacemaker-2.0"  # accepted by Pacemaker 1.1.12+ (EL6.6, EL7) and 2.x, which upgrade it

# Heartbeat 3.0.6's resource.d scripts below are thin shims: each sets OCF_RESKEY_<name> from
# its positional arguments and runs ocf:heartbeat:<same name>.  Name -> parameter names in
# argument order (from the shims themselves).  Scripts not listed are exported as lsb.
OCF_AGENTS: dict[str, tuple[str, ...]] = {
    "Filesystem": ("device", "directory", "fstype", "options"),
    "apache": ("configfile",),
    "IPsrcaddr": ("ipaddress",),
    "MailTo": ("email", "subject"),
    "LVM": ("volgrpname",),
    "Raid1": ("raidconf", "raiddev"),
    "Xinetd": ("service",),
    "portblock": ("protocol", "portno", "action"),
    "Delay": ("startdelay", "stopdelay"),
}
# Monitor intervals: IPaddr2 and Filesystem as the resource-agents examples, else 30 s.
MONITOR_INTERVAL = {"IPaddr2": "10s", "Filesystem": "20s"}

# locate(name) -> "resource.d", "init.d" or None (not found); None as a whole: unknown.
Locate = Optional[Callable[[str], Optional[str]]]


@dataclass(frozen=True)
class Op:
    name: str
    interval: str
    timeout: str


@dataclass(frozen=True)
class Primitive:
    id: str
    standard: str  # "ocf" | "lsb"
    type: str
    params: tuple[tuple[str, str], ...]
    ops: tuple[Op, ...]
    source: str  # the haresources token it came from
    notes: tuple[str, ...] = ()

    @property
    def agent(self) -> str:
        return f"ocf:heartbeat:{self.type}" if self.standard == "ocf" else f"lsb:{self.type}"


@dataclass(frozen=True)
class Group:
    id: str
    home: str
    members: tuple[Primitive, ...]
    locations: tuple[tuple[str, int], ...]  # (node, score), takeover order
    meta: tuple[tuple[str, str], ...] = ()

    def location_id(self, node: str, score: int) -> str:
        return f"location-{self.id}-{node}-{score}"  # what pcs itself would name it


@dataclass(frozen=True)
class Plan:
    cluster: str
    nodes: tuple[str, ...]
    properties: tuple[tuple[str, str], ...]
    defaults: tuple[tuple[str, str], ...]
    groups: tuple[Group, ...]
    notes: tuple[str, ...]


def _seconds(value: float) -> str:
    return f"{int(value)}s" if float(value).is_integer() else f"{round(value * 1000)}ms"


def _ncname(text: str) -> str:
    """An id every tool accepts (XML NCName, pcs, crmsh): [A-Za-z_][A-Za-z0-9_.-]*."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "rsc"
    return text if re.match(r"[A-Za-z_]", text) else f"r{text}"


class _Ids:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, wanted: str) -> str:
        base, n = _ncname(wanted), 1
        ident = base
        while ident in self.used:
            n += 1
            ident = f"{base}-{n}"
        self.used.add(ident)
        return ident


def _ops(agent: str, timeouts: tuple[float, float, float], monitor: Op | None) -> tuple[Op, ...]:
    start, stop, status = (_seconds(t) for t in timeouts)
    monitor = monitor or Op("monitor", MONITOR_INTERVAL.get(agent, "30s"), status)
    return (monitor, Op("start", "0s", start), Op("stop", "0s", stop))


def _ip_primitive(rsc: Resource, ids: _Ids, ops: tuple[Op, ...]) -> Primitive:
    ip = rsc.ip
    assert ip is not None
    params = [("ip", ip.address)]
    if ip.prefixlen is not None:
        params.append(("cidr_netmask", str(ip.prefixlen)))
    if ip.interface:
        params.append(("nic", ip.interface))
    if ip.label:
        params.append(("iflabel", ip.label.partition(":")[2]))  # IPaddr2 adds "nic:" itself
    if ip.broadcast:
        params.append(("broadcast", ip.broadcast))
    notes: tuple[str, ...] = ()
    # IPv6 (IPv6addr:: or IPaddr2:: with an IPv6 address): IPaddr2 handles both families.
    # getattr: trees without IPv6 resources have no such fields.
    if getattr(ip, "nodad", False):
        params.append(("nodad", "true"))
    if getattr(ip, "router", False):
        notes = (f"{rsc.text}: IPaddr2 has no router flag for its neighbour advertisements",)
    return Primitive(ids.take(f"ip-{ip.address}"), "ocf", "IPaddr2", tuple(params), ops, rsc.text,
                     notes)


def _primitive(rsc: Resource, ids: _Ids, locate: Locate, timeouts: tuple[float, float, float],
               monitor: Op | None) -> Primitive:
    if rsc.ip is not None:
        return _ip_primitive(rsc, ids, _ops("IPaddr2", timeouts, monitor))
    where = locate(rsc.name) if locate else None
    notes: list[str] = []
    # Heartbeat looks in resource.d first: an init.d script of the same name is what it ran
    # only when resource.d has none.
    if rsc.name in OCF_AGENTS and where != "init.d":
        names = OCF_AGENTS[rsc.name]
        params = tuple(zip(names, rsc.args))
        if len(rsc.args) > len(names):
            notes.append(f"{rsc.text}: extra arguments dropped: {' '.join(rsc.args[len(names):])}")
        return Primitive(ids.take(rsc.name), "ocf", rsc.name, params, _ops(rsc.name, timeouts, monitor),
                         rsc.text, tuple(notes))
    if where == "resource.d":
        notes.append(f"{rsc.name} is a Heartbeat resource.d script, not an LSB init script: make it"
                     f" LSB-compliant and install it as /etc/init.d/{rsc.name} on every node,"
                     " or wrap it in an OCF agent")
    elif locate is not None and where is None:
        notes.append(f"{rsc.name}: not found on this machine; assumed to be /etc/init.d/{rsc.name}")
    if rsc.args:
        notes.append(f"{rsc.text}: LSB scripts take no arguments, dropped: {' '.join(rsc.args)};"
                     " wrap the script to supply them")
    return Primitive(ids.take(rsc.name), "lsb", rsc.name, (), _ops(rsc.name, timeouts, monitor),
                     rsc.text, tuple(notes))


def build_plan(cfg: HaConfig, groups: Sequence[ResourceGroup], ext: Extension | None = None,
               locate: Locate = None) -> Plan:
    """The whole translation; `ext` (hb-appliance.cf) gives script timeouts and health checks."""
    ext = ext or Extension()
    timeouts = (ext.start_timeout, ext.stop_timeout, ext.status_timeout)
    ids = _Ids()
    out: list[Group] = []
    for g in groups:
        monitor, meta = _health(ext.monitor_for(g.key))
        members = tuple(_primitive(r, ids, locate, timeouts, monitor) for r in g.resources)
        order = takeover_order(cfg.nodes, g.home)
        locations = [(g.home, HOME_SCORE)]
        if len(order) > 2:  # with two nodes the successor is obvious
            locations += [(node, len(order) - i) for i, node in enumerate(order) if i]
        out.append(Group(ids.take(f"grp-{members[0].id}"), g.home, members, tuple(locations), meta))
    sticky = cfg.auto_failback == "off"
    props = [("stonith-enabled", "false")]
    if len(cfg.nodes) == 2:
        props.append(("no-quorum-policy", "ignore"))
    return Plan(cfg.cluster, tuple(cfg.nodes), tuple(props),
                (("resource-stickiness", STICKY if sticky else "0"),), tuple(out),
                tuple(_notes(cfg, sticky, out)))


def _health(settings: MonitorSettings) -> tuple[Op | None, tuple[tuple[str, str], ...]]:
    """hb-appliance.cf [monitor] health checks of a group, when enabled: the monitor op, and
    restarts in place -> migration-threshold (the failure after the last restart moves the
    group), failure_timeout -> failure-timeout (0 = never, in both)."""
    if not settings.enabled:
        return None, ()
    meta = (("migration-threshold", str(settings.restarts + 1)),
            ("failure-timeout", _seconds(settings.failure_timeout)))
    return Op("monitor", _seconds(settings.interval), _seconds(settings.timeout)), meta


def _notes(cfg: HaConfig, sticky: bool, groups: list[Group]) -> list[str]:
    media = ", ".join(f"{m.kind} {m.interface}" for m in cfg.media) or "none"
    notes = [
        f"Pacemaker equivalent of ha.cf + haresources (cluster {cfg.cluster},"
        f" nodes {' '.join(cfg.nodes)}), generated by `heartbeat export`. Review before use.",
        f"Corosync: one node entry per ha.cf node, nodeid 1..{len(cfg.nodes)} in that order;"
        f" totem token {cfg.deadtime_ms} ms (ha.cf deadtime); heartbeat media were: {media}.",
        "WARNING: stonith-enabled=false matches Heartbeat v1, which had no fencing either;"
        " configure a STONITH device before relying on this cluster for shared data."
        if cfg.stonith is None else
        f"WARNING: stonith-enabled=false: ha.cf's {cfg.stonith.directive} device"
        f" ({cfg.stonith.type}) is not exported; configure it as a Pacemaker stonith resource"
        f" (stonith:{cfg.stonith.type}) and set stonith-enabled=true.",
    ]
    if len(cfg.nodes) == 2:
        notes.append("Two nodes: no-quorum-policy=ignore (Heartbeat v1 had no quorum); with"
                     " corosync 2+ prefer `two_node: 1` in corosync.conf's quorum section.")
    else:
        notes.append("More than two nodes: Pacemaker's default quorum policy (stop) applies, unlike"
                     " Heartbeat v1, where a lone survivor kept serving.")
    notes.append(f"auto_failback {cfg.auto_failback}: resource-stickiness "
                 + (f"{STICKY}: groups stay where they run" if sticky else "0: groups return home"))
    if any(p.standard == "lsb" for g in groups for p in g.members):
        notes.append("lsb resources are monitored with `status`, which must exit 0 when running and"
                     " 3 when stopped (Heartbeat v1 read its output instead).")
    skipped = [d for d, on in (("ping", cfg.ping or cfg.ping_groups), ("respawn", cfg.respawn),
                               ("watchdog", cfg.watchdog)) if on]
    if skipped:
        notes.append(f"Not translated from ha.cf: {', '.join(skipped)}"
                     " (ping nodes: an ocf:pacemaker:ping clone with a location rule).")
    return notes


# ---- renderers -----------------------------------------------------------------------------


def to_pcs(plan: Plan) -> str:
    q = shlex.quote
    lines = [f"# {n}" for n in plan.notes]
    lines += ["# Run on one node of the running Pacemaker cluster (pcs 0.9 and later): the changes",
              "# go to a copy of the CIB first and are pushed in one step at the end.",
              f"# Cluster: pcs cluster setup {q(plan.cluster)} {' '.join(map(q, plan.nodes))}"
              "   (pcs 0.9: --name NAME)",
              "set -e", "CIB=hb-export.xml", 'pcs cluster cib "$CIB"']
    pcs = 'pcs -f "$CIB"'
    for name, value in plan.properties:
        lines.append(f"{pcs} property set {name}={q(value)}")
    for name, value in plan.defaults:
        lines.append(f"{pcs} resource defaults {name}={q(value)}   # pcs 0.11: defaults update")
    for g in plan.groups:
        for p in g.members:
            lines += [f"# {n}" for n in p.notes]
            words = [f"{k}={q(v)}" for k, v in p.params]
            words += ["op"] + [f"{o.name} interval={o.interval} timeout={o.timeout}" for o in p.ops]
            lines.append(f"{pcs} resource create {p.id} {p.agent} {' '.join(words)} --group {g.id}")
        if g.meta:
            lines.append(f"{pcs} resource meta {g.id} " + " ".join(f"{k}={q(v)}" for k, v in g.meta))
        for node, score in g.locations:
            lines.append(f"{pcs} constraint location {g.id} prefers {q(node)}={score}")
    lines.append('pcs cluster cib-push "$CIB"')
    return "\n".join(lines) + "\n"


def _crm_value(value: str) -> str:
    if re.fullmatch(r"[^\s\"'\\#]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_crm(plan: Plan) -> str:
    lines = [f"# {n}" for n in plan.notes]
    lines.append("# Load with: crm configure load update FILE")

    def nvset(head: str, pairs: tuple[tuple[str, str], ...]) -> None:
        lines.append(head + " \\")
        lines.extend(f"    {k}={_crm_value(v)}" + (" \\" if i < len(pairs) - 1 else "")
                     for i, (k, v) in enumerate(pairs))

    nvset("property cib-bootstrap-options:", plan.properties)
    nvset("rsc_defaults rsc_defaults-options:", plan.defaults)
    for g in plan.groups:
        for p in g.members:
            lines += [f"# {n}" for n in p.notes]
            parts = [f"primitive {p.id} {p.agent}"]
            if p.params:
                parts.append("params " + " ".join(f"{k}={_crm_value(v)}" for k, v in p.params))
            parts += [f"op {o.name} interval={o.interval} timeout={o.timeout}" for o in p.ops]
            lines.append(" \\\n    ".join(parts))
        meta = " \\\n    meta " + " ".join(f"{k}={_crm_value(v)}" for k, v in g.meta) if g.meta else ""
        lines.append(f"group {g.id} {' '.join(p.id for p in g.members)}{meta}")
        for node, score in g.locations:
            lines.append(f"location {g.location_id(node, score)} {g.id} {score}: {node}")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> ET.Element:
    return ET.Comment(" " + text.replace("--", "- -") + " ")  # "--" may not appear in a comment


def _nvpairs(parent: ET.Element, tag: str, set_id: str, pairs) -> None:
    block = ET.SubElement(parent, tag, id=set_id)
    for name, value in pairs:
        ET.SubElement(block, "nvpair", id=f"{set_id}-{name}", name=name, value=value)


def to_cib(plan: Plan) -> str:
    """A whole CIB (empty status): `crm_verify --xml-file`, `cibadmin --replace --xml-file`."""
    cib = ET.Element("cib", {"validate-with": CIB_SCHEMA, "admin_epoch": "0", "epoch": "1",
                             "num_updates": "0"})
    conf = ET.SubElement(cib, "configuration")
    _nvpairs(ET.SubElement(conf, "crm_config"), "cluster_property_set", "cib-bootstrap-options",
             plan.properties)
    nodes = ET.SubElement(conf, "nodes")
    for i, name in enumerate(plan.nodes, 1):
        ET.SubElement(nodes, "node", id=str(i), uname=name)
    resources = ET.SubElement(conf, "resources")
    constraints = ET.SubElement(conf, "constraints")
    for g in plan.groups:
        group = ET.SubElement(resources, "group", id=g.id)
        if g.meta:
            _nvpairs(group, "meta_attributes", f"{g.id}-meta_attributes", g.meta)
        for p in g.members:
            for note in p.notes:
                group.append(_comment(note))
            attrs = {"id": p.id, "class": p.standard, "type": p.type}
            if p.standard == "ocf":
                attrs = {"id": p.id, "class": "ocf", "provider": "heartbeat", "type": p.type}
            prim = ET.SubElement(group, "primitive", attrs)
            if p.params:
                _nvpairs(prim, "instance_attributes", f"{p.id}-instance_attributes", p.params)
            ops = ET.SubElement(prim, "operations")
            for o in p.ops:
                ET.SubElement(ops, "op", id=f"{p.id}-{o.name}-interval-{o.interval}", name=o.name,
                              interval=o.interval, timeout=o.timeout)
        for node, score in g.locations:
            ET.SubElement(constraints, "rsc_location", id=g.location_id(node, score), rsc=g.id,
                          node=node, score=str(score))
    defaults = ET.SubElement(conf, "rsc_defaults")
    _nvpairs(defaults, "meta_attributes", "rsc_defaults-options", plan.defaults)
    ET.SubElement(cib, "status")
    ET.indent(cib)
    head = "".join(f"<!-- {n.replace('--', '- -')} -->\n" for n in plan.notes)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + head + ET.tostring(cib, "unicode") + "\n"


def export(fmt: str, cfg: HaConfig, groups: Sequence[ResourceGroup], ext: Extension | None = None,
           locate: Locate = None) -> str:
    """`fmt` is one of FORMATS."""
    render = {"pcs": to_pcs, "crm": to_crm, "cib": to_cib}[fmt]
    return render(build_plan(cfg, groups, ext, locate))
