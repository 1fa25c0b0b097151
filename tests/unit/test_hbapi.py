"""Client API server (appliance.hbapi): framing, every request, hostile clients.

Golden byte strings marked [3.0.6] were captured with strace between Debian's heartbeat 3.0.6
and its stock cl_status/api_test for the same configuration (deadtime 2, keepalive 200ms).
"""

from __future__ import annotations

import asyncio
import base64
import grp
import os
import pwd
import signal
import socket
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import hbapi
from appliance.hbapi import (
    HB_VERSION,
    MAGIC,
    ApiClient,
    ApiClients,
    Ctx,
    FrameError,
    decode_body,
    encode_frame,
    handle_request,
    handle_signon,
    parse_header,
    serve_api,
)
from appliance.wire.message import Message

UUID1 = base64.b64decode("JD64M3WxSgSf1T9iMEMndg==")  # [3.0.6] uuids of the lab nodes
UUID2 = base64.b64decode("Yg50EP4zQbKCEfDelC8wZQ==")
ME = (os.getpid(), os.geteuid(), os.getegid())


def snapshot(**over: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "node": "server1",
        "rscstatus": "transition",
        "generation": 7,
        "nodes": [
            {"name": "192.168.56.1", "state": "dead", "type": "ping", "links": {"192.168.56.1": "dead"}},
            {"name": "server1", "state": "active", "type": "normal", "links": {"eth0": "up"}},
            {"name": "server2", "state": "active", "type": "normal", "links": {"eth0": "up", "eth1": "dead"}},
        ],
        "params": {
            "deadtime": "2",
            "keepalive": "200ms",
            "crm": "false",
            "udpport": "694",
            "warntime": "1",
            "logfile": "/var/log/ha-log",
        },
        "uuids": {"server1": UUID1, "server2": UUID2},
    }
    snap.update(over)
    return snap


class Stub:
    def __init__(self, snap: dict[str, Any] | None = None) -> None:
        self.snap = snap or snapshot()
        self.sent: list[Message] = []
        self.queries: list[tuple[str, str, str]] = []
        self.fail = False

    def api_snapshot(self) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("daemon state broken")
        return self.snap


def req(reqtype: str, *fields: tuple[str, str], pid: int = ME[0], fromid: str | None = None) -> Message:
    m = Message.of(t="hbapi-req", reqtype=reqtype, dest="server1", pid=str(pid))
    m.add("from_id", str(pid) if fromid is None else fromid)
    for k, v in fields:
        m.add(k, v)
    return m


def signon_msg(fromid: str | None = None, uid: int = ME[1], gid: int = ME[2], pid: int = ME[0]) -> Message:
    return req("signon", ("uid", str(uid)), ("gid", str(gid)), pid=pid, fromid=fromid)


def casual(clients: ApiClients | None = None, uid: int = 0, gid: int = 0) -> ApiClient:
    client = ApiClient(str(ME[0]), ME[0], uid, gid, casual=True, gen=0)
    if clients is not None:
        clients.by_id[client.client_id] = client
    return client


def ask(
    msg: Message, snap: dict[str, Any] | None = None, client: ApiClient | None = None, provider: Any = None
) -> hbapi.Outcome:
    clients = ApiClients()
    client = client or casual(clients)
    return handle_request(Ctx(snap or snapshot(), client, clients, provider), msg)


def frames(outcome: hbapi.Outcome) -> bytes:
    return b"".join(encode_frame(m) for m in outcome.replies)


def wire(text: bytes) -> bytes:
    """A 3.0.6 frame from its classic text (the NUL is added and counted)."""
    return struct.pack("=II", len(text) + 1, MAGIC) + text + b"\0"


# --------------------------------------------------------------------------- framing


SIGNON_OK_306 = (
    b"\xb6\x00\x00\x00\xcd\xab\x00\x00>>>\nt=hbapi-resp\nreqtype=signon\nresult=OK\ndeadtime=7d0\n"
    b"keepalive=c8\nnode=server1\nhbversion=3.0.6 (node: 958e11be8686759f1b99204c17812f2c2633b169)\n"
    b"pacemaker=false\nlogfacility=-1\n<<<\n\x00"
)  # [3.0.6]


def test_frame_layout_matches_306():
    reply = handle_signon(snapshot(), signon_msg(), ME, ApiClients())[0].replies[0]
    assert encode_frame(reply) == SIGNON_OK_306


def test_frame_header_native_length_and_magic():
    data = encode_frame(Message.of(t="x"))
    length, magic = struct.unpack("=II", data[:8])
    assert (length, magic) == (len(data) - 8, 0xABCD) and data.endswith(b"<<<\n\0")


@pytest.mark.parametrize(
    "header",
    [struct.pack("=II", 10, 0x1234), struct.pack("=II", 0, MAGIC), struct.pack("=II", 1 << 20, MAGIC), b"\0"],
)
def test_bad_headers_are_frame_errors(header):
    with pytest.raises(FrameError):
        parse_header(header)


def test_decode_body_accepts_both_encodings_and_ignores_junk():
    classic = b">>>\nt=hbapi-req\nreqtype=signon\n<<<\n\0"
    netstring = b"###\n14:(0)t=hbapi-req,17:(0)reqtype=signon,%%%\n"
    for body in (classic, netstring):
        msg = decode_body(body)
        assert msg is not None and msg.get("reqtype") == "signon"
    assert decode_body(b"hello world\0") is None
    assert decode_body(b">>>\nno equals sign\n<<<\n") is None


@given(st.binary(min_size=8, max_size=8))
def test_parse_header_fuzz(header):
    try:
        n = parse_header(header)
    except FrameError:
        return
    assert 0 < n <= hbapi.MAX_FRAME


@given(st.binary(max_size=2048))
def test_decode_body_fuzz(body):
    msg = decode_body(body)
    assert msg is None or isinstance(msg, Message)


_name = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="=("), min_size=1)
# 0x13 is classic's newline escape (3.0.6 turns it into "\n" on receipt), NUL ends a C string.
_value = st.text(st.characters(blacklist_characters="\0\x13", blacklist_categories=("Cs",)), max_size=40)


@given(st.lists(st.tuples(_name, _value), max_size=8))
def test_encode_frame_round_trip(fields):
    msg = Message.of()
    for k, v in fields:
        msg.add(k, v)
    data = encode_frame(msg)
    assert parse_header(data[:8]) == len(data) - 8
    assert decode_body(data[8:]) == msg


# --------------------------------------------------------------------------- signon


def test_signon_registers_casual_client():
    clients = ApiClients()
    out, client = handle_signon(snapshot(), signon_msg(), ME, clients)
    assert client is not None and client.casual and clients.online(str(ME[0]))
    assert not out.close and out.replies[0].get("result") == "OK"


def test_signon_failure_matches_306():
    # [3.0.6] uid claimed != SO_PEERCRED uid
    out, client = handle_signon(snapshot(), signon_msg(uid=ME[1] + 1000), ME, ApiClients())
    expected = wire(
        b">>>\nt=hbapi-resp\nreqtype=signon\ninfo=incorrect/false credentials\nresult=badreq\n"
        b"deadtime=7d0\nkeepalive=c8\nnode=server1\nhbversion="
        + HB_VERSION.encode()
        + b"\npacemaker=false\nlogfacility=-1\n<<<\n"
    )
    assert client is None and out.close and frames(out) == expected


def test_named_client_without_apiauth_gets_leave_notice():
    out, client = handle_signon(snapshot(), signon_msg("foo"), ME, ApiClients())
    assert client is None and out.close
    assert out.replies[0].get("info") == "no default client auth"
    leave = out.replies[1]  # [3.0.6] t=hbapi-clstat st=leave from_id=foo to_id=foo src=... info=...
    assert leave.names() == ["t", "st", "from_id", "to_id", "src", "info", "client_gen"]
    assert (leave.get("t"), leave.get("st"), leave.get("to_id")) == ("hbapi-clstat", "leave", "foo")


def test_named_client_with_apiauth_and_duplicate():
    user = pwd.getpwuid(ME[1]).pw_name
    snap = snapshot(apiauth={"ping": ((user,), ())})
    clients = ApiClients()
    out, client = handle_signon(snap, signon_msg("ping"), ME, clients)
    assert client is not None and not client.casual and out.replies[0].get("result") == "OK"
    out, second = handle_signon(snap, signon_msg("ping"), ME, clients)
    assert second is None and out.replies[0].get("info") == "duplicate add request"
    assert out.replies[1].get("from_id") == ""  # [3.0.6] the id is not taken yet


@pytest.mark.parametrize(
    ("uid", "gid", "ok"),
    [
        (0, 0, True),
        (0, 65534, True),
        (65534, "haclient", True),
        ("hacluster", 65534, False),
        (65534, 65534, False),
    ],
)
def test_anon_authorization_like_306(uid, gid, ok):
    """[3.0.6] root or group haclient may sign on casually; hacluster alone may not."""
    try:
        uid = uid if isinstance(uid, int) else pwd.getpwnam(uid).pw_uid
        gid = gid if isinstance(gid, int) else grp.getgrnam(gid).gr_gid
    except KeyError:
        pytest.skip("heartbeat accounts not installed")
    peer = (ME[0], uid, gid)
    out, client = handle_signon(snapshot(), signon_msg(uid=uid, gid=gid), peer, ApiClients())
    assert (client is not None) == ok
    assert out.replies[0].get("info") == (None if ok else "client failed authorization")


def test_signon_refusals():
    snap, clients = snapshot(), ApiClients()
    dead = 2**22 + 12345  # above pid_max's default: no such process
    out, _ = handle_signon(snap, signon_msg(pid=dead), None, clients)
    assert out.replies[0].get("info") == "cannot add client"
    out, _ = handle_signon(snap, signon_msg(), (ME[0] + 1, ME[1], ME[2]), clients)
    assert out.replies[0].get("info") == "pid mismatch"
    out, _ = handle_signon(snap, req("signon"), ME, clients)
    assert out.replies[0].get("info") == "invalid id info"
    assert not clients.by_id


def test_non_signon_first_messages_are_ignored():
    for msg in (
        req("nodestatus", ("node", "server1")),
        Message.of(t="hbapi-req", reqtype="signon"),
        Message.of(t="status"),
    ):
        out, client = handle_signon(snapshot(), msg, ME, ApiClients())
        assert out == hbapi.Outcome([]) and client is None


def test_signon_reply_timers_and_facility():
    params = {"deadtime": "30", "keepalive": "1", "logfacility": "local0", "pacemaker": "off"}
    reply = handle_signon(snapshot(params=params), signon_msg(), ME, ApiClients())[0].replies[0]
    assert (reply.get("deadtime"), reply.get("keepalive")) == ("7530", "3e8")
    assert (reply.get("logfacility"), reply.get("pacemaker")) == ("128", "off")


# --------------------------------------------------------------------------- requests


def test_nodelist_streams_more_then_ok_like_306():
    head = b">>>\nt=hbapi-resp\nreqtype=nodelist\n"
    expected = (
        wire(head + b"node=192.168.56.1\nnodetype=ping\nst=dead\nresult=ok/more\n<<<\n")
        + wire(head + b"node=server1\nnodetype=normal\nst=active\nresult=ok/more\n<<<\n")
        + wire(head + b"node=server2\nnodetype=normal\nst=active\nresult=OK\n<<<\n")
    )  # [3.0.6]
    assert frames(ask(req("nodelist"))) == expected


@pytest.mark.parametrize(
    ("msg", "expected"),
    [
        (req("nodestatus", ("node", "SERVER2")), b"st=active\nresult=OK\n"),
        (req("nodestatus", ("node", "bogus")), b"result=badreq\ninfo=EINVAL\n"),
        (req("nodeweight", ("node", "server1")), b"weight=100\nresult=OK\n"),
        (req("nodesite", ("node", "server1")), b"site=\nresult=OK\n"),
        (req("nodetype", ("node", "192.168.56.1")), b"nodetype=ping\nresult=OK\n"),
        (req("iflist", ("node", "192.168.56.1")), b"ifname=192.168.56.1\nst=dead\nresult=OK\n"),
        (req("iflist", ("node", "bogus")), b"result=badreq\ninfo=EINVAL\n"),
        (req("ifstatus", ("node", "server2"), ("ifname", "eth1")), b"st=dead\nresult=OK\n"),
        (req("ifstatus", ("node", "server2"), ("ifname", "ETH0")), b"result=badreq\ninfo=EINVAL\n"),
        (req("getrsc"), b"rsc_hold=transition\nresult=OK\n"),
        (req("getparm", ("pname", "keepalive")), b"pvalue=200ms\nresult=OK\n"),
        (req("getparm", ("pname", "nosuch")), b"result=OK\n"),
        (req("getparm"), b"result=badreq\ninfo=EINVAL\n"),
        (req("getparm", ("pname", "pacemaker")), b"pvalue=false\nresult=OK\n"),
        (req("numnodes"), b"numnodes=2\nresult=OK\n"),
        (req("getuuid", ("queryname", "server2")), b"(1)queryuuid=Yg50EP4zQbKCEfDelC8wZQ==\nresult=OK\n"),
        (req("getuuid", ("queryname", "nosuch")), b"result=OK\n"),
        (req("getuuid"), b"result=badreq\ninfo=no query node name found\n"),
        (req("getnodename"), b"result=badreq\ninfo=no query node name found\n"),
        (req("clientstatus", ("node", "server1")), b"result=badreq\ninfo=EINVAL\n"),
        (
            req("clientstatus", ("node", "server1"), ("cn", str(ME[0]))),
            b"subt=respond-cstatus\ncs=online\nresult=OK\n",
        ),
        (
            req("clientstatus", ("node", "192.168.56.1"), ("cn", "x")),
            b"subt=respond-cstatus\ncs=offline\nresult=OK\n",
        ),
        (req("setfilter", ("fmask", "zz")), b"result=badreq\ninfo=EINVAL\n"),
        (req("setfilter", ("fmask", "40")), b"result=badreq\ninfo=EINVAL\n"),
        (req("setfilter", ("fmask", "1")), b"result=OK\n"),
        (req("setsignal", ("signal", "9")), b"result=badreq\ninfo=EINVAL\n"),
        (req("setsignal"), b"result=badreq\n"),
        (req("setsignal", ("signal", "0")), b"result=OK\n"),
        (req("bogusreq"), b"result=badreq\n"),
    ],
)
def test_requests_like_306(msg, expected):
    """Every body here is what 3.0.6 answered to the same request [3.0.6]."""
    reqtype = msg.get("reqtype").encode()
    assert frames(ask(msg)) == wire(b">>>\nt=hbapi-resp\nreqtype=" + reqtype + b"\n" + expected + b"<<<\n")


def test_iflist_streams_links_in_order():
    out = ask(req("iflist", ("node", "server2")))
    assert [(m.get("ifname"), m.get("st"), m.get("result")) for m in out.replies] == [
        ("eth0", "up", "ok/more"),
        ("eth1", "dead", "OK"),
    ]


def test_getnodename_and_uuid_round_trip():
    out = ask(req("getuuid", ("queryname", "server1")))
    uuid = out.replies[0].get_bytes("queryuuid")
    assert uuid == UUID1 and base64.b64encode(uuid) in frames(out)
    m = req("getnodename")
    m.add_bytes("queryuuid", UUID1)
    assert ask(m).replies[0].get("queryname") == "server1"
    m = req("getnodename")
    m.add_bytes("queryuuid", b"\x01" * 16)
    assert ask(m).replies[0].names() == ["t", "reqtype", "result"]


def test_setfilter_debug_needs_privilege():
    nobody = ApiClient("42", ME[0], 65534, 65534, True, 0)
    if os.getuid() == 65534:
        pytest.skip("running as nobody")
    assert ask(req("setfilter", ("fmask", "3f")), client=nobody).replies[0].get("info") == "EPERM"
    root = ApiClient("42", ME[0], 0, 0, True, 0)
    assert ask(req("setfilter", ("fmask", "3f")), client=root).replies[0].get("result") == "OK"
    assert root.fmask == 0x3F


def test_no_reply_requests_and_signoff():
    assert ask(req("set_sendqlen", ("sendqlen", "100"))) == hbapi.Outcome([])
    assert ask(req("signoff")) == hbapi.Outcome([], close=True)
    named = ApiClient("ping", ME[0], 0, 0, False, 3)
    out = ask(req("signoff", fromid="ping"), client=named)
    assert out.close and [(m.get("t"), m.get("st"), m.get("info")) for m in out.replies] == [
        ("hbapi-clstat", "leave", "signoff")
    ]


def test_requests_must_come_from_the_signed_on_client():
    assert ask(req("nodestatus", ("node", "server1"), pid=1, fromid="someone")) == hbapi.Outcome([])
    # [3.0.6] the pid identifies the client even with a foreign from_id
    assert ask(req("nodestatus", ("node", "server1"), fromid="12345")).replies
    assert ask(Message.of(t="hbapi-req", reqtype="nodelist")) == hbapi.Outcome([])


def test_general_messages():
    assert ask(Message.of(t="ping")) == hbapi.Outcome([], close=True)  # casual: dropped
    stub = Stub()
    stub.api_send = stub.sent.append  # type: ignore[attr-defined]
    named = ApiClient("ping", ME[0], 0, 0, False, 9)
    assert ask(Message.of(t="ping"), client=named, provider=stub) == hbapi.Outcome([])
    assert [(m.get("t"), m.get("from_id"), m.get("to_id"), m.get("client_gen")) for m in stub.sent] == [
        ("ping", "ping", "ping", "9")
    ]


def test_clientstatus_on_active_peer_is_asked_of_the_cluster():
    stub = Stub()
    stub.api_query_client = lambda *a: stub.queries.append(a)  # type: ignore[attr-defined]
    msg = req("clientstatus", ("node", "server2"), ("cn", "ipfail"))
    assert ask(msg, provider=stub) == hbapi.Outcome([])
    assert stub.queries == [("server2", "ipfail", str(ME[0]))]
    assert ask(msg) == hbapi.Outcome([])  # no hook: no answer, the caller times out


def test_getrsc_refused_under_pacemaker():
    out = ask(req("getrsc"), snap=snapshot(params={"pacemaker": "respawn"}))
    assert out.replies[0].get("info") == "Resource is managed by crm. Use crm tool to query resource"


def test_hbversion_and_crm_alias():
    assert ask(req("getparm", ("pname", "hbversion"))).replies[0].get("pvalue") == HB_VERSION
    out = ask(req("getparm", ("pname", "crm")), snap=snapshot(params={"pacemaker": "false"}))
    assert out.replies[0].get("pvalue") == "false"


# --------------------------------------------------------------------------- the socket server


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, msg: Message | bytes) -> None:
        self.writer.write(msg if isinstance(msg, bytes) else encode_frame(msg))
        await self.writer.drain()

    async def recv(self, timeout: float = 2.0) -> Message | None:
        """Next message, or None at EOF."""
        try:
            header = await asyncio.wait_for(self.reader.readexactly(8), timeout)
        except asyncio.IncompleteReadError:
            return None
        body = await asyncio.wait_for(self.reader.readexactly(parse_header(header)), timeout)
        msg = decode_body(body)
        assert msg is not None
        return msg

    async def quiet(self, wait: float = 0.2) -> bool:
        """True if nothing arrives (and the connection stays open) for `wait` seconds."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), wait)
        except asyncio.TimeoutError:
            return True
        raise AssertionError(f"unexpected data or EOF: {data!r}")

    def close(self) -> None:
        self.writer.close()


async def connect(path: str) -> Conn:
    return Conn(*await asyncio.open_unix_connection(path))


def run_server(tmp_path: Path, body, provider: Any = None, clients: ApiClients | None = None) -> None:
    path = str(tmp_path / "hb" / "register")

    async def main() -> None:
        server = await serve_api(path, provider or Stub(), clients)
        try:
            await asyncio.wait_for(body(path), 30)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_server_socket_and_directory(tmp_path):
    async def body(path: str) -> None:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777 and stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o750
        c = await connect(path)
        await c.send(signon_msg())
        assert encode_frame(await c.recv()) == SIGNON_OK_306
        await c.send(req("nodelist"))
        assert [(await c.recv()).get("result") for _ in range(3)] == ["ok/more", "ok/more", "OK"]
        await c.send(req("signoff"))
        assert await c.recv() is None
        c.close()

    run_server(tmp_path, body)


def test_stale_socket_replaced_but_not_other_files(tmp_path):
    path = tmp_path / "register"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()

    async def check() -> None:
        server = await serve_api(str(path), Stub())
        server.close()
        await server.wait_closed()
        other = tmp_path / "file"
        other.write_text("x")
        with pytest.raises(FileExistsError):
            await serve_api(str(other), Stub())

    asyncio.run(check())


def test_bad_magic_and_oversize_close_the_connection(tmp_path):
    async def body(path: str) -> None:
        for junk in (struct.pack("=II", 10, 0x1234) + b"0123456789", struct.pack("=II", 1 << 24, MAGIC)):
            c = await connect(path)
            await c.send(junk)
            assert await c.recv() is None
            c.close()

    run_server(tmp_path, body)


def test_junk_before_signon_is_ignored_then_limited(tmp_path):
    async def body(path: str) -> None:
        c = await connect(path)
        await c.send(wire(b"hello world"))
        await c.send(req("nodestatus", ("node", "server1")))
        assert await c.quiet()
        await c.send(signon_msg())
        assert (await c.recv()).get("result") == "OK"
        c.close()
        c = await connect(path)
        for _ in range(hbapi.MAX_IGNORED + 1):
            await c.send(wire(b"junk"))
        assert await c.recv() is None
        c.close()

    run_server(tmp_path, body)


def test_signon_deadline_and_slow_client_does_not_block_others(tmp_path, monkeypatch):
    monkeypatch.setattr(hbapi, "SIGNON_TIMEOUT", 0.5)

    async def body(path: str) -> None:
        slow = await connect(path)
        await slow.send(struct.pack("=II", 200, MAGIC) + b">>>\nt=hb")  # a frame that never ends
        fast = await connect(path)
        await fast.send(signon_msg())
        assert (await fast.recv(timeout=0.3)).get("result") == "OK"
        await fast.send(req("getrsc"))
        assert (await fast.recv(timeout=0.3)).get("rsc_hold") == "transition"
        assert await slow.recv(timeout=3) is None  # dropped at the signon deadline
        idle = await connect(path)
        assert await idle.recv(timeout=3) is None
        await asyncio.sleep(0.6)  # a signed-on client may stay idle
        await fast.send(req("numnodes"))
        assert (await fast.recv()).get("numnodes") == "2"
        for c in (slow, fast, idle):
            c.close()

    run_server(tmp_path, body)


def test_provider_failure_drops_only_that_request(tmp_path):
    stub = Stub()

    async def body(path: str) -> None:
        stub.fail = True
        c = await connect(path)
        await c.send(signon_msg())
        assert await c.recv() is None
        stub.fail = False
        c = await connect(path)
        await c.send(signon_msg())
        assert (await c.recv()).get("result") == "OK"
        c.close()

    run_server(tmp_path, body, stub)


def test_registry_follows_connections_and_delivers(tmp_path):
    clients = ApiClients()

    async def body(path: str) -> None:
        c = await connect(path)
        await c.send(signon_msg())
        await c.recv()
        assert clients.online(str(ME[0])) and clients.connections == 1
        assert clients.deliver(Message.of(t="status", src="server2", st="dead")) == 1
        assert (await c.recv()).get("st") == "dead"
        assert clients.deliver(Message.of(t="x", to_id="someone-else")) == 0
        c.close()
        for _ in range(50):
            if not clients.by_id:
                break
            await asyncio.sleep(0.02)
        assert not clients.by_id and clients.connections == 0

    run_server(tmp_path, body, clients=clients)


def test_setsignal_signals_the_client_after_each_reply(tmp_path):
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda n, f: got.append(n))

    async def body(path: str) -> None:
        c = await connect(path)
        await c.send(signon_msg())
        await c.recv()
        await c.send(req("setsignal", ("signal", str(int(signal.SIGUSR1)))))
        assert (await c.recv()).get("result") == "OK"
        await c.send(req("getrsc"))
        await c.recv()
        c.close()

    try:
        run_server(tmp_path, body)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got and set(got) == {signal.SIGUSR1}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.binary(max_size=64), max_size=6), prefix=st.booleans())
def test_hostile_streams_never_hurt_the_server(tmp_path_factory, chunks, prefix):
    tmp = tmp_path_factory.mktemp("fuzz")

    async def body(path: str) -> None:
        bad = await connect(path)
        if prefix:
            await bad.send(encode_frame(signon_msg()))
        for chunk in chunks:
            try:
                await bad.send(struct.pack("=II", len(chunk), MAGIC) + chunk if len(chunk) % 2 else chunk)
            except ConnectionError:
                break
        good = await connect(path)
        await good.send(signon_msg(fromid=f"{ME[0]}-good"))  # casual too: same pid, other id
        assert (await good.recv()).get("result") == "OK"
        await good.send(req("numnodes", fromid=f"{ME[0]}-good"))
        assert (await good.recv()).get("numnodes") == "2"
        bad.close()
        good.close()

    run_server(tmp, body)


def test_connection_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(hbapi, "MAX_CONNECTIONS", 3)

    async def body(path: str) -> None:
        held = [await connect(path) for _ in range(3)]
        await asyncio.sleep(0.05)
        extra = await connect(path)
        assert await extra.recv() is None  # refused at once
        held[0].close()
        await asyncio.sleep(0.05)
        again = await connect(path)
        await again.send(signon_msg())
        assert (await again.recv()).get("result") == "OK"
        for c in (*held, extra, again):
            c.close()

    run_server(tmp_path, body)
