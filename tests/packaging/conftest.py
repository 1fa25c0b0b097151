"""Shared helpers for the packaging tests.

These tests check artifacts that `packaging/build` left in dist/. Without them the tests
skip, unless HBA_REQUIRE_PACKAGES=1 (CI after a build), where a missing artifact or a
missing host tool is a failure. HBA_TARGETS (default "el7 el6") limits the targets checked.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIST = os.path.join(ROOT, "dist")
PACKAGING = os.path.join(ROOT, "packaging")
RPMDIR = os.path.join(ROOT, "rpm")
REQUIRE = os.environ.get("HBA_REQUIRE_PACKAGES") == "1"
TARGETS = os.environ.get("HBA_TARGETS", "el7 el6").split()
GLIBC_MAX = {"el6": "2.12", "el7": "2.17"}
KERNEL = {"el6": "2.6.32", "el7": "3.10"}
sys.path.insert(0, PACKAGING)


def missing(what: str) -> None:
    """Skip, or fail when HBA_REQUIRE_PACKAGES=1."""
    if REQUIRE:
        pytest.fail(f"{what} (HBA_REQUIRE_PACKAGES=1)", pytrace=False)
    pytest.skip(what)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        missing(f"host tool {name!r} not installed (packaging/install-build-deps)")
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        missing("needs root (chroot / mount namespaces)")


def onedir(tgt: str) -> str:
    p = os.path.join(DIST, tgt, "onedir", "heartbeat")
    if not os.path.isfile(os.path.join(p, "heartbeat")):
        missing(f"{p} not built (packaging/build {tgt})")
    return p


def onedir_exe(tgt: str) -> str:
    return os.path.join(onedir(tgt), "heartbeat")


def onefile(tgt: str) -> str:
    p = os.path.join(DIST, tgt, "onefile", "heartbeat")
    if not os.path.isfile(p):
        missing(f"{p} not built (packaging/build {tgt})")
    return p


def rpm_path(tgt: str) -> str:
    found = sorted(glob.glob(os.path.join(DIST, f"hb-appliance-*.{tgt}.x86_64.rpm")))
    if not found:
        missing(f"dist/hb-appliance-*.{tgt}.x86_64.rpm not built (packaging/build {tgt})")
    return found[-1]


def run(argv, timeout=120, check=False, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(argv, timeout=timeout, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# Libraries every EL box has (glibc + libgcc): the only ones copied into the no-Python chroot.
SYSTEM_LIB_NAMES = ("libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
                    "libutil.so.1", "libgcc_s.so.1", "ld-linux-x86-64.so.2")


def host_lib(name: str) -> str:
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return os.path.realpath(p)
    raise FileNotFoundError(name)


def populate_system_libs(root: str) -> None:
    """Copy glibc's and libgcc's shared objects from the host into root (Debian and EL paths)."""
    for d in ("lib/x86_64-linux-gnu", "lib64"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for name in SYSTEM_LIB_NAMES:
        src = host_lib(name)
        shutil.copy2(src, os.path.join(root, "lib/x86_64-linux-gnu", name))
    # the program interpreter path baked into every x86_64 executable
    if not os.path.exists(os.path.join(root, "lib64/ld-linux-x86-64.so.2")):
        shutil.copy2(host_lib("ld-linux-x86-64.so.2"), os.path.join(root, "lib64/ld-linux-x86-64.so.2"))


def targets_param():
    return pytest.mark.parametrize("tgt", TARGETS)
