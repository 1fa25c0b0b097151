"""A bounded (~10 s) run of the packet fuzzer (appliance/lab/fuzz.py; `scripts/fuzz` runs >= 10^6).

Golden 3.0.6 packets, byte-mutated packets, random datagrams and structurally mutated messages
re-signed with the right key go through decode_packet + verify and through the receive path of
a real Daemon (constructed, never run). Nothing may escape, every drop is counted by reason,
rejected packets leave the daemon's state alone, and memory stays flat.
"""

from __future__ import annotations

import os

import pytest

from appliance.lab.fuzz import Fuzzer, format_report

SECONDS = float(os.environ.get("HBA_FUZZ_SECONDS", "10"))
RSS_LIMIT_KIB = 16 * 1024


@pytest.fixture(scope="module")
def stats():
    fz = Fuzzer(seed=int(os.environ.get("HBA_FUZZ_SEED", "5")))
    try:
        st = fz.run(packets=10**6, seconds=SECONDS)
    finally:
        fz.close()
    print(format_report(st, RSS_LIMIT_KIB))
    return st


def test_nothing_escapes(stats) -> None:
    assert stats.packets >= 5000
    assert not stats.escapes, format_report(stats, RSS_LIMIT_KIB)
    assert not stats.direct.get("decode:decoder_bug") and not stats.daemon_drops.get("decoder_bug")
    assert stats.log_format_errors == 0


def test_every_drop_has_a_reason(stats) -> None:
    decode = {k for k in stats.direct if k.startswith("decode:")}
    assert len(decode) >= 6, stats.direct
    assert {"verify:auth_mismatch", "verify:auth_bad_index"} <= set(stats.direct), stats.direct
    # The daemon counts what it drops: decoder reasons, auth, membership (replay, duplicate,
    # unknown node) and field checks.
    expected = {"bad_length", "auth_mismatch", "unknown_node", "replay", "duplicate", "bad_fields"}
    assert expected <= set(stats.daemon_drops), stats.daemon_drops
    # Everything the direct path rejected the daemon rejected too, under the same reason; other
    # nodes' ACKs (genuine, forged or mangled after their `dest`) it skips unread.
    assert stats.others_acks > 0
    for key, n in stats.direct.items():
        if key.startswith(("decode:", "verify:")):
            assert stats.daemon_drops.get(key.split(":", 1)[1], 0) >= n, (key, n, stats.daemon_drops)


def test_handlers_were_reached(stats) -> None:
    reached = {t for t, n in stats.accepted.items() if n}
    want = {"status", "resource", "starting", "shutdone", "hb_takeover", "ask_resources", "NS_rexmit",
            "NS_nak_rexmit", "reqnodes", "ip-request"}
    assert want <= reached, stats.accepted
    assert stats.check_loop_runs > 10


def test_rejected_packets_leave_state_alone(stats) -> None:
    assert stats.rejected_state_changes == 0, stats.rejected_examples


def test_memory_stays_flat(stats) -> None:
    assert stats.rss_end_kib - stats.rss_warm_kib <= RSS_LIMIT_KIB, format_report(stats, RSS_LIMIT_KIB)
    for name, sizes in stats.sizes_end.items():
        assert sizes["history"] <= 500, (name, sizes)
        assert sizes["drop_keys"] <= 40, (name, sizes)
