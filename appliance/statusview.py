"""What the control socket answers: the daemon's state as plain data for the tools."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.daemon import Daemon

log = logging.getLogger("heartbeat")

SECRET_PARAMS = ("stonith", "stonith_host", "env")


def snapshot(d: Daemon) -> dict[str, Any]:
    nodes = []
    for name in d.cfg.nodes:
        p = d.mem.peers[name]
        if name == d.local:
            links = {i: ("up" if d.links.carrier.get(i, True) else "dead") for i in d.media.interfaces()}
        else:
            links = {i: ("up" if p.link_up.get(i) else "dead") for i in d.media.interfaces()}
        nodes.append({"name": name, "state": p.state, "type": "normal", "links": links})
    # ha.cf usually declares ping nodes before the `node` lines; 3.0.6 lists in declaration order.
    nodes = d.addons.ping_view() + nodes
    groups = []
    for g in d.groups:
        dec = d.last_decisions.get(g.key)
        holders = [v.name for v in d.facts_now(0).views.values() if g.key in v.held]
        groups.append({
            "key": g.key, "home": g.home, "local_state": d.manager.state[g.key],
            "holders": holders, "owner": dec.owner if dec else None,
            "reason": dec.reason if dec else "", "decided_at": d.decided_at.get(g.key),
        })
    return {
        "node": d.local,
        "phase": d.phase,
        "rscstatus": "transition" if d.manager.busy() or not d.ready else d._rsc_hold(),
        "nodes": nodes,
        "groups": groups,
        # stonith/stonith_host lines may carry passwords and env values anything: 3.0.6 does
        # not record them as parameters either.
        "params": {k: v for k, v in d.cfg.params.items() if k not in SECRET_PARAMS},
        "counters": {"rx": d.counters.rx, "tx": d.counters.tx, "dropped": dict(d.counters.dropped),
                     "others_acks": d.counters.others_acks},
        "generation": d.generation,
        **d.addons.view(),
    }


def handle_request(d: Daemon, line: bytes) -> bytes:
    try:
        req = json.loads(line)
        cmd = req.get("cmd")
    except (ValueError, AttributeError):
        return json.dumps({"ok": False, "error": "bad request"}).encode()
    if cmd == "status":
        return json.dumps({"ok": True, **snapshot(d)}).encode()
    if cmd in ("standby", "takeover"):
        scope = req.get("scope", "all")
        if scope not in ("all", "foreign", "local", "failback"):
            return json.dumps({"ok": False, "error": f"bad scope {scope}"}).encode()
        text = d.standby(scope) if cmd == "standby" else d.takeover(scope)
        return json.dumps({"ok": True, "result": text}).encode()
    return json.dumps({"ok": False, "error": f"unknown command {cmd}"}).encode()


async def serve_control(path: str, d: Daemon) -> asyncio.AbstractServer:
    """The tools' socket: one JSON request line, one JSON reply line, then close."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.unlink(path)
    except OSError:
        pass

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            writer.write(handle_request(d, line) + b"\n")
            await writer.drain()
        except Exception as exc:  # noqa: BLE001 - a bad client must not hurt the daemon
            log.debug("control client error: %r", exc)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(client, path)
    os.chmod(path, 0o660)
    try:   # as 3.0.6's API socket: members of haclient may use cl_status / hb_standby
        import grp

        os.chown(path, 0, grp.getgrnam("haclient").gr_gid)
    except (KeyError, OSError):
        pass
    return server
