"""The RPMs in dist/: headers, rpmlint, and installs into scratch roots (no Python in them)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess

import pytest

from .conftest import GLIBC_MAX, RPMDIR, TARGETS, need_root, need_tool, rpm_path, run
from .rootfs import daemon_scenario, make_root, rpm_erase, rpm_install

# the manual pages (man/), gzip'd by the spec itself: brp-compress is off with __os_install_post
MAN_PAGES = ["/usr/share/man/man8/heartbeat.8.gz", "/usr/share/man/man1/cl_status.1.gz",
             "/usr/share/man/man1/hb_standby.1.gz", "/usr/share/man/man1/hb_takeover.1.gz",
             "/usr/share/man/man5/ha.cf.5.gz", "/usr/share/man/man5/haresources.5.gz",
             "/usr/share/man/man5/authkeys.5.gz", "/usr/share/man/man5/hb-appliance.cf.5.gz"]
EXPECTED_FILES = {
    "both": ["/usr/lib/hb-appliance/heartbeat", "/usr/sbin/heartbeat", "/usr/bin/cl_status",
             "/usr/bin/hb_standby", "/usr/bin/hb_takeover", "/usr/share/heartbeat/hb_standby",
             "/etc/ha.d", "/etc/ha.d/resource.d", "/etc/sysconfig/heartbeat",
             "/etc/logrotate.d/heartbeat", "/var/lib/heartbeat", "/var/run/heartbeat",
             *MAN_PAGES],
    "el6": ["/etc/rc.d/init.d/heartbeat"],
    "el7": ["/usr/lib/systemd/system/heartbeat.service", "/usr/lib/tmpfiles.d/heartbeat.conf"],
}


def q(rpm: str, *args: str) -> str:
    need_tool("rpm")
    return run(["rpm", "-qp", *args, rpm], check=True).stdout


def vt(s: str):
    return tuple(int(x) for x in s.split("."))


@pytest.mark.parametrize("tgt", TARGETS)
def test_requires_do_not_leak_the_bundle(tgt):
    reqs = q(rpm_path(tgt), "--requires").splitlines()
    text = "\n".join(reqs).lower()
    assert "python" not in text and "libpython" not in text, reqs
    for r in reqs:
        for v in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", r):
            assert vt(v) <= vt(GLIBC_MAX[tgt]), r
        if ".so" in r:
            assert r.startswith("libgcc_s.so.1"), f"unexpected library requirement {r!r}"
        m = re.match(r"rpmlib\((\w+)\) <= (\S+)", r)
        if m:
            # features EL6's rpm 4.8 has; never PayloadIsZstd (rpm 4.14)
            assert m.group(1) in {"CompressedFileNames", "FileDigests", "PayloadFilesHavePrefix",
                                  "PayloadIsXz", "PartialHardlinkSets"}, r
    if tgt == "el6":
        assert any(r.startswith("chkconfig") for r in reqs) and not any("systemd" in r for r in reqs)
    else:
        assert any(r.startswith("systemd") for r in reqs) and not any("chkconfig" in r for r in reqs)


@pytest.mark.parametrize("tgt", TARGETS)
def test_provides_only_the_package(tgt):
    rpm = rpm_path(tgt)
    provs = q(rpm, "--provides").split("\n")
    names = {p.split()[0] for p in provs if p.strip()}
    assert names <= {"hb-appliance", "hb-appliance(x86-64)"}, provs
    assert "heartbeat" in q(rpm, "--conflicts").split()


@pytest.mark.parametrize("tgt", TARGETS)
def test_header_format(tgt):
    rpm = rpm_path(tgt)
    out = q(rpm, "--qf", "%{PAYLOADCOMPRESSOR} %{RELEASE} %{ARCH}\\n")
    comp, release, arch = out.split()
    assert comp == "gzip" and release.endswith("." + tgt) and arch == "x86_64"
    files = q(rpm, "--list").split()
    for f in EXPECTED_FILES["both"] + EXPECTED_FILES[tgt]:
        assert f in files, f
    other = "el7" if tgt == "el6" else "el6"
    for f in EXPECTED_FILES[other]:
        assert f not in files, f
    docs = q(rpm, "--docfiles").split()
    assert {"ha.cf", "authkeys", "haresources"} <= {os.path.basename(d) for d in docs}
    cfg = q(rpm, "--configfiles").split()
    assert "/etc/sysconfig/heartbeat" in cfg and "/etc/logrotate.d/heartbeat" in cfg
    # the frozen files are shipped exactly as built: no build-id links, no debuginfo
    assert not [f for f in files if "/.build-id/" in f]
    # header and payload digests verify (what EL6's rpm 4.8 checks: MD5/SHA1 header digests)
    p = run(["rpm", "-K", rpm], check=True)
    assert "digests OK" in p.stdout, p.stdout
    assert q(rpm, "--qf", "%{FILEDIGESTALGO}").strip() in ("1", "8")   # MD5 or SHA256


@pytest.mark.parametrize("tgt", TARGETS)
def test_scriptlets(tgt):
    s = q(rpm_path(tgt), "--scripts")
    assert "groupadd" in s and "useradd" in s
    if tgt == "el6":
        assert "chkconfig --add heartbeat" in s and "chkconfig --del heartbeat" in s
        assert "heartbeat stop" in s
        assert "systemctl" not in s
    else:
        assert "systemctl preset heartbeat.service" in s
        assert "--no-reload disable heartbeat.service" in s and "systemctl stop heartbeat.service" in s
        assert "chkconfig" not in s


@pytest.mark.parametrize("tgt", TARGETS)
def test_rpmlint_no_errors_no_warnings(tgt):
    need_tool("rpmlint")
    p = run(["rpmlint", "-r", os.path.join(RPMDIR, "rpmlintrc"), rpm_path(tgt)], timeout=300)
    m = re.search(r"(\d+) errors?, (\d+) warnings?", p.stdout)
    assert m, p.stdout + p.stderr
    assert int(m.group(1)) == 0, p.stdout
    assert int(m.group(2)) == 0, p.stdout         # warnings too: rpm/rpmlintrc says why each is filtered


def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify on the unit as installed by the el7 RPM (host's units as the base)."""
    if "el7" not in TARGETS:
        pytest.skip("el7 not among HBA_TARGETS")
    need_tool("systemd-analyze")
    need_tool("rpm")
    root = str(tmp_path / "root")
    os.makedirs(root + "/usr/lib/systemd/system")
    for d in ("/lib/systemd/system", "/usr/lib/systemd/system"):
        if os.path.isdir(d):
            subprocess.run(["cp", "-an", d + "/.", root + "/usr/lib/systemd/system/"], check=True)
    p = rpm_install(root, rpm_path("el7"), scripts=False)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(["systemd-analyze", "verify", "--root=" + root, "heartbeat.service"])
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0, out
    assert "heartbeat.service" not in out, out


@pytest.mark.parametrize("tgt", TARGETS)
def test_install_in_scratch_root_and_run_without_python(tgt, tmp_path):
    """rpm --root with scriptlets, then the installed program inside a chroot that has only
    the package's files, glibc/libgcc and a shell (for the scriptlets and the init script)."""
    need_root()
    need_tool("rpm")
    root = str(tmp_path / "root")
    make_root(root)
    p = rpm_install(root, rpm_path(tgt))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scriptlet failed" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert os.path.realpath(root + "/usr/sbin/heartbeat") == root + "/usr/lib/hb-appliance/heartbeat"
    # nothing Python-ish outside the private bundle, and no interpreter at all in the root
    for dirpath, _dirs, files in os.walk(root):
        if dirpath.startswith(root + "/usr/lib/hb-appliance"):
            continue
        assert not [f for f in files if f.startswith("python")], (dirpath, files)
    # from the host, through the relative symlink in the scratch root
    p = run([root + "/usr/sbin/heartbeat", "--version"], check=True)
    assert "3.0.6" in p.stdout
    # inside the chroot: the installed names
    for argv, rc, text in ((["/usr/sbin/heartbeat", "--version"], 0, "3.0.6"),
                           (["/usr/bin/cl_status", "--help"], 0, "Usage: cl_status"),
                           (["/usr/bin/cl_status", "hbstatus"], 1, "stopped")):
        p = run(["chroot", root] + argv)
        assert p.returncode == rc and text in p.stdout, (argv, p.stdout, p.stderr)
    if tgt == "el6":
        p = run(["chroot", root, "/etc/rc.d/init.d/heartbeat", "status"])
        assert p.returncode == 3 and "stopped" in p.stdout, p.stdout + p.stderr
        p = run(["chroot", root, "/etc/rc.d/init.d/heartbeat", "bogus"])
        assert p.returncode == 2
        p = run(["chroot", root, "/etc/rc.d/init.d/heartbeat", "start"])
        assert p.returncode == 6, p.stdout + p.stderr          # no ha.cf: not configured
    check_installed_man_pages(root)
    p = rpm_erase(root)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not os.path.exists(root + "/usr/lib/hb-appliance/heartbeat")


def check_installed_man_pages(root: str) -> None:
    """Every page is installed world-readable, gunzips to the page for its name and section, and
    renders without warnings (groff from the host: the EL roots have no man)."""
    groff = shutil.which("groff")
    for page in MAN_PAGES:
        path = root + page
        assert os.stat(path).st_mode & 0o777 == 0o644, page
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
        name, section = os.path.basename(page)[: -len(".gz")].rsplit(".", 1)
        assert re.search(rf"^\.TH {re.escape(name.upper())} {section} ", text, re.M), page
        if groff:
            p = run([groff, "-man", "-ww", "-Tascii", "-P-cbou"], input=text)
            assert p.returncode == 0 and not p.stderr and "SEE ALSO" in p.stdout, (page, p.stderr)


@pytest.mark.parametrize("tgt", TARGETS)
def test_installed_daemon_runs_and_children_get_system_env(tgt, tmp_path):
    """The installed daemon in a chroot (own mount, UTS, PID and network namespaces), started
    with LD_LIBRARY_PATH=/custom in the caller's environment: EL6 through the SysV script
    (start/status/reload/stop), EL7 through the commands the unit runs (no systemd here).
    The resource script it starts must see exactly LD_LIBRARY_PATH=/custom and no PyInstaller
    variables, and run system tools."""
    need_root()
    need_tool("unshare")
    need_tool("rpm")
    root = str(tmp_path / "root")
    make_root(root)
    assert rpm_install(root, rpm_path(tgt)).returncode == 0
    if tgt == "el6":
        init = "/etc/rc.d/init.d/heartbeat"
        ctl = {v: f"{init} {v}" for v in ("start", "status", "reload", "stop")}
        stopped = 3                     # LSB status: not running
    else:
        # what heartbeat.service runs: ExecStartPre/ExecStart (daemonized here: no systemd
        # to hold a Type=notify service), ExecReload, ExecStop; status via heartbeat -s
        hb = "/usr/sbin/heartbeat"
        ctl = {"start": f"sh -c '{hb} -t && {hb}'", "status": f"{hb} -s",
               "reload": f"{hb} -r", "stop": f"{hb} -k"}
        stopped = 1                     # heartbeat -s: stopped
    daemon_scenario(root, ctl, stopped)
    shutil.rmtree(root, ignore_errors=True)
