"""Host side of the benchmark (appliance.lab.bench): per-process CPU/memory readers from
/proc, the progress log, the overload guard that aborts a run before it takes the shared machine
down, killing and force-cleaning a lab's namespaces, pcap source extraction and timed command
runs. Knows nothing of the implementations or the metrics."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# =============================================================================== /proc

def proc_cpu_ticks(pid: int) -> Optional[int]:
    """utime + stime of pid in clock ticks (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # rest[0] is field 3 (state); utime, stime are fields 14, 15.
    return int(rest[11]) + int(rest[12])


def proc_rss_kb(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def proc_pss_kb(pid: int) -> Optional[int]:
    """Proportional set size: shared pages divided among the processes that map them, so a
    sum over several processes (3.0.6's four, our daemon + helper) counts them once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def proc_sched_ns(pid: int) -> Optional[int]:
    """CPU time in ns of every thread of pid (/proc/PID/task/*/schedstat, first field)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_ms_per_min(ticks0: Dict[int, Optional[int]], ticks1: Dict[int, Optional[int]],
                   elapsed: float, clk_tck: int = CLK_TCK) -> float:
    """CPU milliseconds per minute over pids present at both ends of the window."""
    used = sum(ticks1[p] - ticks0[p] for p in ticks0
               if ticks0[p] is not None and ticks1.get(p) is not None)   # type: ignore[operator]
    return used / clk_tck * 1000.0 / elapsed * 60.0


# =============================================================================== lab helpers

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class Overload(Exception):
    """The machine is overloaded (process storm / runaway load): abort the current run."""


def proc_count() -> int:
    try:
        return sum(1 for d in os.listdir("/proc") if d.isdigit())
    except OSError:
        return 0


def runnable_now() -> int:
    """Runnable tasks right now (/proc/loadavg 4th field): unlike the load average it does
    not lag minutes behind."""
    try:
        with open("/proc/loadavg") as fh:
            return int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0


class OverloadGuard:
    """Aborts a scale run before it can take the shared machine down: more processes than
    the lab can explain (resource scripts of a death storm), or far more runnable tasks than
    the lab's daemons, three checks in a row."""

    def __init__(self, size: int, per_node: int = 15) -> None:
        self.base = proc_count()
        self.proc_limit = self.base + per_node * size + 300
        self.run_limit = max(64, 4 * size)
        self.strikes = 0

    def check(self) -> Optional[str]:
        n = proc_count()
        if n > self.proc_limit:
            return f"{n} processes on the machine (started with {self.base}; limit {self.proc_limit})"
        r = runnable_now()
        self.strikes = self.strikes + 1 if r > self.run_limit else 0
        if self.strikes >= 3:
            return f"{r} runnable tasks, 3 checks in a row (limit {self.run_limit})"
        return None

    def check_raise(self) -> None:
        why = self.check()
        if why:
            raise Overload(why)


def guarded_sleep(seconds: float, guard: OverloadGuard, step: float = 0.5) -> None:
    end = time.monotonic() + seconds
    for _ in range(int(seconds / step) + 4):
        left = end - time.monotonic()
        if left <= 0:
            return
        guard.check_raise()
        time.sleep(min(step, left))


def kill_lab_processes(lab, rounds: int = 5) -> int:
    """SIGKILL every process in the lab's namespaces, found by one pass over /proc per round
    (`ip netns pids` passes over /proc once per namespace: too slow in a process storm, which
    keeps forking meanwhile). Only namespaces this lab created are matched; the processes that
    hold each node's namespaces are spared (Lab.close needs them). Returns how many."""
    spared = {getattr(node, "holder_pid", None) for node in lab.nodes.values()}
    inodes = set()
    for ns in lab.namespaces:
        try:
            inodes.add(os.stat(f"/var/run/netns/{ns}").st_ino)
        except OSError:
            pass
    killed = 0
    for _ in range(rounds):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid() or int(entry) in spared:
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
            except OSError:
                pass
        killed += found
        if not found:
            break
        time.sleep(0.2)
    return killed


def _udp_sources_of(packets, cap) -> List[Tuple[float, str]]:
    """(monotonic time, IPv4 source) of the Ethernet IPv4/UDP frames among pcap packets."""
    out = []
    for pkt in packets:
        d = pkt.data
        if pkt.linktype != 1 or len(d) < 34 or d[12:14] != b"\x08\x00" or d[23] != 17:
            continue
        out.append((cap.to_monotonic(pkt.time), ".".join(str(b) for b in d[26:30])))
    return out


def udp_sources(path: str, cap) -> List[Tuple[float, str]]:
    """(monotonic time, IPv4 source) of every IPv4/UDP frame of a capture (a growing file is
    fine: the unfinished last record is skipped)."""
    from appliance.lab.capture import read_pcap
    try:
        return _udp_sources_of(read_pcap(path), cap)
    except (OSError, ValueError):
        return []


class UdpSourceTail:
    """Like udp_sources, but only the frames appended since the last read: a 32-node ucast
    run writes thousands of packets a second, and re-reading the whole file every second would
    starve the daemons being measured."""

    def __init__(self, path: str, cap) -> None:
        from appliance.lab.capture import PcapTail
        self.tail, self.cap = PcapTail(path), cap

    def read(self) -> List[Tuple[float, str]]:
        try:
            return _udp_sources_of(self.tail.read(), self.cap)
        except ValueError:
            return []


def force_cleanup(lab) -> List[str]:
    """When Lab.close() failed (e.g. `ip netns pids` timed out on an overloaded box): kill
    every process of THIS lab's namespaces, delete them, remove its work dir. Returns what is
    still left."""
    left: List[str] = []
    for _ in range(5):
        left = []
        for ns in lab.namespaces:
            try:
                res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                     timeout=120)
            except subprocess.TimeoutExpired:
                left.append(ns)
                continue
            if res.returncode != 0:
                continue        # gone already
            pids = [int(x) for x in res.stdout.split() if x.isdigit()]
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            left.append(ns)
        time.sleep(1.0)
        for ns in list(left):
            try:
                res = subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=120)
                if res.returncode == 0:
                    left.remove(ns)
            except subprocess.TimeoutExpired:
                pass
        if not left:
            break
    shutil.rmtree(lab.workdir, ignore_errors=True)
    return left


class managed_lab:
    """`with managed_lab(names) as lab`: a Lab whose failed close() is followed by
    force_cleanup (the Lab marks itself closed before it starts, so it never retries)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.lab = None

    def __enter__(self):
        from appliance.lab.netns import Lab
        self.lab = Lab(self.names)
        return self.lab

    def __exit__(self, *exc) -> None:
        lab = self.lab
        if lab is None:
            return
        try:
            lab.close()
        except Exception as err:  # noqa: BLE001
            log(f"    lab close failed ({err!r:.200}); forcing the cleanup")
            left = force_cleanup(lab)
            if left:
                log(f"    namespaces still left: {left}")


def timed_runs(argv_fn: Callable[[], Any], n: int = 10) -> Tuple[List[float], Optional[str]]:
    """Run n times; wall times in ms. Returns (times, error of the first failing run)."""
    times: List[float] = []
    err = None
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            res = argv_fn()
        except Exception as exc:  # noqa: BLE001
            return times, f"{exc!r:.300}"
        times.append((time.perf_counter() - t0) * 1000.0)
        rc = getattr(res, "returncode", 0)
        if rc not in (0,) and err is None:
            err = f"rc={rc}: {(res.stdout or '')[-200:]}{(res.stderr or '')[-200:]}".strip()
    return times, err
