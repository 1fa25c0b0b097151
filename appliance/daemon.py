"""The heartbeat daemon: one asyncio loop tying the layers together.

receive: UDP -> decode -> authenticate -> sequence/membership -> facts -> ownership core
send:    status every keepalive (feeds the watchdogs), protocol replies, announcements
act:     the core's decisions -> GroupManager tasks (scripts, netlink, gratuitous ARP)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field

from appliance.addons import Addons
from appliance.compat306 import Compat306
from appliance.config.authkeys import AuthKeys
from appliance.config.extension import Extension
from appliance.config.hacf import HaConfig
from appliance.config.haresources import ResourceGroup
from appliance.core import ownership
from appliance.core.membership import ACCEPT, DUPLICATE, Change, Membership
from appliance.core.peerfacts import PeerFacts
from appliance.errors import DecodeError
from appliance.fenceops import FenceOps
from appliance.handlers import MessageHandlers, hex_field
from appliance.hbapi import ApiClients, serve_api
from appliance.host import script_env, set_realtime
from appliance.linkevents import LinkEvents
from appliance.net.linkwatch import LinkWatch
from appliance.net.media import Media
from appliance.paths import Paths, next_generation, node_uuid
from appliance.reload import ConfigReload, hacf_mtime
from appliance.rsc.group import GroupExecutor, Settings
from appliance.rsc.manager import GroupManager
from appliance.statusview import serve_control, snapshot
from appliance.watchdog import HardwareWatchdog, SystemdNotify
from appliance.wire import auth, catalog
from appliance.wire.message import MAX_PACKET, Message, ack_dest, decode_packet, to_wire

log = logging.getLogger("heartbeat")

HISTORY = 500            # sent messages kept for retransmission (3.0.6's ring size)
REXMIT_TRIES = 10
LEGACY_START_GRACE = 12.0
ECHO_KEEP = 16           # our last datagrams, recognised when bcast/mcast loops them back
IDLE_TICK = 0.25         # the check loop's longest sleep (timers of the ownership core, links)...
IDLE_TICK_MAX = 1.0      # ...up to this at slow keepalives (half a keepalive): idle CPU there
START_WAIT_MIN = 1.0     # how long a starting node waits for `resource` replies at most (floor)


@dataclass
class Rexmit:
    due: float
    tries: int = 0


@dataclass
class Counters:
    rx: int = 0
    tx: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    others_acks: int = 0     # ACKs addressed to other nodes: skipped unread (see _receive)


class Daemon(MessageHandlers, Compat306, LinkEvents, FenceOps, ConfigReload):
    def __init__(
        self,
        cfg: HaConfig,
        keys: AuthKeys,
        groups: list[ResourceGroup],
        paths: Paths,
        ext: Extension | None = None,
    ) -> None:
        self.cfg = cfg
        self.keys = keys
        self.groups = groups
        self.paths = paths
        self.local = cfg.local_node
        self.local_wire = to_wire(cfg.local_node.lower())
        self.counters = Counters()
        self.started = time.monotonic()
        self.mem = Membership(
            self.local, cfg.nodes, [m.interface for m in cfg.media], cfg.deadtime_ms,
            cfg.warntime_ms, cfg.initdead_ms, self.started,
        )
        self.facts: dict[str, PeerFacts] = {n: PeerFacts() for n in cfg.nodes if n != self.local}
        ext = ext or Extension()
        env = script_env(cfg, self.local, paths)
        settings = Settings(
            paths.resource_dirs, ext.start_timeout, ext.stop_timeout, ext.status_timeout,
            ext.arp_count, ext.arp_interval, env,
        )
        self.executor = GroupExecutor(settings)
        self.manager = GroupManager(groups, self.executor, self._group_changed, ext.retry_delay)
        self.group_info = [ownership.GroupInfo(g.key, g.home) for g in groups]
        self.group_homes = [(g.key, g.home) for g in groups]
        self.owe_done: dict[str, str] = {}       # 3.0.6 peer -> scope it handed us, to confirm
        self.handing_over = ""                   # scope of our own hand-over to a 3.0.6 peer
        self.handover_asked_at: float | None = None   # our `me` sent, the peer's `other` not yet in
        self.ip_requests: dict[str, str] = {}    # legacy mode: group -> 3.0.6 node waiting for it
        self.legacy_mode = cfg.auto_failback == "legacy"
        self.media = Media(cfg.media, self._on_packet, local=cfg.local_node)
        self.seq = 0
        self.generation = 0
        self.uuid = b"\0" * 16
        self.history: collections.OrderedDict[int, Message] = collections.OrderedDict()
        self.sent_recently: collections.OrderedDict[bytes, tuple[str, int | None]] = collections.OrderedDict()
        self.rexmits: dict[tuple[str, int], Rexmit] = {}
        self.ack_trigger = {n: random.randrange(10) for n in cfg.nodes}
        self.phase = "init"                # init -> up -> starting -> ready -> stopping
        self.starting_at = 0.0
        self.ready = False
        self.stopping = False
        self.standby_scope = ""
        self.standby_epoch = 0
        self.max_epoch = 0
        self.links = LinkWatch(self.media.interfaces(), self._carrier_changed, self._address_lost)
        self.last_decisions: dict[str, ownership.Decision] = {}
        self.decided_at: dict[str, float] = {}     # wall clock of the last acquire/release decision
        self.conflicts: dict[str, frozenset[str]] = {}
        self.initial_done = False
        self.watchdog = HardwareWatchdog(cfg.watchdog, cfg.deadtime_ms) if cfg.watchdog else None
        self.sd = SystemdNotify()
        self._stop_event: asyncio.Event | None = None
        self._reconcile_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._beat: asyncio.Future | None = None
        self._api: asyncio.AbstractServer | None = None
        self.api_clients = ApiClients()
        self.isolated_since: float | None = None   # all our heartbeat links lost carrier
        self.relearn_from: float | None = None     # links back: re-learning who holds what
        self.replay = auth.ReplayGuard()           # AEAD envelopes: per-sender anti-replay windows
        self.addons = Addons(self, ext, env)
        self.hacf_mtime = hacf_mtime(paths.hacf)      # `heartbeat -r` after ha.cf changed: "restart exec"
        self._init_fencing()                       # STONITH device (stonith/stonith_host), as root

    # ================================================================= life cycle
    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self.generation, fresh = next_generation(self.paths.state, self.cfg.hbgenmethod)
        if fresh:
            log.info("No Previous generation - starting at %d", self.generation - 1)
        self.uuid, new = node_uuid(self.paths.state)
        if new:
            log.info("No uuid found for current node - generating a new uuid.")
        log.info("Configuration validated. Starting heartbeat %s", _version())
        set_realtime(self.cfg)
        self.media.open(self._loop)
        self.links.open(self._loop)
        self._server = await serve_control(self.paths.control_socket, self)
        self._api = await serve_api(self.paths.register_socket, self, self.api_clients)
        await self.addons.start()
        if self.watchdog:
            self.watchdog.open()
        from appliance.privsep import lockdown

        lockdown(self)      # last privileged step done: root helper for scripts, drop the rest
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop_event.set)
        self._loop.add_signal_handler(signal.SIGHUP, self._reload)
        self._send(catalog.status("init", self._dt()))
        self._set_phase("up")
        self._send(catalog.status("up", self._dt()))
        self._beat = asyncio.ensure_future(self._heartbeat_loop())
        check = asyncio.ensure_future(self._check_loop())
        self.sd.notify("READY=1")
        await self._stop_event.wait()
        await self._shutdown()
        for task in (self._beat, check):
            task.cancel()
        await asyncio.gather(self._beat, check, return_exceptions=True)
        self._close()
        return 0

    async def _shutdown(self) -> None:
        self.stopping = True
        self.phase = "stopping"
        self.sd.notify("STOPPING=1")
        log.info("Heartbeat shutdown in progress. (%d)", os.getpid())
        if self.watchdog:
            self.watchdog.close()
        await self.addons.stop_checks()
        self._fence_cancel()
        if not self.legacy_mode:
            self._send(catalog.resource("none", False, "shutdown"))
        if self.manager.busy():
            log.info("Shutdown delayed until current resource activity finishes.")
        await self.manager.stop_all()
        if self._beat is not None:
            self._beat.cancel()     # no heartbeat may follow shutdone
        self._send(catalog.shutdone())
        log.info("All HA resources relinquished.")
        # Stay a moment to answer retransmission requests for shutdone.
        await asyncio.sleep(min(1.0, 2 * self.cfg.keepalive_ms / 1000.0))
        await self.executor.close()
        await self.addons.close()
        log.info("Heartbeat shutdown complete.")

    def _close(self) -> None:
        self.media.close()
        self.links.close()
        for server in (self._server, self._api):
            if server is not None:
                server.close()
        self.api_clients.close_all()
        try:
            os.unlink(self.paths.control_socket)
        except OSError:
            pass

    # ================================================================= timers
    async def _heartbeat_loop(self) -> None:
        interval = self.cfg.keepalive_ms / 1000.0
        due = time.monotonic()
        while True:
            self._send(catalog.status(self._wire_state(), self._dt()))
            if self.watchdog:
                self.watchdog.feed()
            self.sd.notify("WATCHDOG=1")
            # Keep a fixed cadence: sleep to the next slot, not `interval` after this send.
            due += interval
            now = time.monotonic()
            if due < now:
                due = now
            await asyncio.sleep(due - now)

    async def _check_loop(self) -> None:
        tick = max(0.02, min(0.1, self.cfg.keepalive_ms / 4000.0))
        # Time-based decisions (start-up grace, relearning after a link comes back) are seconds
        # long; dead peers are found on time by next_deadline() whatever the idle tick.
        idle_tick = min(IDLE_TICK_MAX, max(IDLE_TICK, self.cfg.keepalive_ms / 2000.0))
        while True:
            # Idle, wake when a peer's deadtime would expire (exactly) or idle_tick at most;
            # while starting up or retransmitting, every tick.
            now = time.monotonic()
            due = self.mem.next_deadline()
            if self.rexmits or self.phase != "ready":
                due = min(due, now + tick)
            await asyncio.sleep(min(idle_tick, max(0.005, due - now + 0.001)))
            try:
                self.media.drain()
                now = time.monotonic()
                self._handle_changes(self.mem.tick(now), now)
                self._progress_startup(now)
                self._send_rexmits(now)
                self.links.poll()
                self._reconcile()
            except Exception:  # noqa: BLE001 - the loop must survive our own bugs
                log.exception("internal error in the check loop")

    def _dt(self) -> int:
        # 3.0.6 advertises deadtime + 2 s for its first 5 s.
        extra = 2000 if time.monotonic() - self.started < 5 else 0
        return self.cfg.deadtime_ms + extra

    def _wire_state(self) -> str:
        return "active" if self.mem.comm_up else "up"

    def _set_phase(self, phase: str) -> None:
        self.phase = phase
        ch = self.mem.set_local_state("active" if phase in ("starting", "ready") else phase)
        if ch is not None and ch.new in ("up", "active"):
            log.info("Local status now set to: '%s'", ch.new)

    def _progress_startup(self, now: float) -> None:
        if self.phase == "up" and self.mem.comm_up:
            log.info("Comm_now_up(): updating status to active")
            self._set_phase("starting")
            self._send(catalog.status("active", self._dt()))
            self._adopt_running()
            self.starting_at = now
            if not self.legacy_mode:      # 3.0.6's legacy mode has no start-up negotiation
                self._send(catalog.starting())
        if self.phase == "starting":
            wait = max(START_WAIT_MIN, 2 * self.cfg.keepalive_ms / 1000.0)
            alive = [n for n in self.mem.alive_nodes() if n != self.local]
            replied = all(self.facts[n].replied_at >= self.starting_at for n in alive)
            if replied or now - self.starting_at >= wait:
                self.ready = True
                self._set_phase("ready")
                self._announce()
                if self.legacy_mode:
                    self._request_home_groups()

    def _adopt_running(self) -> None:
        """Groups whose IP is already on this node (daemon killed and restarted) are claimed."""
        from appliance.net import ipaddr

        for g in self.groups:
            ips = [r.ip.address for r in g.resources if r.ip is not None]
            if ips and any(ipaddr.find_address(ip) for ip in ips):
                log.warning("Resource group %s found running at start-up: adopting it", g.key)
                self.manager.adopt(g.key)

    # ================================================================= receive path
    def _on_packet(self, data: bytes, link: str, addr: tuple) -> None:
        self.counters.rx += 1
        try:
            self._receive(data, link)
        except Exception:  # noqa: BLE001 - a packet must never take the daemon down
            self._drop("handler_error")
            log.exception("internal error handling a packet from %s", addr[0] if addr else "?")

    def _drop(self, reason: str) -> None:
        self.counters.dropped[reason] += 1

    def _receive(self, data: bytes, link: str) -> None:
        if len(data) > MAX_PACKET:
            return self._drop("too_large")
        echo = self.sent_recently.get(data)
        if echo is not None:        # our own broadcast looped back: no need to decode it again
            return self._own_message(*echo)
        # Every node ACKs every peer's 10th heartbeat by broadcast: N*(N-1)/20 ACKs per keepalive,
        # each read by all N nodes, most of the traffic in a big cluster. We use ACKs for nothing
        # but link liveness (heartbeats give that), so other nodes' ACKs are skipped before the
        # decoder and the digest. A forged one can only get itself skipped, as it would be dropped.
        dest = ack_dest(data)
        if dest is not None and dest.lower() != self.local_wire:
            self.counters.others_acks += 1
            return
        try:
            pkt = auth.open_sealed(data, self.keys) if auth.is_sealed(data) else decode_packet(data)
        except DecodeError as exc:
            return self._drop(exc.reason)
        bad = auth.verify(pkt, self.keys)
        if bad:
            self._drop(bad)
            if self.counters.dropped[bad] in (1, 10, 100) or self.counters.dropped[bad] % 1000 == 0:
                log.error("netstring authentication failed, authtoken does not match (%s)", bad)
            return
        if self.replay.check(pkt, link):
            return self._drop("replay")
        msg = pkt.msg
        mtype, src = msg.get("t"), msg.get("src")
        if not mtype or not src or not hex_field(msg.get("ts")):
            return self._drop("bad_fields")
        src = src.lower()
        unsequenced = mtype.startswith("NS_")
        seq = hex_field(msg.get("seq"))
        if not unsequenced and not seq:
            return self._drop("bad_fields")
        if src == self.local:
            return self._own_message(mtype, seq)
        now = time.monotonic()
        hg = hex_field(msg.get("hg"))
        verdict = self.mem.accept(src, msg.get_bytes("srcuuid"), mtype, seq, hg, link, now,
                                  hex_field(msg.get("ts")))
        if verdict.outcome != ACCEPT:
            if verdict.outcome == DUPLICATE:
                self.counters.dropped["duplicate"] += 1
            else:
                self._drop(verdict.outcome)
                if verdict.outcome == "unknown_node":
                    log.error("process_status_message: bad node [%s] in message", src)
            self._handle_changes(verdict.changes, now)
            return
        for s in verdict.rexmit:
            self.rexmits[(src, s)] = Rexmit(now + random.uniform(0.05, self.cfg.max_rexmit_delay_ms / 1000.0))
        if seq and seq % 10 == self.ack_trigger.get(src, 0) and not self.mem.missing_of(src):
            self._send(catalog.ackmsg(src, seq))
        self._handle_changes(verdict.changes, now)
        facts = self.facts[src]
        if facts.first_heard is None:
            facts.first_heard = now
        dest = msg.get("dest")
        if dest and dest.lower() != self.local:
            return
        handler = _HANDLERS.get(mtype)
        before = facts.snapshot() if mtype == "status" else None
        if handler is not None:
            handler(self, src, msg, now)
        if not unsequenced:
            self.api_clients.deliver(msg)     # API clients (ipfail, api_test) see cluster traffic
        # A heartbeat that taught nothing new needs no decision now (most of them, when idle): the
        # check loop still decides on time-based grounds, and state changes decided already.
        if before is None or facts.snapshot() != before:
            self._schedule_reconcile()

    def api_snapshot(self) -> dict:
        """What Heartbeat's client API (appliance.hbapi) answers from."""
        return {**snapshot(self), "apiauth": self.cfg.apiauth,
                "uuids": {n: p.uuid for n, p in self.mem.peers.items() if p.uuid} | {self.local: self.uuid}}

    def _own_message(self, mtype: str, seq: int | None) -> None:
        # Our own broadcast looped back: nothing to learn, but 3.0.6 ACKs it too.
        if seq and seq % 10 == self.ack_trigger.get(self.local, 0):
            self._send(catalog.ackmsg(self.local, seq))

    # ---------------------------------------------------------------- membership events
    def _handle_changes(self, changes: list[Change], now: float) -> None:
        for ch in changes:
            if ch.kind == "state":
                self.addons.peer_changed(ch.node, ch.old, ch.new)
                if ch.new == "dead":
                    log.warning("node %s: is dead", ch.node)
                    self._fence_node_died(ch.node)
                    f = self.facts.get(ch.node)
                    if f is not None:
                        f.forget()
                    for key in [k for k in self.rexmits if k[0] == ch.node]:
                        del self.rexmits[key]
                else:
                    log.info("Status update for node %s: status %s", ch.node, ch.new)
                    self._fence_node_back(ch.node)
            elif ch.kind == "link":
                log.info("Link %s:%s %s.", ch.node, ch.detail, ch.new)
            elif ch.kind == "restart":
                log.info("Heartbeat restart on node %s", ch.node)
                self.facts[ch.node].forget(now, restarted=True)
            elif ch.kind == "late":
                log.warning("Late heartbeat: Node %s: interval %s ms", ch.node, ch.detail)
            elif ch.kind == "heal":
                log.critical("Cluster node %s returning after partition (%s)", ch.node, ch.detail)
                # It may have held our groups meanwhile and taught clients its MAC: announce ours,
                # even if it gives them up before we ever see its claim.
                self._reannounce_held()
                self.addons.healed(ch.node, ch.detail)
            elif ch.kind == "gap":
                log.info("%s: %s packet(s)", ch.node, ch.detail)
            elif ch.kind == "comm":
                # As 3.0.6 at comm-up: ask one live peer for its node list (we keep ha.cf's).
                alive = [n for n in self.mem.alive_nodes() if n != self.local]
                if alive:
                    self._send(catalog.reqnodes(alive[0]))
        if changes:
            self._schedule_reconcile()

    # ================================================================= send path
    def _send(self, msg: Message) -> None:
        mtype = msg.get("t") or ""
        seq = None
        if not mtype.startswith("NS_"):
            self.seq += 1
            seq = self.seq
        if mtype == "status":
            catalog.with_facts(
                msg, self.manager.held(), self.ready, self._standby_text(), sorted(self.manager.failed),
                self.addons.ping_count(),
            )
        dest = msg.get("dest")
        peer = self.mem.peers.get(dest) if dest else None
        destuuid = self.uuid if dest == self.local else (peer.uuid if peer else None)   # self-ACKs too
        catalog.stamp(
            msg, self.local, self.uuid, seq, self.generation, int(time.time()), _loadavg(),
            self.cfg.hopfudge + len(self.cfg.nodes), destuuid,
        )
        if seq is not None:
            self.history[seq] = Message(list(msg.fields))
            while len(self.history) > HISTORY:
                self.history.popitem(last=False)
        self._transmit(msg)

    def _transmit(self, msg: Message) -> None:
        data = auth.sign(msg, self.keys, include_body_auth=self.cfg.msgfmt != "netstring")
        self.sent_recently[data] = (msg.get("t") or "", hex_field(msg.get("seq")))
        while len(self.sent_recently) > ECHO_KEEP:
            self.sent_recently.popitem(last=False)
        self.counters.tx += 1
        self.media.send(data)

    def _send_rexmits(self, now: float) -> None:
        sent = 0
        for key, rx in list(self.rexmits.items()):
            node, s = key
            if rx.due > now or sent >= 20:
                continue
            if s not in self.mem.peers[node].missing:
                del self.rexmits[key]
                continue
            if rx.tries >= REXMIT_TRIES:
                log.error("Irretrievably lost packet: node %s seq %d", node, s)
                self.mem.forget_missing(node, s)
                del self.rexmits[key]
                continue
            self._send(catalog.rexmit(node, s))
            rx.tries += 1
            rx.due = now + self.cfg.max_rexmit_delay_ms / 1000.0
            sent += 1

    def _announce(self) -> None:
        if not self.legacy_mode:
            self._send(catalog.resource(self._rsc_hold(), self.ready and not self.manager.busy()))
        self._send(catalog.status(self._wire_state(), self._dt()))

    def _rsc_hold(self) -> str:
        mask = catalog.rsc_hold_mask(self._hold_name(self.manager.held()))
        # 3.0.6 sets its "local" bit once start-up is over even when no group is homed here
        # (so a survivor holding the peer's groups says "all").
        if (self.ready and self.standby_scope not in ("all", "local")
                and not any(g.home == self.local for g in self.groups)):
            mask |= 1
        return catalog.rsc_hold_name(mask)

    def _hold_name(self, keys: list[str]) -> str:
        """rsc_hold from our side: local = groups homed here, foreign = the others."""
        mask = 0
        for key in keys:
            mask |= 1 if self.manager.groups[key].home == self.local else 2
        return catalog.rsc_hold_name(mask)

    def _standby_text(self) -> str:
        return f"{self.standby_scope} {self.standby_epoch}" if self.standby_scope else ""

    # ================================================================= decisions
    def _schedule_reconcile(self) -> None:
        if not self._reconcile_pending and self._loop is not None:
            self._reconcile_pending = True
            self._loop.call_soon(self._reconcile)

    def facts_now(self, now: float) -> ownership.Facts:
        views: dict[str, ownership.NodeView] = {}
        for name in self.cfg.nodes:
            if name == self.local:
                views[name] = ownership.NodeView(
                    name, alive=True, ready=self.ready and not self.stopping,
                    link_ok=self.links.any_up,
                    held=frozenset(self.manager.held()), failed=frozenset(self.manager.failed),
                    standby_scope=self.standby_scope, standby_epoch=self.standby_epoch,
                    ping=self.addons.ping_count(),
                )
                continue
            p, f = self.mem.peers[name], self.facts[name]
            alive = p.state in ("up", "active")
            views[name] = ownership.NodeView(
                name, alive=alive, ready=alive and f.ready and not p.shutting_down,
                held=f.held if alive else frozenset(), failed=f.failed,
                standby_scope=f.standby_scope, standby_epoch=f.standby_epoch,
                # Heard (even only its `init` heartbeat) but not ready: it may still want the group.
                pending_since=f.first_heard if p.state != "dead" and not f.ready else None,
                # A 3.0.6 node negotiates for up to RQSTDELAY (10 s) before it settles.
                grace=LEGACY_START_GRACE if f.legacy else 0.0,
                ping=f.ping if alive else None,
                claims_unknown_since=(f.first_heard or self.started) if alive and not f.known else None,
            )
        return ownership.Facts(
            self.cfg.nodes, views, self.local, self.cfg.auto_failback, now,
            start_grace=max(3.0, self.cfg.deadtime_ms / 1000.0),
        )

    def _reconcile(self) -> None:
        self._reconcile_pending = False
        if not self.ready or self.stopping:
            return
        now = time.monotonic()
        decisions = ownership.decide(self.group_info, self.facts_now(now))
        if self._relearning(now):
            decisions = [
                ownership.Decision(d.key, "wait", d.owner, f"link back: relearning peers, not taking {d.key}")
                if d.action == "acquire" else d
                for d in decisions
            ]
        decisions = self._fence_gate(decisions)   # STONITH a dead holder before taking its groups
        self._start_handover(decisions)        # a 3.0.6 peer hears `me` before anything moves
        decisions = self._hold_releases(decisions, now)
        for d in decisions:
            last = self.last_decisions.get(d.key)
            if (last is None or (last.action, last.reason) != (d.action, d.reason)) and d.action != "none":
                log.info("%s", d.reason)
                if d.action in ("acquire", "release"):     # shown by cl_status --json (benchmark)
                    self.decided_at[d.key] = time.time()
            self.last_decisions[d.key] = d
            if d.action == "reassert":
                # A new rival claim: our address may be cached at the wrong MAC; announce again.
                if set(d.rivals) - self.conflicts.get(d.key, frozenset()):
                    for rsc in self.manager.groups[d.key].resources:
                        self.executor.reannounce(rsc)
                self.conflicts[d.key] = frozenset(d.rivals)
            else:
                self.conflicts.pop(d.key, None)
        self.manager.apply(decisions)
        if (self.owe_done or self.handing_over) and not self.manager.busy():
            self._finish_handovers()     # an exchange in which nothing (more) had to move
        if not self.initial_done and not self.manager.busy():
            self.initial_done = True
            log.info("Initial resource acquisition complete")

    def _group_changed(self, key: str, state: str, outcome) -> None:
        self.addons.group_changed(key, state, outcome)
        if outcome is not None:
            self._finish_handovers()
            self._announce()
            if outcome.ok and state == "running" and self._took_from_dead(key):
                log.info("mach_down takeover complete for %s.", key)
        self._schedule_reconcile()

    def _took_from_dead(self, key: str) -> bool:
        home = self.manager.groups[key].home
        return home != self.local and self.mem.peers[home].state == "dead"

    # ================================================================= operator requests
    def standby(self, scope: str) -> str:
        scope = "foreign" if scope == "failback" else scope
        self.max_epoch += 1
        self.standby_scope, self.standby_epoch = scope, self.max_epoch
        log.info("Going standby for %s resources.", scope)
        self._standby_handover(scope)
        self._announce()
        self._schedule_reconcile()
        return f"standby {scope}"

    def takeover(self, scope: str) -> str:
        self.standby_scope, self.standby_epoch = "", 0
        self._send(catalog.hb_takeover(scope))
        self._announce()
        self._schedule_reconcile()
        return f"takeover {scope}"


_HANDLERS = {
    "status": Daemon._on_status,
    "starting": Daemon._on_starting,
    "resource": Daemon._on_resource,
    "shutdone": Daemon._on_shutdone,
    "hb_takeover": Daemon._on_hb_takeover,
    "ask_resources": Daemon._on_ask_resources,
    "ip-request": Daemon._on_ip_request,
    "ip-request-resp": Daemon._on_ip_request_resp,
    "NS_rexmit": Daemon._on_rexmit,
    "NS_nak_rexmit": Daemon._on_nak,
    "reqnodes": Daemon._on_reqnodes,
    "stonith": Daemon._on_stonith,
}


_LOADAVG: list = [float("-inf"), "0.00 0.00 0.00 1/1 1"]


def _loadavg() -> str:
    """/proc/loadavg for the `ld` field, read at most once a second."""
    now = time.monotonic()
    if now - _LOADAVG[0] >= 1.0:
        try:
            with open("/proc/loadavg") as f:
                _LOADAVG[1] = f.readline().strip()
        except OSError:
            pass
        _LOADAVG[0] = now
    return _LOADAVG[1]


def _version() -> str:
    from appliance import __version__

    return __version__
