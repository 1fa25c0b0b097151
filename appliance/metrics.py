"""Prometheus metrics in the text exposition format (0.0.4), from the status snapshot.

Two opt-in outputs (the extension file's [metrics] section): a textfile rewritten atomically
every `textfile_interval` seconds for node_exporter's textfile collector, and an HTTP listener
on `listen = ADDR:PORT` answering GET /metrics.  Names and labels are stable; see README.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable

log = logging.getLogger("heartbeat")

GROUP_STATES = ("stopped", "starting", "running", "stopping", "stop_failed")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.seen: set[str] = set()

    def metric(self, name: str, kind: str, help_text: str,
               samples: list[tuple[dict[str, object], float]]) -> None:
        if name not in self.seen:
            self.seen.add(name)
            self.lines.append(f"# HELP {name} {help_text}")
            self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {_num(value)}" if text else f"{name} {_num(value)}")


def _num(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(snap: dict[str, Any] | None, version: str = "") -> str:
    """The exposition text; `snap` None means the daemon is not running (hba_up 0 only)."""
    out = _Out()
    out.metric("hba_up", "gauge", "1 while the hb-appliance daemon runs.", [({}, snap is not None)])
    if snap is None:
        return "\n".join(out.lines) + "\n"
    local = snap["node"]
    out.metric("hba_build_info", "gauge", "Version and node name of this daemon.",
               [({"version": version, "node": local}, 1)])
    out.metric("hba_ready", "gauge", "1 once start-up negotiation is over.",
               [({}, snap.get("phase") in ("ready", "active"))])
    out.metric("hba_generation", "gauge", "Heartbeat generation (hg) of this node.",
               [({}, snap.get("generation", 0))])
    nodes, links = [], []
    for n in snap["nodes"]:
        alive = n["state"] in ("up", "active", "ping")
        nodes.append(({"node": n["name"], "state": n["state"], "type": n.get("type", "normal")}, alive))
        links += [({"node": n["name"], "link": i}, s == "up") for i, s in sorted(n["links"].items())]
    out.metric("hba_node_alive", "gauge",
               "1 if the node (type normal) or ping node (type ping) is alive as seen from here.", nodes)
    out.metric("hba_link_up", "gauge", "1 if the node's heartbeat link is up as seen from here.", links)
    held, state, holders, owner = [], [], [], []
    for g in snap["groups"]:
        key = g["key"]
        held.append(({"group": key}, g["local_state"] in ("starting", "running", "stopping", "stop_failed")))
        state += [({"group": key, "state": s}, g["local_state"] == s) for s in GROUP_STATES]
        holders.append(({"group": key}, len(g["holders"])))
        if g.get("owner"):
            owner.append(({"group": key, "owner": g["owner"]}, 1))
    out.metric("hba_group_held", "gauge", "1 if this node holds (claims) the resource group.", held)
    out.metric("hba_group_state", "gauge", "Local state of the resource group (one series per state).", state)
    out.metric("hba_group_holders", "gauge", "Nodes claiming the group as seen from here (1 is healthy).",
               holders)
    out.metric("hba_group_owner", "gauge", "The node the ownership rule gives the group to.", owner)
    c = snap["counters"]
    out.metric("hba_packets_received_total", "counter", "Heartbeat packets received.", [({}, c["rx"])])
    out.metric("hba_packets_sent_total", "counter", "Heartbeat packets sent.", [({}, c["tx"])])
    out.metric("hba_packets_dropped_total", "counter", "Packets dropped, by reason.",
               [({"reason": r}, v) for r, v in sorted(c["dropped"].items())])
    out.metric("hba_transitions_total", "counter", "Transitions of this node, by event and subject.",
               [({"event": e, "subject": s}, v)
                for (e, s), v in sorted(_pairs(snap.get("transition_counts")))])
    mon = snap.get("monitor") or {}
    for name, field, text in (("checks", "checks", "Health checks run."),
                              ("failures", "failures", "Health checks failed."),
                              ("restarts", "restarts", "Restarts in place after failed health checks.")):
        out.metric(f"hba_monitor_{name}_total", "counter", text,
                   [({"group": k}, v[field]) for k, v in sorted(mon.items())])
    hooks = snap.get("hooks") or {}
    out.metric("hba_notify_hook_runs_total", "counter", "Notification hook runs, by result.",
               [({"result": r}, v) for r, v in sorted(hooks.items())])
    return "\n".join(out.lines) + "\n"


def _pairs(counts: Any) -> list[tuple[tuple[str, str], int]]:
    """transition_counts travels as [[event, subject, count], ...] (JSON has no tuple keys)."""
    return [((e, s), int(v)) for e, s, v in (counts or [])]


def write_textfile(path: str, text: str) -> None:
    """Atomically, so node_exporter never reads half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class Exporter:
    def __init__(self, textfile: str, interval: float, listen: str,
                 snap: Callable[[], dict[str, Any]], version: str) -> None:
        self.textfile = textfile
        self.interval = interval
        self.listen = listen
        self.snap = snap
        self.version = version
        self._task: asyncio.Task | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.textfile:
            self._task = asyncio.ensure_future(self._textfile_loop())
        if self.listen:
            from appliance.config.extension import parse_listen

            host, port = parse_listen(self.listen)
            try:
                self._server = await asyncio.start_server(self._client, host, port, reuse_address=True)
                log.info("Metrics on http://%s/metrics", self.listen)
            except OSError as exc:
                log.error("Cannot listen for metrics on %s: %s", self.listen, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        if self.textfile:
            self._write(None)

    def _write(self, snap: dict[str, Any] | None) -> None:
        try:
            write_textfile(self.textfile, render(snap, self.version))
        except OSError as exc:
            log.warning("Cannot write metrics textfile %s: %s", self.textfile, exc)

    async def _textfile_loop(self) -> None:
        while True:
            self._write(self.snap())
            await asyncio.sleep(self.interval)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) >= 2 and parts[0] in (b"GET", b"HEAD") and parts[1].split(b"?")[0] == b"/metrics":
                body = render(self.snap(), self.version).encode()
                status = "200 OK"
            else:
                body, status = b"not found: try /metrics\n", "404 Not Found"
            reply = (f"HTTP/1.0 {status}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(reply.encode())
            if parts[:1] != [b"HEAD"]:
                writer.write(body)
            await writer.drain()
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except Exception as exc:  # noqa: BLE001 - a bad client must not hurt the daemon
            log.debug("metrics client error: %r", exc)
        finally:
            writer.close()
