"""keepalived (VRRP) on the namespace lab, with the small interface of lab.cluster.Cluster.

Used by the benchmark (appliance.lab.bench) to compare against Debian's keepalived 2.2.7 with
the same floating IP (192.168.56.200) and the same lighttpd page as the Heartbeat clusters.

    with Lab(["server1", "server2"]) as lab:
        k = KeepalivedCluster(lab, advert_int=0.2).setup()
        k.start("server1"); k.start("server2")
        k.wait_holders(["server1"])

Choices (printed by the benchmark as well):
  * VRRP version 3 (fractional advert_int, 10 ms resolution), multicast 224.0.0.18 on eth0,
    one instance, virtual_router_id 56, `state BACKUP` on every node and priorities that
    decrease in node order (server1 highest), so server1 is the preferred node; `preempt` is
    keepalived's default: the preferred node takes the address back when it returns (the
    counterpart of Heartbeat's `auto_failback on`).
  * lighttpd (the lab's httpd init script, appliance.lab.httpd) runs on EVERY node all the time:
    keepalived only moves the address, it does not start services. start() starts lighttpd
    first if it is not running (a crash, Node.kill_all, kills it too).
  * keepalived runs in the foreground of its node (`-n -P -l -D`), logging to
    /var/log/keepalived.log of the node; its config and pid files live in the node's private
    /run/keepalived. stop() is SIGTERM (keepalived sends priority-0 adverts and removes the
    address), bounded, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Dict, List, Optional

from appliance.lab._proc import LabError, kill_pids, pid_alive, wait_gone
from appliance.lab.httpd import install_httpd
from appliance.lab.netns import Lab

VIP = "192.168.56.200"
KEEPALIVED = "/usr/sbin/keepalived"
CONF_DIR = "/run/keepalived"            # as seen inside a node (private /run)
CONF = CONF_DIR + "/keepalived.conf"
LOG = "/var/log/keepalived.log"
HTTPD = "/etc/ha.d/resource.d/httpd"


def keepalived_available() -> bool:
    return os.access(KEEPALIVED, os.X_OK)


def priorities(names: List[str], top: int = 150, step: int = 50) -> Dict[str, int]:
    """server1 highest, then decreasing in node order; never 255 (that would skip the
    start-up wait) and never below 1."""
    if len(names) > 1:
        step = max(1, min(step, (top - 1) // (len(names) - 1)))
    return {n: max(1, top - i * step) for i, n in enumerate(names)}


def master_down_interval(advert_int: float, priority: int) -> float:
    """RFC 5798: 3 * Advertisement_Interval + Skew_Time, Skew = ((256 - prio) * adv) / 256."""
    return 3 * advert_int + (256 - priority) * advert_int / 256.0


def keepalived_conf(name: str, priority: int, advert_int: float, vip: str = VIP,
                    vrid: int = 56, preempt: bool = True) -> str:
    adv = f"{advert_int:.2f}".rstrip("0").rstrip(".")
    return (
        "global_defs {\n"
        f"    router_id {name}\n"
        "    vrrp_version 3\n"
        "    vrrp_skip_check_adv_addr\n"
        "}\n"
        "vrrp_instance VI_1 {\n"
        "    state BACKUP\n"
        "    interface eth0\n"
        f"    virtual_router_id {vrid}\n"
        f"    priority {priority}\n"
        f"    advert_int {adv}\n"
        + ("" if preempt else "    nopreempt\n")
        + "    virtual_ipaddress {\n"
        f"        {vip}/24 dev eth0\n"
        "    }\n"
        "}\n"
    )


class KeepalivedCluster:
    """keepalived on every lab node; see the module docstring."""

    kind = "keepalived"

    def __init__(self, lab: Lab, advert_int: float = 1.0, names: Optional[List[str]] = None,
                 preempt: bool = True) -> None:
        if not keepalived_available():
            raise LabError(f"keepalived not installed ({KEEPALIVED})")
        self.lab = lab
        self.advert_int = float(advert_int)
        self.names = list(names or lab.nodes)
        self.preempt = preempt
        self.prio = priorities(self.names)
        self._procs: Dict[str, subprocess.Popen] = {}

    # ---- set-up ---------------------------------------------------------------------------

    def setup(self) -> KeepalivedCluster:
        for name in self.names:
            install_httpd(self.lab.node(name))
            self._write_conf(name)
            self.start_httpd(name)
        return self

    def _write_conf(self, name: str) -> None:
        """(Re)write the node's config: /run is private and may have been cleared (a crash
        followed by a "reboot" in the benchmark)."""
        self.lab.node(name).write(CONF, keepalived_conf(name, self.prio[name], self.advert_int,
                                                        preempt=self.preempt))

    def start_httpd(self, name: str) -> None:
        node = self.lab.node(name)
        res = node.run([HTTPD, "start"], timeout=30, check=False)
        if res.returncode != 0:
            raise LabError(f"{name}: httpd start failed: {res.stdout}{res.stderr}")

    def dead_interval(self, name: str = "") -> float:
        """Seconds a backup waits for adverts before taking over (node `name`, default the
        second node: the one that takes over from the preferred node)."""
        name = name or (self.names[1] if len(self.names) > 1 else self.names[0])
        return master_down_interval(self.advert_int, self.prio[name])

    # ---- daemon ---------------------------------------------------------------------------

    def start(self, name: str, check: bool = True, timeout: float = 10.0) -> None:
        node = self.lab.node(name)
        self.start_httpd(name)
        if self.daemon_pids(name):
            return
        self._write_conf(name)
        log_host = node.host_path(LOG)
        assert log_host is not None
        with open(log_host, "ab") as log:
            proc = node.popen([KEEPALIVED, "-n", "-P", "-l", "-D", "-G", "-f", CONF,
                               "-p", CONF_DIR + "/keepalived.pid",
                               "-r", CONF_DIR + "/vrrp.pid"], stdout=log, stderr=log)
        self._procs[name] = proc
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if proc.poll() is not None:
                if check:
                    raise LabError(f"keepalived on {name} exited (rc={proc.returncode}):\n"
                                   + self.log(name)[-2000:])
                return
            if len(self.daemon_pids(name)) >= 2:      # parent + VRRP child
                return
            time.sleep(0.02)
        if check:
            raise LabError(f"keepalived on {name}: VRRP child not up after {timeout:.0f}s")

    def stop(self, name: str, check: bool = True, timeout: float = 15.0) -> None:
        """SIGTERM (priority-0 advert, address removed), wait bounded, then SIGKILL."""
        pids = self.daemon_pids(name)
        proc = self._procs.pop(name, None)
        main = [proc.pid] if proc is not None and proc.poll() is None else pids[:1]
        kill_pids(main or pids, signal.SIGTERM)
        left = wait_gone(pids, timeout=timeout)
        if left:
            kill_pids(left, signal.SIGKILL)
            wait_gone(left, timeout=5.0)
            if check:
                raise LabError(f"keepalived on {name} ignored SIGTERM for {timeout:.0f}s")
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def daemon_pids(self, name: str) -> List[int]:
        out = []
        for pid in self.lab.node(name).pids():
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if exe == KEEPALIVED and pid_alive(pid):
                out.append(pid)
        return out

    def stop_all(self) -> None:
        for name in self.names:
            if self.daemon_pids(name):
                try:
                    self.stop(name, check=False)
                except Exception:  # noqa: BLE001 - cleanup keeps going
                    pass

    # ---- outside checks -------------------------------------------------------------------

    def holders(self, ip: str = VIP) -> List[str]:
        return [n for n in self.names if self.lab.node(n).has_address(ip)]

    def wait_holders(self, expected: List[str], ip: str = VIP, timeout: float = 30.0) -> float:
        t0 = time.monotonic()
        seen: List[str] = []
        while time.monotonic() - t0 < timeout:
            seen = self.holders(ip)
            if sorted(seen) == sorted(expected):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise TimeoutError(f"holders of {ip}: expected {expected}, still {seen} after {timeout:.0f}s")

    def log(self, name: str) -> str:
        path = self.lab.node(name).host_path(LOG)
        try:
            with open(path, "rb") as fh:     # type: ignore[arg-type]
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


__all__ = ["KEEPALIVED", "KeepalivedCluster", "VIP", "keepalived_available", "keepalived_conf",
           "master_down_interval", "priorities"]
