"""The onefile program as a daemon, in a root without Python (chroot + namespaces)."""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import TARGETS, need_root, need_tool, onefile
from .rootfs import daemon_scenario, make_root


def onefile_root(tgt: str, tmp_path) -> str:
    root = str(tmp_path / "root")
    make_root(root)
    for d in ("usr/sbin", "usr/bin", "var/lib/heartbeat", "var/run/heartbeat"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(onefile(tgt), root + "/usr/sbin/heartbeat")
    os.symlink("../sbin/heartbeat", root + "/usr/bin/cl_status")
    return root


@pytest.mark.parametrize("tgt", TARGETS)
def test_onefile_foreground_daemon(tgt, tmp_path):
    """`heartbeat -f` (what the systemd unit runs) from the single-file program."""
    need_root()
    need_tool("unshare")
    root = onefile_root(tgt, tmp_path)
    hb = "/usr/sbin/heartbeat"
    ctl = {"start": f"sh -c '{hb} -f >/dev/null 2>&1 &'", "status": f"{hb} -s",
           "reload": f"{hb} -r", "stop": f"{hb} -k"}
    daemon_scenario(root, ctl, stopped_rc=1)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("tgt", TARGETS)
def test_onefile_daemonized(tgt, tmp_path):
    need_root()
    need_tool("unshare")
    root = onefile_root(tgt, tmp_path)
    hb = "/usr/sbin/heartbeat"
    ctl = {"start": hb, "status": f"{hb} -s", "reload": f"{hb} -r", "stop": f"{hb} -k"}
    daemon_scenario(root, ctl, stopped_rc=1)
    shutil.rmtree(root, ignore_errors=True)
