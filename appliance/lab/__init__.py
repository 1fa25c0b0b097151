"""Network-namespace lab for end-to-end tests, the demo and the benchmark.

    from appliance.lab import Lab, install_httpd
    with Lab() as lab:                       # server1..3 + client on one bridge
        install_httpd(lab.node("server1"))
        ...

Needs root, iproute2, util-linux (nsenter/unshare), nftables, tcpdump, lighttpd.
Set HBLAB_KEEP=1 to keep the work directory after close().
"""

from ._proc import LabCommandError, LabError
from .capture import (
    ArpFrame,
    Capture,
    PcapPacket,
    is_gratuitous,
    parse_arp_frames,
    read_pcap,
    send_gratuitous_arp,
)
from .client import Client
from .httpd import httpd_script, install_httpd
from .netns import Lab, cleanup_stale
from .node import Node

__all__ = [
    "ArpFrame",
    "Capture",
    "Client",
    "Lab",
    "LabCommandError",
    "LabError",
    "Node",
    "PcapPacket",
    "cleanup_stale",
    "httpd_script",
    "install_httpd",
    "is_gratuitous",
    "parse_arp_frames",
    "read_pcap",
    "send_gratuitous_arp",
]
