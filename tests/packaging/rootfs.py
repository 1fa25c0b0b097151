"""Scratch roots for the RPM tests: `rpm --root` installs, host binaries copied with their libs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from .conftest import populate_system_libs, run

# What the SysV script and the scriptlets call; copied from the host with their libraries.
# No Python: the program must not need any.
SHELL_TOOLS = ["sh", "cat", "tr", "grep", "id", "mkdir", "touch", "rm", "ls", "env", "sleep",
               "echo", "true", "false", "ln", "readlink"]


def _ldd_deps(path: str) -> list[str]:
    p = subprocess.run(["ldd", path], capture_output=True, text=True)
    deps = []
    for line in p.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            deps.append(m.group(1))
    return deps


def copy_host_binary(root: str, name: str) -> None:
    src = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not src:
        raise FileNotFoundError(name)
    for dst_dir in ("bin", "usr/bin"):
        os.makedirs(os.path.join(root, dst_dir), exist_ok=True)
    dst = os.path.join(root, "bin", name)
    if not os.path.exists(dst):
        shutil.copy2(os.path.realpath(src), dst)
    if not os.path.lexists(os.path.join(root, "usr/bin", name)):
        os.symlink("/bin/" + name, os.path.join(root, "usr/bin", name))
    for dep in _ldd_deps(src):
        d = os.path.join(root, dep.lstrip("/"))
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if not os.path.exists(d):
            shutil.copy2(os.path.realpath(dep), d)


def make_root(root: str, with_shell: bool = True) -> None:
    os.makedirs(root, exist_ok=True)
    populate_system_libs(root)
    for d in ("etc", "tmp", "proc", "dev", "var/log", "var/lock/subsys", "var/run", "sbin",
              "usr/sbin"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\n")
    if with_shell:
        for t in SHELL_TOOLS:
            copy_host_binary(root, t)


def rpm_install(root: str, rpm: str, scripts: bool = True) -> subprocess.CompletedProcess:
    """Install into root with its own rpmdb (Debian's rpm would otherwise use ~/.rpmdb)."""
    run(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb"], check=True)
    argv = ["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-ivh", "--nodeps"]
    if not scripts:
        argv.append("--noscripts")
    return run(argv + [rpm])


def rpm_erase(root: str, name: str = "hb-appliance") -> subprocess.CompletedProcess:
    return run(["rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-e", "--nodeps", name])


ENVDUMP = """#!/bin/sh
# resource script: records the environment it was started with and runs system tools
case "$1" in
start) env > /var/lib/heartbeat/envdump.start
       ls / > /dev/null && id -u > /var/lib/heartbeat/envdump.tools
       touch /var/lib/heartbeat/envdump.running ;;
stop)  rm -f /var/lib/heartbeat/envdump.running ;;
status) [ -f /var/lib/heartbeat/envdump.running ] && echo running || echo stopped ;;
esac
exit 0
"""


def write_node_config(root: str, node: str = "pkgtest") -> None:
    """A one-node cluster on loopback whose only resource is the envdump script."""
    ha = root + "/etc/ha.d"
    os.makedirs(ha + "/resource.d", exist_ok=True)
    with open(ha + "/ha.cf", "w") as f:
        f.write("logfile /var/log/ha-log\nkeepalive 1\ndeadtime 3\ninitdead 3\n"
                f"udpport 694\nucast lo 127.0.0.1\nauto_failback on\nnode {node}\n")
    with open(ha + "/authkeys", "w") as f:
        f.write("auth 1\n1 sha1 packaging-test\n")
    os.chmod(ha + "/authkeys", 0o600)
    with open(ha + "/haresources", "w") as f:
        f.write(f"{node} envdump\n")
    with open(ha + "/resource.d/envdump", "w") as f:
        f.write(ENVDUMP)
    os.chmod(ha + "/resource.d/envdump", 0o755)


def daemon_scenario(root: str, ctl: dict, stopped_rc: int) -> None:
    """start / status / cl_status / reload / stop / status inside root, in private mount, UTS,
    PID and network namespaces (loopback only: no packet leaves them), with
    LD_LIBRARY_PATH=/custom in the environment of whoever starts the daemon."""
    write_node_config(root)
    lib = root + "/var/lib/heartbeat"
    script = f"""
        mount --make-rprivate /
        mount -t proc proc {root}/proc
        mount --bind /dev {root}/dev
        hostname pkgtest
        ip link set lo up 2>/dev/null || true
        export LD_LIBRARY_PATH=/custom
        chroot {root} {ctl["start"]}; echo "start=$?"
        for i in $(seq 100); do [ -f {lib}/envdump.running ] && break; sleep 0.2; done
        chroot {root} {ctl["status"]}; echo "status=$?"
        chroot {root} /usr/bin/cl_status hbstatus; echo "hbstatus=$?"
        chroot {root} {ctl["reload"]}; echo "reload=$?"
        chroot {root} {ctl["stop"]}; echo "stop=$?"
        chroot {root} {ctl["status"]}; echo "status2=$?"
    """
    p = run(["unshare", "-m", "-u", "-n", "-p", "-f", "sh", "-c", script], timeout=180)
    out = p.stdout + p.stderr
    log = ""
    if os.path.exists(root + "/var/log/ha-log"):
        with open(root + "/var/log/ha-log") as f:
            log = f.read()[-3000:]
    for key in ("start=0", "status=0", "hbstatus=0", "reload=0", "stop=0", f"status2={stopped_rc}"):
        assert key in out, f"{key} missing\n{out}\nha-log:\n{log}"
    with open(lib + "/envdump.start") as f:
        env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    assert env.get("LD_LIBRARY_PATH") == "/custom", env
    assert not [k for k in env if k.startswith("_PYI_") or k == "LD_LIBRARY_PATH_ORIG"], env
    with open(lib + "/envdump.tools") as f:
        assert f.read().strip() == "0"
    # stop released the resource (its stop action ran)
    assert not os.path.exists(lib + "/envdump.running"), log
