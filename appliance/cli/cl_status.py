"""cl_status: Heartbeat's status tool, same sub-commands, output and exit codes (spec §12.3)."""

from __future__ import annotations

import json
import sys
from typing import Any

from appliance.control import NotRunning, request
from appliance.paths import Paths

OK, FAIL, PARAM, UNKNOWN = 0, 1, 11, 13
USAGE = """Usage: cl_status <sub-command> [<options>] [<parameters>]
sub-commands:
  hbstatus [-v]                  Is heartbeat running on this machine?
  listnodes [-p|-n|-v]           List the nodes in the cluster
  nodestatus <node>              Status of a node
  nodetype <node>                Type of a node
  nodeweight <node>              Weight of a node
  nodesite <node>                Site of a node
  listhblinks [-v] <node>        Heartbeat links of a node
  hblinkstatus <node> <link>     Status of a heartbeat link
  rscstatus                      Resources held by this node (none/local/foreign/all/transition)
  hbparameter -p <name>          Value of an ha.cf parameter
  --json                         Everything above as one JSON document
"""


def _status() -> dict[str, Any] | None:
    try:
        reply = request(Paths.from_env().control_socket, {"cmd": "status"})
    except NotRunning:
        return None
    return reply if reply.get("ok") else None


def _node(st: dict[str, Any], name: str) -> dict[str, Any] | None:
    for n in st["nodes"]:
        if n["name"] == name.lower():
            return n
    return None


def run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return OK if args else PARAM
    human = "-m" in args
    args = [a for a in args if a != "-m"]
    cmd, rest = args[0], args[1:]
    st = _status()
    if cmd == "--json":
        if st is None:
            print(json.dumps({"running": False}))
            return FAIL
        print(json.dumps({"running": True, **{k: v for k, v in st.items() if k != "ok"}}, indent=2))
        return OK
    if cmd == "hbstatus":
        if st is None:
            print("Heartbeat is stopped on this machine.")
            return FAIL
        if "-v" in rest:
            from appliance import HEARTBEAT_COMPAT_VERSION

            print(f"Version:\t{HEARTBEAT_COMPAT_VERSION} (hb-appliance)")
            print('managed by:\t"haresources"')
            _listnodes(st, ["-v"])
        else:
            print("Heartbeat is running on this machine.")
        return OK
    handler = _COMMANDS.get(cmd)
    if handler is None:
        print(USAGE, end="", file=sys.stderr)
        return PARAM
    if st is None:
        print("Heartbeat is stopped on this machine.", file=sys.stderr)
        return FAIL
    return handler(st, rest, human)


def _listnodes(st: dict[str, Any], rest: list[str], human: bool = False) -> int:
    for n in st["nodes"]:
        if ("-p" in rest and n["type"] != "ping") or ("-n" in rest and n["type"] == "ping"):
            continue
        if "-v" in rest:
            print(f"{n['name']}\t{n['state']}\t(nodetype: {n['type']})")
            for link, state in n["links"].items():
                print(f"\t{link}\t{state}")
        else:
            print(n["name"])
    return OK


def _need_node(st: dict[str, Any], rest: list[str]) -> dict[str, Any] | None:
    names = [a for a in rest if not a.startswith("-")]
    if not names:
        return None
    node = _node(st, names[0])
    if node is None:
        print("Error. May be due to incorrect node name", file=sys.stderr)
    return node


def _nodestatus(st: dict[str, Any], rest: list[str], human: bool) -> int:
    node = _need_node(st, rest)
    if node is None:
        return PARAM
    print(f"The cluster node {node['name']} is {node['state']}" if human else node["state"])
    return OK if node["state"] in ("active", "up", "ping") else FAIL


def _nodetype(st: dict[str, Any], rest: list[str], human: bool) -> int:
    node = _need_node(st, rest)
    if node is None:
        return PARAM
    print(node["type"])
    return OK


def _nodeweight(st: dict[str, Any], rest: list[str], human: bool) -> int:
    if _need_node(st, rest) is None:
        return PARAM
    print("100")
    return OK


def _nodesite(st: dict[str, Any], rest: list[str], human: bool) -> int:
    if _need_node(st, rest) is None:
        return PARAM
    print("")
    return OK


def _listhblinks(st: dict[str, Any], rest: list[str], human: bool) -> int:
    node = _need_node(st, rest)
    if node is None:
        return PARAM
    for link in node["links"]:
        print(f"\t{link}")
    return OK


def _hblinkstatus(st: dict[str, Any], rest: list[str], human: bool) -> int:
    node = _need_node(st, rest)
    if node is None or len(rest) < 2:
        return PARAM
    state = node["links"].get(rest[1])
    if state is None:
        print("Error. May be due to incorrect link name", file=sys.stderr)
        return PARAM
    print(state)
    return OK if state == "up" else FAIL


def _rscstatus(st: dict[str, Any], rest: list[str], human: bool) -> int:
    print(st["rscstatus"])
    return OK


def _hbparameter(st: dict[str, Any], rest: list[str], human: bool) -> int:
    if len(rest) < 2 or rest[0] != "-p":
        return PARAM
    value = st["params"].get(rest[1])
    if value is None:
        print(f"Failed to get parameter {rest[1]}", file=sys.stderr)
        return FAIL
    print(value)
    return OK


def _clientstatus(st: dict[str, Any], rest: list[str], human: bool) -> int:
    if _need_node(st, rest) is None:
        return PARAM
    print("offline")
    return FAIL


_COMMANDS = {
    "listnodes": _listnodes,
    "nodestatus": _nodestatus,
    "nodetype": _nodetype,
    "nodeweight": _nodeweight,
    "nodesite": _nodesite,
    "listhblinks": _listhblinks,
    "hblinkstatus": _hblinkstatus,
    "rscstatus": _rscstatus,
    "hbparameter": _hbparameter,
    "clientstatus": _clientstatus,
}
