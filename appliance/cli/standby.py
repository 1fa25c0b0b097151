"""hb_standby and hb_takeover: ask the local daemon to give up, or take, resources (spec §8.4)."""

from __future__ import annotations

import sys

from appliance.control import NotRunning, request
from appliance.paths import Paths

SCOPES = ("all", "foreign", "local", "failback")
USAGE = "usage: {0} [all|foreign|local|failback]"


def _run(tool: str, cmd: str, args: list[str]) -> int:
    if args and args[0] in ("--help", "-h", "-?"):
        print(USAGE.format(tool))
        return 0
    scope = args[0] if args else "all"
    if scope not in SCOPES or len(args) > 1:
        print(USAGE.format(tool), file=sys.stderr)
        return 1
    try:
        reply = request(Paths.from_env().control_socket, {"cmd": cmd, "scope": scope})
    except NotRunning:
        print("Heartbeat is not running on this machine.", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"{tool}: {reply.get('error')}", file=sys.stderr)
        return 1
    if cmd == "standby":
        print(f"Going standby [{scope}].")
    return 0


def run_standby(args: list[str]) -> int:
    return _run("hb_standby", "standby", args)


def run_takeover(args: list[str]) -> int:
    return _run("hb_takeover", "takeover", args)
