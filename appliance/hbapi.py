"""Heartbeat 3.0.6 client API server: what the stock cl_status, api_test and ipfail talk to.

Wire, as seen with strace between Debian's 3.0.6 daemon and its libhbclient (spec §12.2):
a Unix stream socket /var/run/heartbeat/register (mode 0777) in /var/run/heartbeat (0750
hacluster:haclient); no FIFOs (/var/lib/heartbeat/{api,casual} stay unused). Frame: native uint32
length, uint32 magic 0xabcd, then an ha_msg; clients send classic text plus a NUL counted in the
length, and 3.0.6 answers in kind. A bad magic closes the connection, an undecodable body is
ignored. The first message must be ``signon``: pid/uid/gid must match SO_PEERCRED, then apiauth
decides (casual clients, whose id is their pid, fall under ``anon``). Replies are ``t=hbapi-resp
reqtype=<req>`` + fields + ``result=OK|ok/more|badreq [info=...]``; lists stream ``ok/more``
then ``OK``; ``signoff`` and ``set_sendqlen`` get no reply.

State comes from ``provider.api_snapshot()`` (appliance.statusview.snapshot(), optionally with
``uuids`` {node: 16 bytes} and ``apiauth`` {client: (users, groups)}). Optional provider hooks:
``api_send(msg)`` for what named clients send to the cluster, and ``api_query_client(node,
client, from_id)`` to ask an active peer about its client (the daemon hands the respond-cstatus
to :meth:`ApiClients.deliver`). Without them both are dropped and ``cl_status clientstatus PEER
X`` times out, as with a 3.0.6 peer that does not answer.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import re
import signal
import socket
import stat
import struct
from dataclasses import dataclass, field
from logging.handlers import SysLogHandler
from typing import Any, Callable, NamedTuple, Protocol

from appliance import HEARTBEAT_COMPAT_VERSION
from appliance.config.hacf_values import parse_time_ms
from appliance.errors import DecodeError
from appliance.wire.message import Message, decode_packet, encode_classic

log = logging.getLogger("heartbeat")

REGISTER_SOCKET = "/var/run/heartbeat/register"
HEADER = struct.Struct("=II")  # native-endian length, magic (cluster-glue SOCKET_MSG_HEAD)
MAGIC = 0xABCD
MAX_FRAME = 64 * 1024  # requests are < 1 KiB; 3.0.6 clients never send more than a UDP packet
MAX_CONNECTIONS = 128
MAX_IGNORED = 16  # unusable messages tolerated before signon
SIGNON_TIMEOUT = 10.0  # seconds from connect to a successful signon
FRAME_TIMEOUT = 10.0  # seconds to deliver a frame body once its header arrived
WRITE_TIMEOUT = 10.0
HB_VERSION = f"{HEARTBEAT_COMPAT_VERSION} (node: 958e11be8686759f1b99204c17812f2c2633b169)"

T_REQ, T_RESP, T_CLSTAT = "hbapi-req", "hbapi-resp", "hbapi-clstat"
OK, MORE, BADREQ = "OK", "ok/more", "badreq"
KEEPIT, DEBUGTREATMENTS, ALLTREATMENTS = 0x01, 0x3E, 0x3F  # hb_api_core.h filter bits
# 3.0.6 defaults (config.c defserv); Debian's build also admits uid root as "anon" [observed].
DEFAULT_APIAUTH: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ipfail": (("hacluster",), ()), "ccm": (("hacluster",), ()), "ping": ((), ("haclient",)),
    "lha-snmpagent": (("root",), ()), "anon": (("root",), ("haclient",)),
}  # fmt: skip
_FALSE = {"false", "off", "no", "n", "0"}
_INT_RE = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)")
_HEX_RE = re.compile(r"[ \t\n\r\f\v]*[+-]?(?:0[xX])?([0-9a-fA-F]+)")


class Provider(Protocol):
    def api_snapshot(self) -> dict[str, Any]: ...


class FrameError(Exception):
    """The byte stream is not cluster-glue IPC framing: the connection is dropped."""


@dataclass
class ApiClient:
    client_id: str
    pid: int
    uid: int
    gid: int
    casual: bool
    gen: int
    fmask: int = KEEPIT
    signal: int = 0
    writer: asyncio.StreamWriter | None = field(default=None, repr=False)


class Outcome(NamedTuple):
    replies: list[Message]
    close: bool = False


class ApiClients:
    """Signed-on clients, shared by all connections of one server (and the daemon)."""

    def __init__(self) -> None:
        self.by_id: dict[str, ApiClient] = {}
        self.connections = 0
        self._gen = 0

    def next_gen(self) -> int:
        gen, self._gen = self._gen, self._gen + 1
        return gen

    def online(self, client_id: str) -> bool:
        """What a peer's query-cstatus about `client_id` should be answered with."""
        return client_id in self.by_id

    def close_all(self) -> None:
        """Hang up on every signed-on client (daemon shutdown)."""
        for client in list(self.by_id.values()):
            if client.writer is not None:
                client.writer.close()

    def deliver(self, msg: Message) -> int:
        """Pass a cluster message to clients (all that keep messages, or just ``to_id``)."""
        if not self.by_id:
            return 0            # the usual case: nobody signed on, nothing to encode
        to_id, frame, sent = msg.get("to_id"), encode_frame(msg), 0
        for client in list(self.by_id.values()):
            if (to_id is not None and to_id != client.client_id) or not client.fmask & KEEPIT:
                continue
            w = client.writer
            if w is None or w.is_closing():
                continue
            if w.transport.get_write_buffer_size() > 4 * MAX_FRAME:  # not reading: drop it
                w.close()
                continue
            w.write(frame)
            _notify(client)
            sent += 1
        return sent


class _BadReq(Exception):
    def __init__(self, info: str | None = "EINVAL") -> None:
        super().__init__(info)
        self.info = info


# --------------------------------------------------------------------------- framing


def parse_header(header: bytes) -> int:
    """Body length from an 8-byte frame header; FrameError if it cannot be a frame."""
    if len(header) != HEADER.size:
        raise FrameError("short header")
    length, magic = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic 0x{magic:x}")
    if not 0 < length <= MAX_FRAME:
        raise FrameError(f"bad length {length}")
    return length


def decode_body(body: bytes) -> Message | None:
    """The message in a frame body, or None if it is not one (3.0.6 ignores those)."""
    try:
        return decode_packet(body).msg
    except DecodeError:
        return None


def encode_frame(msg: Message) -> bytes:
    """Classic text plus NUL, as 3.0.6 writes it, behind the length/magic header."""
    body = encode_classic(msg) + b"\0"
    return HEADER.pack(len(body), MAGIC) + body


async def read_frame(reader: asyncio.StreamReader, timeout: float | None) -> bytes:
    """One frame body within `timeout` (None: wait for the header as long as it takes; the body
    still has FRAME_TIMEOUT). Raises IncompleteReadError at EOF, TimeoutError, FrameError."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    header = await asyncio.wait_for(reader.readexactly(HEADER.size), timeout)
    length = parse_header(header)
    left = FRAME_TIMEOUT if timeout is None else min(FRAME_TIMEOUT, timeout - (loop.time() - start))
    return await asyncio.wait_for(reader.readexactly(length), max(left, 0.001))


# --------------------------------------------------------------------------- helpers


def _atoi(text: str | None) -> int:
    m = _INT_RE.match(text or "")
    return max(-(2**31), min(2**31 - 1, int(m.group(1)))) if m else 0


def _scan(text: str | None, hexa: bool = False) -> int | None:
    """sscanf %x / %u: leading number or None; values wrap like a C unsigned."""
    m = (_HEX_RE if hexa else _INT_RE).match(text or "")
    if m is None:
        return None
    return int(m.group(1), 16 if hexa else 10) & 0xFFFFFFFF


def _resp(reqtype: str) -> Message:
    return Message.of(t=T_RESP, reqtype=reqtype)


def get_parameter(snap: dict[str, Any], name: str) -> str | None:
    """GetParameterValue(): ha.cf values and defaults, plus hbversion and the crm alias."""
    params = snap.get("params") or {}
    if name == "hbversion":
        return str(params.get("hbversion", HB_VERSION))
    value = params.get(name)
    if value is None and name in ("pacemaker", "crm"):
        value = params.get("crm" if name == "pacemaker" else "pacemaker")
    return None if value is None else str(value)


def _ms(snap: dict[str, Any], name: str, default: int) -> int:
    try:
        return parse_time_ms(str((snap.get("params") or {}).get(name)))
    except ValueError:
        return default


def _logfacility(snap: dict[str, Any]) -> int:
    code = SysLogHandler.facility_names.get(str(get_parameter(snap, "logfacility")).lower())
    return -1 if code is None else code << 3


def _pacemaker(snap: dict[str, Any]) -> bool:
    value = get_parameter(snap, "pacemaker")
    return value is not None and value.lower() not in _FALSE


def _node(snap: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The node called `name` (3.0.6 lower-cases the query), else badreq EINVAL."""
    low = (name or "").lower()
    for node in snap.get("nodes") or []:
        if name is not None and str(node.get("name", "")).lower() == low:
            return node
    raise _BadReq()


def _links(node: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (node.get("links") or {}).items()}


def _clstat(snap: dict[str, Any], cid: str, status: str, reason: str, gen: int) -> Message:
    return Message.of(t=T_CLSTAT, st=status, from_id=cid, to_id=cid, src=str(snap.get("node", "")),
                      info=reason, client_gen=str(gen))  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def _notify(client: ApiClient) -> None:
    """setsignal: 3.0.6 signals the client after every message it is sent."""
    if client.signal:
        try:
            os.kill(client.pid, client.signal)
        except OSError:
            pass


def _ids(names: tuple[str, ...], lookup: Callable[[str], int]) -> set[int]:
    out = set()
    for name in names:
        try:
            out.add(int(name) if str(name).isdigit() else lookup(name))
        except KeyError:
            pass
    return out


def _authorized(snap: dict[str, Any], cid: str, casual: bool, uid: int, gid: int) -> str | None:
    """None if apiauth admits the peer (by uid or gid), else 3.0.6's failure reason."""
    table = {**DEFAULT_APIAUTH, **(snap.get("apiauth") or {})}
    entry = table.get("anon" if casual else cid) or table.get("default")
    if entry is None:
        return "client failed authorization" if casual else "no default client auth"
    if uid in _ids(entry[0], lambda n: pwd.getpwnam(n).pw_uid):
        return None
    return None if gid in _ids(entry[1], lambda n: grp.getgrnam(n).gr_gid) else "client failed authorization"


# --------------------------------------------------------------------------- signon


def handle_signon(
    snap: dict[str, Any], msg: Message, peer: tuple[int, int, int] | None, clients: ApiClients
) -> tuple[Outcome, ApiClient | None]:
    """The first message of a connection. peer = SO_PEERCRED (pid, uid, gid)."""
    if msg.get("t") != T_REQ or msg.get("reqtype") != "signon":
        return Outcome([]), None  # 3.0.6: "bad message", ignored
    fromid, cpid = msg.get("from_id"), msg.get("pid")
    if fromid is None and cpid is None:
        return Outcome([]), None
    gen, pid, shown, fail = clients.next_gen(), _atoi(cpid), "", None
    cid, casual = (str(pid), True) if fromid is None else (fromid, _atoi(fromid) == pid)
    alive = pid > 0 and _alive(pid)
    uid, gid = _scan(msg.get("uid")), _scan(msg.get("gid"))
    if not alive or len(cid) > 64:
        fail = "cannot add client"
    elif cid in clients.by_id:
        fail = "duplicate add request"
    else:
        shown = cid  # 3.0.6 names the client in its leave notice only from here on
        if uid is None or gid is None:
            fail = "invalid id info"
        elif peer is not None and (peer[1], peer[2]) != (uid, gid):
            fail = "incorrect/false credentials"
        else:
            fail = _authorized(snap, cid, casual, uid, gid)
            if fail is None and peer is not None and peer[0] > 0 and peer[0] != pid:
                fail = "pid mismatch"
    reply = _resp("signon")
    if fail:
        reply.add("info", fail)
    reply.add("result", BADREQ if fail else OK)
    reply.add("deadtime", f"{_ms(snap, 'deadtime', 30000):x}")
    reply.add("keepalive", f"{_ms(snap, 'keepalive', 1000):x}")
    reply.add("node", str(snap.get("node", "")))
    reply.add("hbversion", get_parameter(snap, "hbversion") or HB_VERSION)
    reply.add("pacemaker", get_parameter(snap, "pacemaker") or "false")
    reply.add("logfacility", str(_logfacility(snap)))
    if fail:
        log.warning("API client [%s] pid %d refused: %s", fromid or cpid, pid, fail)
        replies = [reply] if casual else [reply, _clstat(snap, shown, "leave", fail, gen)]
        return Outcome(replies, close=True), None
    assert uid is not None and gid is not None
    client = ApiClient(cid, pid, uid, gid, casual, gen)
    clients.by_id[cid] = client
    return Outcome([reply]), client


# --------------------------------------------------------------------------- requests


@dataclass
class Ctx:
    snap: dict[str, Any]
    client: ApiClient
    clients: ApiClients
    provider: Any = None


Handler = Callable[[Ctx, Message], "list[Message] | None"]


def _stream(reqtype: str, items: list[list[tuple[str, str]]]) -> list[Message]:
    """One reply per item: ``ok/more`` on all but the last, which says ``OK``."""
    out = []
    for i, fields in enumerate(items):
        m = _resp(reqtype)
        for name, value in fields:
            m.add(name, value)
        out.append(m.add("result", OK if i == len(items) - 1 else MORE))
    return out


def _one(reqtype: str, *fields: tuple[str, str]) -> list[Message]:
    return _stream(reqtype, [list(fields)])


def _setfilter(ctx: Ctx, msg: Message) -> list[Message]:
    mask = _scan(msg.get("fmask"), hexa=True)
    if mask is None or not mask & ALLTREATMENTS:
        raise _BadReq()
    if not ctx.client.fmask & DEBUGTREATMENTS and mask & DEBUGTREATMENTS:
        if ctx.client.uid not in (0, os.getuid()):
            raise _BadReq("EPERM")
    ctx.client.fmask = mask
    return _one("setfilter")


def _setsignal(ctx: Ctx, msg: Message) -> list[Message]:
    sig = _scan(msg.get("signal"))
    if sig is None:
        raise _BadReq(None)
    if sig in (signal.SIGKILL, signal.SIGSTOP) or sig >= 32:
        raise _BadReq()
    ctx.client.signal = sig
    return _one("setsignal")


def _nodelist(ctx: Ctx, msg: Message) -> list[Message]:
    nodes = ctx.snap.get("nodes") or []
    return _stream("nodelist", [[("node", str(n.get("name", ""))), ("nodetype", str(n.get("type", "normal"))),
                                 ("st", str(n.get("state", "dead")))] for n in nodes])  # fmt: skip


def _iflist(ctx: Ctx, msg: Message) -> list[Message]:
    node = _node(ctx.snap, msg.get("node"))
    links = _links(node)
    if node.get("type") == "ping":  # its one link is named after the node
        name = str(node["name"])
        if name not in links:
            raise _BadReq("UhOh")
        return _one("iflist", ("ifname", name), ("st", links[name]))
    if not links:
        raise _BadReq()
    return _stream("iflist", [[("ifname", k), ("st", v)] for k, v in links.items()])


def _ifstatus(ctx: Ctx, msg: Message) -> list[Message]:
    links = _links(_node(ctx.snap, msg.get("node")))
    ifname = msg.get("ifname")
    if ifname is None or ifname not in links:
        raise _BadReq()
    return _one("ifstatus", ("st", links[ifname]))


def _clientstatus(ctx: Ctx, msg: Message) -> list[Message] | None:
    cname, from_id = msg.get("cn"), msg.get("from_id")
    if cname is None or from_id is None:
        raise _BadReq()
    node = _node(ctx.snap, msg.get("node"))
    if node["name"] == ctx.snap.get("node"):
        status = "online" if ctx.clients.online(cname) else "offline"
    elif node.get("state") != "active":
        status = "offline"
    else:  # 3.0.6 asks the peer; its respond-cstatus is the answer
        query = getattr(ctx.provider, "api_query_client", None)
        if query is not None:
            query(str(node["name"]), cname, from_id)
        return None
    return _one("clientstatus", ("subt", "respond-cstatus"), ("cs", status))


def _getparm(ctx: Ctx, msg: Message) -> list[Message]:
    pname = msg.get("pname")
    if pname is None:
        raise _BadReq()
    value = get_parameter(ctx.snap, pname)
    return _one("getparm", *([("pvalue", value)] if value is not None else []))


def _getrsc(ctx: Ctx, msg: Message) -> list[Message]:
    if _pacemaker(ctx.snap):
        raise _BadReq("Resource is managed by crm. Use crm tool to query resource")
    return _one("getrsc", ("rsc_hold", str(ctx.snap.get("rscstatus", "none"))))


def _getuuid(ctx: Ctx, msg: Message) -> list[Message]:
    name = msg.get("queryname")
    if name is None:
        raise _BadReq("no query node name found")
    reply = _resp("getuuid")
    uuids = {str(k).lower(): bytes(v) for k, v in (ctx.snap.get("uuids") or {}).items()}
    uuid = uuids.get(name.lower())
    if uuid is not None and len(uuid) == 16:
        reply.add_bytes("queryuuid", uuid)
    reply.add("result", OK)
    return [reply]


def _getnodename(ctx: Ctx, msg: Message) -> list[Message]:
    uuid = msg.get_bytes("queryuuid")
    if uuid is None or len(uuid) != 16:
        raise _BadReq("no query node name found")
    names = [n for n, u in (ctx.snap.get("uuids") or {}).items() if bytes(u) == uuid]
    return _one("getnodename", *([("queryname", str(names[0]))] if names else []))


def _field(reqtype: str, name: str, key: str, default: object) -> Handler:
    return lambda c, m: _one(reqtype, (name, str(_node(c.snap, m.get("node")).get(key, default))))


def _numnodes(ctx: Ctx, msg: Message) -> list[Message]:
    normal = [n for n in ctx.snap.get("nodes") or [] if n.get("type", "normal") == "normal"]
    return _one("numnodes", ("numnodes", str(len(normal))))


HANDLERS: dict[str, Handler] = {
    "setfilter": _setfilter, "setsignal": _setsignal, "nodelist": _nodelist,
    "nodestatus": _field("nodestatus", "st", "state", "dead"),
    "nodeweight": _field("nodeweight", "weight", "weight", 100),
    "nodesite": _field("nodesite", "site", "site", ""),
    "nodetype": _field("nodetype", "nodetype", "type", "normal"),
    "iflist": _iflist, "ifstatus": _ifstatus, "clientstatus": _clientstatus, "numnodes": _numnodes,
    "getparm": _getparm, "getrsc": _getrsc, "getuuid": _getuuid, "getnodename": _getnodename,
    "set_sendqlen": lambda c, m: None,  # 3.0.6 never answers it
}  # fmt: skip


def handle_request(ctx: Ctx, msg: Message) -> Outcome:
    """One message from a signed-on client, answered like 3.0.6's api_process_request."""
    client = ctx.client
    if msg.get("t") != T_REQ:
        if client.casual:  # "general message from casual client!": dropped
            return Outcome([], close=True)
        send = getattr(ctx.provider, "api_send", None)
        if send is not None and msg.get("t") is not None:
            out = msg.copy().set("from_id", client.client_id).set("to_id", client.client_id)
            send(out.set("client_gen", str(client.gen)))
        return Outcome([])
    reqtype, fromid, pid = msg.get("reqtype"), msg.get("from_id"), msg.get("pid")
    if reqtype is None or (fromid is None and pid is None):
        return Outcome([])
    if not ((pid is not None and _atoi(pid) == client.pid) or fromid == client.client_id):
        log.error("API request from non-client [%s/%s] on client %s's channel", fromid, pid, client.client_id)
        return Outcome([])
    if reqtype == "signoff":
        bye = _clstat(ctx.snap, client.client_id, "leave", "signoff", client.gen)
        return Outcome([] if client.casual else [bye], close=True)
    handler = HANDLERS.get(reqtype)
    try:
        if handler is None:
            raise _BadReq(None)
        replies = handler(ctx, msg)
    except _BadReq as exc:
        log.debug("API: bad request [%s] from %s (%s)", reqtype, client.client_id, exc.info)
        bad = _resp(reqtype).add("result", BADREQ)
        return Outcome([bad.add("info", exc.info) if exc.info else bad])
    return Outcome(replies or [])


# --------------------------------------------------------------------------- server


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int, int] | None:
    try:
        raw = writer.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid, uid, gid = struct.unpack("3i", raw)
        return pid, uid, gid
    except (OSError, AttributeError, struct.error):
        return None


async def _serve_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, provider: Provider, clients: ApiClients
) -> None:
    loop = asyncio.get_running_loop()
    clients.connections += 1
    client: ApiClient | None = None
    try:
        if clients.connections > MAX_CONNECTIONS:
            log.warning("API: too many connections, refusing one")
            return
        peer, deadline, ignored = _peer(writer), loop.time() + SIGNON_TIMEOUT, 0
        while not writer.is_closing():
            body = await read_frame(reader, None if client else max(0.01, deadline - loop.time()))
            msg = decode_body(body)
            snap = provider.api_snapshot()
            if msg is None:
                outcome = Outcome([])
            elif client is None:
                outcome, client = handle_signon(snap, msg, peer, clients)
                if client is not None:
                    client.writer = writer
            else:
                outcome = handle_request(Ctx(snap, client, clients, provider), msg)
            if client is None and not outcome.replies:
                ignored += 1
                if ignored > MAX_IGNORED:
                    return
            for reply in outcome.replies:
                writer.write(encode_frame(reply))
                if client is not None:
                    _notify(client)
            if outcome.replies:
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            if outcome.close:
                return
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
        pass
    except FrameError as exc:
        log.debug("API: dropping a client: %s", exc)
    except Exception:  # noqa: BLE001 - one bad client or state glitch must not hurt the daemon
        log.exception("API: client handler failed")
    finally:
        clients.connections -= 1
        if client is not None and clients.by_id.get(client.client_id) is client:
            del clients.by_id[client.client_id]
        writer.close()


def _prepare_dir(directory: str) -> None:
    """Create the socket's directory the way Debian's tmpfiles.d does (0750 hacluster:haclient)."""
    if os.path.isdir(directory):
        return
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o750)
    try:
        os.chown(directory, pwd.getpwnam("hacluster").pw_uid, grp.getgrnam("haclient").gr_gid)
    except (KeyError, PermissionError):
        pass


async def serve_api(
    path: str, provider: Provider, clients: ApiClients | None = None
) -> asyncio.AbstractServer:
    """Serve the client API on `path` (normally REGISTER_SOCKET). `clients` lets the daemon see
    who is signed on (query-cstatus) and deliver cluster messages; one is made if omitted."""
    _prepare_dir(os.path.dirname(path) or ".")
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
        else:
            raise FileExistsError(f"{path} exists and is not a socket")
    except FileNotFoundError:
        pass
    registry = clients if clients is not None else ApiClients()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_client(reader, writer, provider, registry)

    server = await asyncio.start_unix_server(client, path)
    os.chmod(path, 0o777)  # as 3.0.6: the directory (and apiauth) keep strangers out
    return server
