"""One cluster node of the lab: a holder process owning net+UTS+mount namespaces.

The holder is started by :class:`appliance.lab.netns.Lab`; everything here only drives an
existing node: commands run through ``nsenter -t HOLDER -n -m -u`` and files in the private
directories are read/written through their host-side backing directories.
"""

from __future__ import annotations

import json
import os
import posixpath
import select
import signal
import subprocess
import time
from typing import Dict, List, Mapping, Optional, Sequence

from ._proc import (
    LabError,
    kill_pids,
    merged_env,
    netns_pids,
    pid_alive,
    reap,
    run,
    wait_gone,
)

# Paths (as seen inside a node) that are bind-mounted from the node's host-side root.
# On Debian /var/run is a symlink to /run, so the private /run covers it too.
PRIVATE_MOUNTS: Dict[str, str] = {
    "/etc/ha.d": "etc/ha.d",
    "/run": "run",
    "/var/run": "run",
    "/var/lib/heartbeat": "var/lib/heartbeat",
    "/var/log": "var/log",
}

# Runs inside `ip netns exec NS unshare --uts --mount --propagation private`.
# $1 = hostname, $2 = host-side root of the private dirs.
HOLDER_SCRIPT = r"""
set -e
hostname "$1"
mount --bind "$2/etc/ha.d" /etc/ha.d
mount --bind "$2/run" /run
if [ ! -L /var/run ]; then mount --bind "$2/run" /var/run; fi
mount --bind "$2/var/lib/heartbeat" /var/lib/heartbeat
mount --bind "$2/var/log" /var/log
# `ip netns exec` already remounted /sys for this netns; make sure anyway.
if [ ! -e /sys/class/net/eth0 ]; then mount -t sysfs -o nosuid,nodev,noexec sysfs /sys; fi
echo ready
exec sleep infinity </dev/null >/dev/null 2>&1
"""

LOSS_TABLE = "hblab_loss"


class Node:
    """A lab node. Created by Lab; see the module docstring."""

    def __init__(self, name: str, ip: str, mac: str, ns: str, root: str, port: str,
                 prefixlen: int = 24, ip6: Optional[str] = None) -> None:
        self.name = name
        self.ip = ip
        self.ip6 = ip6            # own IPv6 address on eth0 (/64), when the lab has IPv6
        self.mac = mac
        self.ns = ns
        self.root = root          # host-side dir holding etc/ha.d, run, var/lib/heartbeat, var/log
        self.port = port          # this node's veth end on br0 in the switch namespace
        self.prefixlen = prefixlen
        self.holder_pid = 0
        self._holder: Optional[subprocess.Popen] = None
        self._popens: List[subprocess.Popen] = []

    def __repr__(self) -> str:
        return f"Node({self.name!r}, ip={self.ip!r}, ns={self.ns!r}, holder={self.holder_pid})"

    # ---- holder -------------------------------------------------------------------------

    def _start_holder(self) -> None:
        self._holder = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--uts", "--mount",
             "--propagation", "private", "sh", "-c", HOLDER_SCRIPT, "hblab-holder",
             self.name, self.root],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        # ip netns exec, unshare and sh all exec (no fork): this pid is the holder.
        self.holder_pid = self._holder.pid

    def _wait_holder(self, timeout: float = 15.0) -> None:
        holder = self._holder
        assert holder is not None and holder.stdout is not None
        fd = holder.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        for _ in range(1000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b"ready" in buf:
                holder.stdout.close()
                if holder.stderr is not None:
                    holder.stderr.close()
                return
        err = b""
        if holder.poll() is not None and holder.stderr is not None:
            err = holder.stderr.read() or b""
        raise LabError(
            f"holder for {self.name} not ready (rc={holder.poll()}): "
            f"{err.decode(errors='replace').strip()}"
        )

    # ---- running things -----------------------------------------------------------------

    def _prefix(self) -> List[str]:
        if not self.holder_pid or not pid_alive(self.holder_pid):
            raise LabError(f"node {self.name}: holder process is not running")
        return ["nsenter", "-t", str(self.holder_pid), "-n", "-m", "-u"]

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 30,
        check: bool = True,
        env: Optional[Mapping[str, str]] = None,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess:
        """Run argv inside the node (net+mount+uts); text stdout/stderr captured.

        env is laid over os.environ. check=True raises LabCommandError (a
        CalledProcessError) with stderr in its message; timeout raises TimeoutExpired.
        """
        return run(self._prefix() + list(argv), timeout=timeout, check=check,
                   input=input, env=merged_env(env))

    def popen(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
              stdout=None, stderr=None) -> subprocess.Popen:
        """Start argv inside the node in its own session; stdin is /dev/null."""
        p = subprocess.Popen(self._prefix() + list(argv), env=merged_env(env),
                             stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                             start_new_session=True)
        self._popens = [q for q in self._popens if q.poll() is None]
        self._popens.append(p)
        return p

    # ---- files --------------------------------------------------------------------------

    def host_path(self, path: str) -> Optional[str]:
        """Host-side path backing `path` (as seen in the node), or None if not private."""
        if not path.startswith("/"):
            raise ValueError(f"node path must be absolute: {path!r}")
        norm = posixpath.normpath(path)
        for mount in sorted(PRIVATE_MOUNTS, key=len, reverse=True):
            if norm == mount or norm.startswith(mount + "/"):
                rel = norm[len(mount):].lstrip("/")
                base = os.path.join(self.root, PRIVATE_MOUNTS[mount])
                return os.path.join(base, rel) if rel else base
        return None

    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write a file as seen inside the node (parent dirs are created)."""
        hp = self.host_path(path)
        if hp is None:
            self.run(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
                      "sh", path, oct(mode)[2:]], input=text)
            return
        os.makedirs(os.path.dirname(hp), exist_ok=True)
        tmp = f"{hp}.hblab-tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, hp)

    def read(self, path: str) -> str:
        hp = self.host_path(path)
        if hp is None:
            return self.run(["cat", path]).stdout
        with open(hp) as fh:
            return fh.read()

    def exists(self, path: str) -> bool:
        hp = self.host_path(path)
        if hp is None:
            return self.run(["test", "-e", path], check=False).returncode == 0
        return os.path.lexists(hp)

    # ---- network ------------------------------------------------------------------------

    def _addr_json(self, dev: Optional[str] = None) -> list:
        argv = ["ip", "-j", "-n", self.ns, "addr", "show"]
        if dev:
            argv += ["dev", dev]
        return json.loads(run(argv, timeout=10).stdout or "[]")

    def addresses(self, dev: str = "eth0") -> List[str]:
        """IPv4 addresses (without prefix) on dev."""
        return [a["local"] for link in self._addr_json(dev) for a in link.get("addr_info", [])
                if a.get("family") == "inet"]

    def has_address(self, ip: str) -> bool:
        return any(a.get("local") == ip for link in self._addr_json()
                   for a in link.get("addr_info", []))

    def link_down(self, dev: str = "eth0") -> None:
        run(["ip", "-n", self.ns, "link", "set", dev, "down"])

    def link_up(self, dev: str = "eth0") -> None:
        run(["ip", "-n", self.ns, "link", "set", dev, "up"])

    def flush_floating(self) -> None:
        """Delete every IPv4 address except the node's own ip on eth0 and 127.0.0.1 on lo,
        and every global IPv6 address except the node's own ip6 (link-local and ::1 stay)."""
        for link in self._addr_json():
            dev = link.get("ifname")
            for a in link.get("addr_info", []):
                local = a.get("local")
                if a.get("family") == "inet6":
                    if a.get("scope") != "global" or (dev == "eth0" and local == self.ip6):
                        continue
                elif a.get("family") != "inet":
                    continue
                elif (dev == "eth0" and local == self.ip) or (dev == "lo" and local == "127.0.0.1"):
                    continue
                run(["ip", "-n", self.ns, "addr", "del", f"{local}/{a.get('prefixlen', 32)}",
                     "dev", dev], check=False)

    def egress_loss(self, percent: float) -> None:
        """Drop `percent` % of the node's outgoing eth0 frames (nftables netdev egress)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss percent out of range: {percent}")
        threshold = int(round(percent * 100))
        # numgen's range is 0..9999: 100 % cannot be written as "< 10000".
        rule = "drop" if threshold >= 10000 else f"numgen random mod 10000 < {threshold} drop"
        script = (
            f"table netdev {LOSS_TABLE} {{}}\n"
            f"delete table netdev {LOSS_TABLE}\n"
            f"table netdev {LOSS_TABLE} {{\n"
            f'  chain egress {{ type filter hook egress device "eth0" priority 0; policy accept;\n'
            f"    {rule}\n"
            f"  }}\n"
            f"}}\n"
        )
        self.run(["nft", "-f", "-"], input=script, timeout=10)

    def clear_loss(self) -> None:
        script = f"table netdev {LOSS_TABLE} {{}}\ndelete table netdev {LOSS_TABLE}\n"
        self.run(["nft", "-f", "-"], input=script, timeout=10)

    # ---- processes ----------------------------------------------------------------------

    def pids(self) -> List[int]:
        """Live processes in the node's network namespace, except the holder."""
        return [p for p in netns_pids(self.ns) if p != self.holder_pid and pid_alive(p)]

    def kill_all(self) -> None:
        """SIGKILL everything in the node except the holder, then drop floating addresses."""
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            kill_pids(pids, signal.SIGKILL)
            wait_gone(pids, timeout=5.0)
        reap(self._popens, timeout=1.0)
        self._popens = [q for q in self._popens if q.poll() is None]
        self.flush_floating()

    def _shutdown(self) -> List[int]:
        """Kill holder and all node processes (used by Lab.close); returns pids signalled."""
        pids = netns_pids(self.ns)
        # Our own unreaped child: its pid cannot have been reused.
        if self._holder is not None and self._holder.poll() is None:
            pids.append(self.holder_pid)
        kill_pids(pids, signal.SIGKILL)
        return pids

    def _reap(self) -> None:
        reap(self._popens + ([self._holder] if self._holder else []), timeout=2.0)
