"""Our sent messages carry 3.0.6's field order: compared with real captures (tests/golden/)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from appliance.wire import catalog
from appliance.wire.message import Message, decode_packet
from appliance.wire.pcap import read_udp_datagrams

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
UUID = bytes(range(16))


@cache
def captured_orders() -> dict[tuple[str, ...], list[str]]:
    """First captured field-name order for each (type, type-specific field names) form."""
    seen: dict[tuple[str, ...], list[str]] = {}
    for pcap in sorted(GOLDEN.glob("*.pcap")):
        for dgram in read_udp_datagrams(str(pcap), 694):
            names = decode_packet(dgram.payload).msg.names()
            head = tuple(names[: names.index("src")])
            key = (decode_packet(dgram.payload).msg.get("t") or "", *sorted(head))
            seen.setdefault(key, names)
    return seen


def ours(msg: Message, seq: int | None = 7, dest_uuid: bytes | None = None) -> list[str]:
    catalog.stamp(msg, "node1", UUID, seq, 0x6B07C755, 0x6B07C79F, "0.1 0.1 0.1 1/1 1", 3, dest_uuid)
    msg.add("auth", "1 00")    # sign() appends it last
    return [n for n in msg.names() if not n.startswith("hba_")]


CASES = [
    ("status", lambda: catalog.with_facts(catalog.status("active", 6000), ["k"], True, "", []), None),
    ("resource", lambda: catalog.resource("all", True), None),
    ("resource", lambda: catalog.resource("none", False, "shutdown"), None),
    ("starting", catalog.starting, None),
    ("shutdone", catalog.shutdone, None),
    ("NS_ackmsg", lambda: catalog.ackmsg("node2", 0x1A), UUID),
    ("repnodes", lambda: catalog.repnodes("node2", ["node1", "node2"]), UUID),
    ("reqnodes", lambda: catalog.reqnodes("node2"), UUID),
    ("ask_resources", lambda: catalog.ask_resources("foreign", "me"), None),
    ("stonith", lambda: catalog.stonith_result("node2", "unneeded"), None),
]


@pytest.mark.parametrize("mtype,build,dest_uuid", CASES, ids=[c[0] for c in CASES])
def test_field_order_matches_306(mtype: str, build, dest_uuid: bytes | None) -> None:
    msg = build()
    names = ours(msg, None if mtype.startswith("NS_") else 7, dest_uuid)
    head = tuple(n for n in names[: names.index("src")] if n != "destuuid")
    key = (mtype, *sorted(head + (("destuuid",) if dest_uuid else ())))
    expected = captured_orders().get(key)
    assert expected is not None, f"no captured {key}"
    assert names == expected


def test_repnodes_values_as_306() -> None:
    msg = catalog.repnodes("node2", ["node1", "node2"])
    assert msg.get("nodelist") == "node1 node2 " and msg.get("delnodelist") == " "
