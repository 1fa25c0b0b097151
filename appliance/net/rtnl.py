"""Load only the parts of pyroute2 we use (rtnetlink message classes and their marshal).

`import pyroute2.netlink.rtnl.ifaddrmsg` first runs pyroute2/__init__.py, which imports the
whole library: NDB with sqlite3, IPDB, nftables, ipset, plan9, multiprocessing and even
unittest.mock, about 200 modules and ~8 MB of heap per node, for code the daemon never calls.
Registering the package without running its __init__ lets the submodules import normally.
Called by the daemon at start-up only: tools and tests keep the full library.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def lean_pyroute2() -> bool:
    """Register a bare `pyroute2` package; False if it is already imported or not found."""
    if "pyroute2" in sys.modules:
        return False
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or not spec.submodule_search_locations:
        return False
    pkg = types.ModuleType("pyroute2")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    pkg.__package__ = "pyroute2"
    sys.modules["pyroute2"] = pkg
    return True


def rtnl_marshal():
    """A parser for the rtnetlink messages we read (links, addresses, routes) without
    pyroute2's MarshalRtnl, which imports every message class (qdiscs, neighbours, probes...)."""
    from pyroute2.netlink import rtnl
    from pyroute2.netlink.marshal import Marshal
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    class LeanMarshal(Marshal):
        msg_map = {
            rtnl.RTM_NEWLINK: ifinfmsg, rtnl.RTM_DELLINK: ifinfmsg, rtnl.RTM_GETLINK: ifinfmsg,
            rtnl.RTM_NEWADDR: ifaddrmsg, rtnl.RTM_DELADDR: ifaddrmsg, rtnl.RTM_GETADDR: ifaddrmsg,
            rtnl.RTM_NEWROUTE: rtmsg, rtnl.RTM_DELROUTE: rtmsg, rtnl.RTM_GETROUTE: rtmsg,
        }

        def fix_message(self, msg):  # as MarshalRtnl: name the event
            msg["event"] = rtnl.RTM_VALUES.get(msg["header"]["type"], msg["header"]["type"])

    return LeanMarshal()
