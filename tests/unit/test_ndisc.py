"""Unsolicited neighbour advertisement frames (appliance.net.ndisc), byte by byte."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.net import ndisc

MAC = bytes.fromhex("025600000002")
VIP = "2001:db8:56::10"

# Hand-computed: the ICMPv6 checksum is the one's complement of the one's complement sum of
# the 16-bit words of the pseudo-header and the message (checksum field zero):
#   source 2001:db8:56::10   2001+0db8+0056+0010                = 2e1f
#   dest   ff02::1           ff02+0001                          = ff03
#   upper-layer length 32    0000+0020                          = 0020
#   next header 58           0000+003a                          = 003a
#   type 136 code 0          8800; checksum 0000
#   flags: override only     2000+0000                          = 2000
#   target 2001:db8:56::10                                      = 2e1f
#   option type 2 len 1, MAC 02:56:00:00:00:02  0201+0256+0000+0002 = 0459
#   sum = 2e1f+ff03+0020+003a+8800+2000+2e1f+0459 = 0x207f4 -> fold 07f4+2 = 07f6
#   checksum = ~07f6 = f809      (router flag too: a000 instead of 2000 -> 7809)
EXPECTED = bytes.fromhex(
    "333300000001" "025600000002" "86dd"                # Ethernet: all-nodes MAC <- ours, IPv6
    "60000000" "0020" "3a" "ff"                         # IPv6: v6, payload 32, ICMPv6, hops 255
    "20010db8005600000000000000000010"                  # source: the address itself
    "ff020000000000000000000000000001"                  # destination: ff02::1
    "88" "00" "f809" "20000000"                         # NA, code 0, checksum, O=1 S=0 R=0
    "20010db8005600000000000000000010"                  # target
    "02" "01" "025600000002"                            # target link-layer address option
)


def test_frame_matches_the_hand_computed_packet() -> None:
    frame = ndisc.build_na(MAC, VIP)
    assert frame.hex() == EXPECTED.hex()
    assert len(frame) == ndisc.FRAME_LEN == 86


def test_router_flag_changes_flags_and_checksum_only() -> None:
    frame = ndisc.build_na(MAC, VIP, router=True)
    diff = [i for i, (a, b) in enumerate(zip(frame, EXPECTED)) if a != b]
    assert set(diff) <= {56, 57, 58}  # checksum (2 bytes) and the flags byte
    assert frame[56:59] == bytes.fromhex("7809a0")


def test_checksum_of_a_correct_message_verifies_to_zero() -> None:
    src, dst, body = EXPECTED[22:38], EXPECTED[38:54], EXPECTED[54:]
    # Summing with the checksum in place gives 0xffff, so recomputing over it yields 0.
    assert ndisc.checksum(src, dst, body) == 0
    assert ndisc.checksum(src, dst, body[:2] + b"\0\0" + body[4:]) == 0xF809


def test_parse_round_trip() -> None:
    na = ndisc.parse_na(ndisc.build_na(MAC, "2001:DB8:56:0:0:0:0:10", router=True))
    assert na == ndisc.Advert(
        src_mac="02:56:00:00:00:02", dst_mac="33:33:00:00:00:01", src_ip=VIP, dst_ip="ff02::1",
        hop_limit=255, target=VIP, router=True, solicited=False, override=True,
        lladdr="02:56:00:00:00:02", checksum_ok=True)


def test_parse_rejects_other_frames_and_flags_bad_checksums() -> None:
    assert ndisc.parse_na(b"") is None
    assert ndisc.parse_na(EXPECTED[:60]) is None
    arp = b"\xff" * 6 + MAC + b"\x08\x06" + bytes(72)
    assert ndisc.parse_na(arp) is None
    ns = EXPECTED[:54] + b"\x87" + EXPECTED[55:]  # type 135: a solicitation
    assert ndisc.parse_na(ns) is None
    corrupt = EXPECTED[:-1] + b"\x03"
    parsed = ndisc.parse_na(corrupt)
    assert parsed is not None and not parsed.checksum_ok


@pytest.mark.parametrize(
    ("mac", "ip", "why"),
    [(MAC, "192.0.2.1", "not an IPv6"), (MAC, "ff02::1", "multicast"), (MAC, "::", "unspecified"),
     (MAC, "nonsense", "not a valid"), (b"\x02\x56", VIP, "6 bytes")],
)
def test_bad_arguments(mac: bytes, ip: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        ndisc.build_na(mac, ip)


@given(st.ip_addresses(v=6).filter(lambda a: not a.is_multicast and not a.is_unspecified),
       st.binary(min_size=6, max_size=6), st.booleans())
def test_any_address_gives_a_valid_advertisement(addr, mac: bytes, router: bool) -> None:
    frame = ndisc.build_na(mac, str(addr), router)
    na = ndisc.parse_na(frame)
    assert na is not None and na.checksum_ok
    assert (na.target, na.src_ip, na.router, na.override, na.solicited) == (
        str(addr), str(addr), router, True, False)
    assert na.lladdr == na.src_mac == ":".join(f"{b:02x}" for b in mac)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_tcpdump_decodes_it_as_a_valid_neighbor_advertisement(tmp_path) -> None:
    """An independent decoder: tcpdump -vv checks the ICMPv6 checksum and names the fields."""
    frame = ndisc.build_na(MAC, VIP)
    pcap = tmp_path / "na.pcap"
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    pcap.write_bytes(header + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    out = subprocess.run(["tcpdump", "-nn", "-vv", "-r", str(pcap)], capture_output=True,
                         text=True, timeout=30).stdout
    assert "neighbor advertisement" in out and f"tgt is {VIP}" in out, out
    assert "Flags [override]" in out, out
    assert "hlim 255" in out and "ff02::1" in out, out
    # tcpdump calls option 2 (RFC 4861's target link-layer address) "destination".
    assert "link-address option (2), length 8 (1): 02:56:00:00:00:02" in out, out
    assert "[icmp6 sum ok]" in out, out
