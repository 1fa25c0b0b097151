"""The frozen program as a two-node cluster with every syscall newer than the target kernel
answering ENOSYS and uname reporting 2.6.x: it starts, parses its config, sends and receives
heartbeats and adds the floating address. Uses the namespace lab (appliance.lab): all traffic
stays inside namespaces this test creates."""

from __future__ import annotations

import os

import pytest

from .conftest import KERNEL, PACKAGING, TARGETS, missing, need_root, onedir_exe, run

PYSECCOMP = "/usr/bin/python3"


def wrapper_dir(tmp_path, tgt: str) -> str:
    """heartbeat and cl_status wrappers that exec the frozen program under oldkernel.py."""
    real = tmp_path / "real"
    real.mkdir()
    for name in ("heartbeat", "cl_status"):
        os.symlink(onedir_exe(tgt), real / name)
    wrap = tmp_path / "bin"
    wrap.mkdir()
    for name in ("heartbeat", "cl_status"):
        p = wrap / name
        p.write_text(f"#!/bin/sh\nexec {PYSECCOMP} {PACKAGING}/oldkernel.py {KERNEL[tgt]} -- "
                     f"{real / name} \"$@\"\n")
        p.chmod(0o755)
    return str(wrap / "heartbeat")


@pytest.mark.parametrize("tgt", TARGETS)
def test_cluster_under_old_kernel(tgt, tmp_path):
    need_root()
    if run([PYSECCOMP, "-c", "import seccomp"]).returncode != 0:
        missing("python3-seccomp not installed (apt-get install python3-seccomp)")
    binary = wrapper_dir(tmp_path, tgt)
    try:
        from appliance.lab import Lab
        from appliance.lab.cluster import VIP, Cluster, ClusterConfig
    except ImportError as exc:
        missing(f"namespace lab not available: {exc}")
    cfg = ClusterConfig(haresources=f"server1 {VIP}\n")
    with Lab(["server1", "server2"], client=False) as lab:
        cluster = Cluster(lab, cfg, binary=binary)
        for node in lab.nodes.values():
            cluster.configure(node)
        try:
            for name in cluster.names:
                cluster.start(name)
            cluster.wait_holders(["server1"], timeout=40)          # address added
            cluster.wait_status("server2", "server1", "active")    # heartbeats both ways
            cluster.wait_status("server1", "server2", "active")
            uname = lab.node("server1").run([PYSECCOMP, f"{PACKAGING}/oldkernel.py", KERNEL[tgt],
                                             "--", "uname", "-r"], check=True).stdout
            assert uname.startswith("2.6."), uname
            # the running daemons really are under the filter (inherited through the
            # daemonizing forks)
            pids = cluster.daemon_pids("server1") + cluster.daemon_pids("server2")
            assert pids
            for pid in pids:
                with open(f"/proc/{pid}/status") as f:
                    assert "Seccomp:\t2" in f.read(), pid
            if os.environ.get("HBA_DEBUG"):
                print(cluster.log("server1")[-2500:])
        except Exception:
            print("server1 log:\n", cluster.log("server1")[-3000:])
            print("server2 log:\n", cluster.log("server2")[-3000:])
            raise
        finally:
            cluster.stop_all()
