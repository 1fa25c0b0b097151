"""A UDP heartbeat relay in the lab's switch namespace that duplicates, reorders and delays
datagrams (the kernel here has no netem); re-exported by appliance.lab.faults, whose CLI runs it:
`python -m appliance.lab.faults relay ...`."""

from __future__ import annotations

import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Tuple

from ._proc import LabError

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster


RELAY_IP_HOST = 240


class UdpRelay:
    """A heartbeat relay in the switch namespace with duplication, reordering and jitter.

    The nodes use `ucast eth0 <relay ip>` as their medium; the relay receives on
    relay_ip:694 and re-broadcasts each datagram to the subnet's broadcast address, where
    every node's bcast-bound receive socket gets it (a socket bound to the relay's unicast
    address never sees its own broadcasts). Each datagram is delayed by a uniform jitter,
    duplicated with probability `dup`, and with probability `reorder` held back by an
    extra `reorder_ms` so later datagrams overtake it. Statistics go to `stats_path`.
    """

    def __init__(self, c: Cluster, dup: float = 0.0, reorder: float = 0.0, jitter_ms: float = 0.0,
                 reorder_ms: float = 150.0, loss: float = 0.0, seed: int = 1) -> None:
        lab = c.lab
        self.ip = f"{lab.subnet}.{RELAY_IP_HOST}"
        self.bcast = f"{lab.subnet}.255"
        self.stats_path = os.path.join(lab.workdir, "relay-stats.txt")
        lab.run_switch(["ip", "addr", "replace", f"{self.ip}/24", "brd", "+", "dev", "br0"])
        argv = ["ip", "netns", "exec", lab.switch_ns, sys.executable, "-m", "appliance.lab.faults",
                "relay", "--listen", self.ip, "--to", self.bcast, "--dup", str(dup),
                "--reorder", str(reorder), "--jitter-ms", str(jitter_ms), "--reorder-ms",
                str(reorder_ms), "--loss", str(loss), "--seed", str(seed), "--stats", self.stats_path]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, env=env)
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if r else b""
        if b"relay ready" not in line:
            self.stop()
            raise LabError(f"relay did not start: {line!r}")

    def stats(self) -> Dict[str, int]:
        try:
            with open(self.stats_path) as fh:
                return {k: int(v) for k, v in (ln.split("=") for ln in fh.read().split())}
        except (OSError, ValueError):
            return {}

    def stop(self) -> Dict[str, int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.stats()


def _relay_main(argv: List[str]) -> int:
    p = argparse.ArgumentParser(prog="relay")
    p.add_argument("--listen", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--port", type=int, default=694)
    p.add_argument("--dup", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--reorder-ms", type=float, default=150.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--stats", default="")
    o = p.parse_args(argv)
    rng = random.Random(o.seed)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rx.bind((o.listen, o.port))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    tx.bind((o.listen, 0))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    heap: List[Tuple[float, int, bytes]] = []
    n = 0
    st = {"received": 0, "sent": 0, "duplicated": 0, "reordered": 0, "dropped": 0}
    last_stats = 0.0

    def write_stats() -> None:
        if o.stats:
            tmp = o.stats + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(" ".join(f"{k}={v}" for k, v in st.items()))
            os.replace(tmp, o.stats)

    print("relay ready", flush=True)
    while not stop["now"]:
        now = time.monotonic()
        timeout = 0.2 if not heap else max(0.0, min(0.2, heap[0][0] - now))
        try:
            r, _, _ = select.select([rx], [], [], timeout)
        except InterruptedError:
            continue
        if r:
            for _ in range(64):
                try:
                    data = rx.recv(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                st["received"] += 1
                if rng.random() < o.loss:
                    st["dropped"] += 1
                    continue
                copies = 2 if rng.random() < o.dup else 1
                st["duplicated"] += copies - 1
                for _c in range(copies):
                    delay = rng.uniform(0, o.jitter_ms) / 1000.0
                    if rng.random() < o.reorder:
                        delay += o.reorder_ms / 1000.0
                        st["reordered"] += 1
                    n += 1
                    heapq.heappush(heap, (time.monotonic() + delay, n, data))
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, data = heapq.heappop(heap)
            try:
                tx.sendto(data, (o.to, o.port))
                st["sent"] += 1
            except OSError as exc:
                if exc.errno not in (errno.ENETUNREACH, errno.ENOBUFS, errno.EAGAIN):
                    raise
        if now - last_stats > 0.5:
            write_stats()
            last_stats = now
    write_stats()
    return 0
