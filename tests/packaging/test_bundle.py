"""The frozen program in dist/elN/{onedir,onefile}: audit, start-up, names, noexec /tmp, old kernels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import (
    KERNEL,
    PACKAGING,
    TARGETS,
    missing,
    need_root,
    need_tool,
    onedir,
    onedir_exe,
    onefile,
    populate_system_libs,
    run,
)

CHECK = os.path.join(PACKAGING, "check_glibc.py")
FORMS = ["onedir", "onefile"]


def exe(tgt: str, form: str) -> str:
    return onedir_exe(tgt) if form == "onedir" else onefile(tgt)


def isolated_env(tmp_path, **extra) -> dict:
    """Environment that keeps the program off the host's /etc/ha.d and /var/run."""
    env = dict(os.environ)
    env.update({"HA_DIR": str(tmp_path / "ha.d"), "HA_VARRUN": str(tmp_path / "run"),
                "HA_VARLIB": str(tmp_path / "lib"), "HA_PIDFILE": str(tmp_path / "hb.pid")})
    env.update(extra)
    return env


def write_config(ha_dir, node: str = "node1") -> None:
    os.makedirs(ha_dir, exist_ok=True)
    with open(os.path.join(ha_dir, "ha.cf"), "w") as f:
        f.write(f"keepalive 1\ndeadtime 10\nudpport 694\nucast lo 127.0.0.1\nnode {node}\n")
    with open(os.path.join(ha_dir, "authkeys"), "w") as f:
        f.write("auth 1\n1 sha1 packaging-test\n")
    os.chmod(os.path.join(ha_dir, "authkeys"), 0o600)
    with open(os.path.join(ha_dir, "haresources"), "w") as f:
        f.write(f"{node} 192.168.77.1\n")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tgt", TARGETS)
def test_glibc_audit_passes(tgt, form, tmp_path):
    art = onedir(tgt) if form == "onedir" else onefile(tgt)
    out = tmp_path / "audit.json"
    p = run([sys.executable, CHECK, art, "--target", tgt, "--json", str(out)])
    assert p.returncode == 0, p.stdout + p.stderr
    rep = json.loads(out.read_text())
    assert rep["pass"] and len(rep["rows"]) > 10
    names = {os.path.basename(r["file"].replace("[onefile] ", "")) for r in rep["rows"]}
    assert any(n.startswith("libpython3") for n in names)
    assert not any(n.startswith(("libgcc_s", "libstdc++", "libz.so")) for n in names), names


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tgt", TARGETS)
def test_version(tgt, form, tmp_path):
    p = run([exe(tgt, form), "--version"], env=isolated_env(tmp_path), check=True)
    assert "3.0.6" in p.stdout and "hb-appliance" in p.stdout


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tgt", TARGETS)
def test_one_program_four_names(tgt, form, tmp_path):
    """cl_status, hb_standby, hb_takeover are links to the same program (dispatch on argv[0])."""
    target = exe(tgt, form)
    env = isolated_env(tmp_path)
    for name in ("cl_status", "hb_standby", "hb_takeover"):
        os.symlink(target, tmp_path / name)
    p = run([str(tmp_path / "cl_status"), "--help"], env=env)
    assert p.returncode == 0 and "Usage: cl_status" in p.stdout, p.stdout + p.stderr
    p = run([str(tmp_path / "cl_status"), "hbstatus"], env=env)
    assert p.returncode == 1 and "stopped" in p.stdout, p.stdout + p.stderr
    for name in ("hb_standby", "hb_takeover"):
        p = run([str(tmp_path / name), "--help"], env=env)
        assert "cl_status" not in p.stdout and p.returncode in (0, 1, 2), p.stdout + p.stderr


@pytest.mark.parametrize("tgt", TARGETS)
def test_config_check(tgt, tmp_path):
    write_config(tmp_path / "ha.d", node=os.uname().nodename)
    p = run([onedir_exe(tgt), "-t"], env=isolated_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    (tmp_path / "ha.d" / "ha.cf").write_text("bogus_directive 1\n")
    p = run([onedir_exe(tgt), "-t"], env=isolated_env(tmp_path))
    assert p.returncode == 6, p.stdout + p.stderr


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("tgt", TARGETS)
def test_noexec_tmp(tgt, form, tmp_path):
    """/tmp (and TMPDIR) mounted noexec in a private mount namespace: the program still starts.

    Onefile extracts to its runtime_tmpdir (/var/lib/heartbeat/.bundle), never to /tmp; here
    /var/lib is a scratch tmpfs so the host is not touched.
    """
    need_root()
    need_tool("unshare")
    target = exe(tgt, form)
    probe = "/tmp/hba-noexec-probe"
    # The checkout itself may live under /tmp (CI clones): bind the bundle's directory to /mnt
    # first, so hiding /tmp behind the noexec tmpfs does not hide the program too.
    bundle_dir, name = os.path.split(target)
    script = f"""
        set -e
        mount --make-rprivate /
        mount -t tmpfs tmpfs /mnt
        mkdir /mnt/bundle
        mount --bind "{bundle_dir}" /mnt/bundle
        mount -t tmpfs -o noexec,nosuid,nodev tmpfs /tmp
        mount -t tmpfs tmpfs /var/lib
        cp /bin/true {probe}
        if {probe} 2>/dev/null; then echo "PROBE: /tmp is executable"; exit 99; fi
        TMPDIR=/tmp "/mnt/bundle/{name}" --version
        ls -a /var/lib/heartbeat/.bundle 2>/dev/null | grep -c _MEI || true
    """
    p = run(["unshare", "-m", "sh", "-c", script])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "3.0.6" in p.stdout
    if form == "onefile":
        # the extraction directory was used and cleaned up again at exit
        assert p.stdout.strip().splitlines()[-1] == "0", p.stdout


@pytest.mark.parametrize("tgt", TARGETS)
def test_old_kernel(tgt, tmp_path):
    """Syscalls newer than the target kernel answer ENOSYS and uname reports 2.6.x."""
    pyseccomp = "/usr/bin/python3"
    if run([pyseccomp, "-c", "import seccomp"]).returncode != 0:
        missing("python3-seccomp not installed (apt-get install python3-seccomp)")
    wrap = [pyseccomp, os.path.join(PACKAGING, "oldkernel.py"), KERNEL[tgt], "--"]
    env = isolated_env(tmp_path)
    for form in FORMS:
        p = run(wrap + [exe(tgt, form), "--version"], env=env)
        assert p.returncode == 0 and "3.0.6" in p.stdout, (form, p.stdout, p.stderr)
    write_config(tmp_path / "ha.d", node=os.uname().nodename)
    p = run(wrap + [onedir_exe(tgt), "-t"], env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    # the kernel check is real: uname inside reports a 2.6 kernel
    p = run(wrap + ["uname", "-r"], check=True)
    assert p.stdout.startswith("2.6."), p.stdout


@pytest.mark.parametrize("tgt", TARGETS)
def test_onefile_in_root_without_python(tgt, tmp_path):
    """A root holding only the onefile program and glibc/libgcc: no Python anywhere."""
    need_root()
    root = tmp_path / "root"
    (root / "usr/sbin").mkdir(parents=True)
    shutil.copy2(onefile(tgt), root / "usr/sbin/heartbeat")
    os.symlink("heartbeat", root / "usr/sbin/cl_status")
    populate_system_libs(str(root))
    assert not list(root.rglob("*python3*")) and not list(root.rglob("*.py"))
    p = run(["chroot", str(root), "/usr/sbin/heartbeat", "--version"])
    assert p.returncode == 0 and "3.0.6" in p.stdout, p.stdout + p.stderr
    p = run(["chroot", str(root), "/usr/sbin/cl_status", "hbstatus"])
    assert p.returncode == 1 and "stopped" in p.stdout, p.stdout + p.stderr
    subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.mark.parametrize("tgt", TARGETS)
def test_crypto_policy(tgt):
    """EL7 bundles the pinned current cryptography; EL6 follows packaging/versions.sh
    (default: none -- wire auth is stdlib hmac/hashlib over the bundled OpenSSL)."""
    base = onedir(tgt)
    path = os.path.join(os.path.dirname(os.path.dirname(base)), "BUILDINFO.json")
    if not os.path.exists(path):
        missing(f"{path} not written (packaging/build {tgt})")
    with open(path) as f:
        info = json.load(f)
    internal = os.path.join(base, "_internal")
    dists = [d for d in os.listdir(internal) if d.startswith("cryptography-")]
    if info["cryptography"] == "none":
        assert tgt == "el6"
        assert not os.path.exists(os.path.join(internal, "cryptography")), "cryptography bundled"
        assert not dists
    else:
        assert dists == [f"cryptography-{info['cryptography']}.dist-info"], dists
        if tgt == "el7":
            assert int(info["cryptography"].split(".")[0]) >= 42, "EL7 must use a current release"
    # stdlib HMAC over the bundled OpenSSL is always there (Heartbeat's md5/sha1 auth)
    libs = os.listdir(os.path.join(internal, "python3.11", "lib-dynload"))
    assert any(n.startswith("_hashlib.") for n in libs) and any(n.startswith("_ssl.") for n in libs)
