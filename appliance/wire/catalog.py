"""Builders for the messages we send, with 3.0.6's field order (spec §5.1, §7).

The type-specific fields come first (`t` always first), then the standard fields that
`stamp()` appends in the sender's fixed order.  Our own extension fields (prefixed `hba_`)
ride after the type-specific ones; Heartbeat 3.0.6 looks fields up by name and ignores them.
"""

from __future__ import annotations

from appliance.wire.message import Message

PROTOCOL_VERSION = "1"

# Extension fields: the facts our ownership core shares between our own nodes.
X_HELD = "hba_held"          # space-separated group keys this node holds (possibly empty)
X_READY = "hba_ready"        # "1" once start-up negotiation is over
X_STANDBY = "hba_standby"    # "<scope> <epoch>" or ""
X_FAILED = "hba_failed"      # space-separated group keys this node failed to start
X_PING = "hba_ping"          # how many ping nodes (ha.cf ping / ping_group) this node reaches


def status(st: str, dt_ms: int) -> Message:
    return Message.of(t="status", st=st, dt=f"{dt_ms:x}", protocol=PROTOCOL_VERSION)


def with_facts(msg: Message, held: list[str], ready: bool, standby: str, failed: list[str],
               ping: int | None = None) -> Message:
    msg.add(X_HELD, " ".join(held))
    msg.add(X_READY, "1" if ready else "0")
    msg.add(X_STANDBY, standby)
    msg.add(X_FAILED, " ".join(failed))
    if ping is not None:            # only when ping nodes are configured
        msg.add(X_PING, str(ping))
    return msg


def resource(rsc_hold: str, stable: bool, info: str | None = None) -> Message:
    msg = Message.of(t="resource", rsc_hold=rsc_hold, rtype="full", isstable="1" if stable else "0")
    if info:
        msg.add("info", info)
    return msg


def starting() -> Message:
    return Message.of(t="starting")


def shutdone() -> Message:
    return Message.of(t="shutdone", st="dead")


def ask_resources(rsc_hold: str, info: str) -> Message:
    return Message.of(t="ask_resources", rsc_hold=rsc_hold, info=info)


def hb_takeover(rsc_hold: str) -> Message:
    return Message.of(t="hb_takeover", rsc_hold=rsc_hold)


def ip_request(key: str) -> Message:
    return Message.of(t="ip-request", ipaddr=key)


def ip_request_resp(dest: str, key: str, weown: bool) -> Message:
    return Message.of(t="ip-request-resp", dest=dest, ipaddr=key, weown="yes" if weown else "no", ok="OK")


def ackmsg(dest: str, ackseq: int) -> Message:
    return Message.of(t="NS_ackmsg", dest=dest, ackseq=f"{ackseq:x}")


def rexmit(dest: str, seq: int) -> Message:
    return Message.of(t="NS_rexmit", dest=dest, firstseq=str(seq), lastseq=str(seq))


def nak_rexmit(dest: str, seq: int, info: str) -> Message:
    return Message.of(t="NS_nak_rexmit", firstseq=f"{seq:x}", dest=dest, info=info)


def reqnodes(dest: str) -> Message:
    return Message.of(t="reqnodes", dest=dest)


def repnodes(dest: str, nodes: list[str]) -> Message:
    # 3.0.6 really sends `dest` before `t` here, and a single space for an empty delnodelist.
    return Message.of(dest=dest, t="repnodes", nodelist="".join(f"{n} " for n in nodes), delnodelist=" ")


def stonith_result(node: str, result: str) -> Message:
    return Message.of(t="stonith", node=node, result=result)


def stamp(
    msg: Message,
    src: str,
    uuid: bytes,
    seq: int | None,
    generation: int,
    ts: int,
    load: str | None,
    ttl: int,
    destuuid: bytes | None = None,
) -> Message:
    """Append the standard sender fields in 3.0.6's order; NS_ types carry no seq and no ld.

    `destuuid` goes first when the message has a `dest` whose uuid we know.
    """
    unsequenced = (msg.get("t") or "").startswith("NS_")
    if destuuid is not None and "dest" in msg:
        msg.add_bytes("destuuid", destuuid)
    msg.add("src", src)
    msg.add_bytes("srcuuid", uuid)
    if not unsequenced and seq is not None:
        msg.add("seq", f"{seq:x}")
    msg.add("hg", f"{generation:x}")
    msg.add("ts", f"{ts:x}")
    if not unsequenced and load is not None:
        msg.add("ld", load)
    msg.add("ttl", str(ttl))
    return msg


def rsc_hold_name(mask: int) -> str:
    return ("none", "local", "foreign", "all")[mask & 3]


def rsc_hold_mask(name: str | None) -> int:
    return {"none": 0, "local": 1, "foreign": 2, "all": 3}.get(name or "", 0)
