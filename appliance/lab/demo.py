"""The built-in demo: the operator tutorial's 3-node cluster in namespaces, step by step.

Prints who serves the floating IP after each step and how long clients saw no answer.
Run as root: `python -m appliance.lab.demo` (scripts/demo sets everything up first).
"""

from __future__ import annotations

import argparse
import sys
import time

from appliance.lab.cluster import VIP, Cluster, ClusterConfig
from appliance.lab.netns import Lab


def outage(samples: list[tuple[float, str | None]]) -> float:
    """Longest stretch during which the client got no answer at the floating IP."""
    longest, gap_start = 0.0, None
    for t, answer in samples:
        if answer is None:
            gap_start = t if gap_start is None else gap_start
        elif gap_start is not None:
            longest, gap_start = max(longest, t - gap_start), None
    return longest


def step(c: Cluster, title: str, action, expect: str, timeout: float = 60) -> None:
    print(f"\n== {title}")
    c.lab.client.start_polling(VIP)
    t0 = time.monotonic()
    action()
    c.wait_holders([expect], timeout=timeout)
    c.lab.client.wait_for(VIP, expect, timeout=timeout)
    took = time.monotonic() - t0
    time.sleep(0.5)
    samples = c.lab.client.stop_polling()
    gap, final = outage(samples), (samples[-1][1] if samples else None)
    holders = ", ".join(c.holders()) or "nobody"
    print(f"   page served by: {final}   address held by: {holders}")
    print(f"   switch took {took:.2f} s; clients saw no answer for {gap * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keepalive", default="200ms")
    p.add_argument("--deadtime", default="2")
    args = p.parse_args(argv)
    cfg = ClusterConfig(keepalive=args.keepalive, deadtime=args.deadtime,
                        initdead=str(max(4, 2 * int(float(args.deadtime)))))
    print(f"hb-appliance demo: 3 nodes (server1..3), floating IP {VIP}, httpd = lighttpd")
    print(f"timers: keepalive {cfg.keepalive}, deadtime {cfg.deadtime}, auto_failback {cfg.auto_failback}")
    with Lab(["server1", "server2", "server3"]) as lab:
        c = Cluster(lab, cfg).setup()
        try:
            step(c, "1. start heartbeat on all three nodes",
                 lambda: [c.start(n) for n in c.names], "server1")
            step(c, "2. stop heartbeat on server1 (heartbeat -k)", lambda: c.stop("server1"), "server2")
            step(c, "3. stop heartbeat on server2", lambda: c.stop("server2"), "server3")
            step(c, "4. start server1 and server2 again (auto_failback on)",
                 lambda: (c.start("server1"), c.start("server2")), "server1")
            step(c, "5. cut server1's link (ip link set eth0 down)",
                 lambda: lab.node("server1").link_down(), "server2")
            step(c, "6. link back: server1 fails back", lambda: lab.node("server1").link_up(), "server1")
            step(c, "7. crash server1 (kill all its processes, address gone)",
                 lambda: lab.node("server1").kill_all(), "server2")
            print("\n" + c.cl_status("server2", "listnodes", "-v").stdout)
        except (TimeoutError, RuntimeError) as exc:
            print(f"demo failed: {exc}", file=sys.stderr)
            for n in c.names:
                print(f"--- {n} ha-log (tail)\n{c.log(n)[-2000:]}", file=sys.stderr)
            return 1
        finally:
            c.stop_all()
    print("demo complete: every step ended with exactly one holder of the floating IP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
