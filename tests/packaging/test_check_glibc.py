"""packaging/check_glibc.py on known ELF files of this host (no build needed)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import check_glibc
import pytest

from .conftest import PACKAGING, host_lib

CHECK = os.path.join(PACKAGING, "check_glibc.py")


def objdump_max_glibc(path: str) -> str | None:
    if not shutil.which("objdump"):
        pytest.skip("objdump not installed")
    out = subprocess.run(["objdump", "-p", path], capture_output=True, text=True, check=True).stdout
    out = out.split("Version References:", 1)[-1] if "Version References:" in out else ""
    vers = [v.split("_", 1)[1] for v in out.split() if v.startswith("GLIBC_") and v[6:7].isdigit()]
    return max(vers, key=check_glibc.vtuple) if vers else None


@pytest.mark.parametrize("path", ["/bin/ls", "/bin/sh", "libm.so.6", "libz.so.1"])
def test_max_glibc_matches_objdump(path):
    p = path if path.startswith("/") else host_lib(path)
    with open(p, "rb") as fh:
        info = check_glibc.analyse_elf(fh.read())
    assert info["max"].get("GLIBC") == objdump_max_glibc(p)


def test_host_python_fails_for_el7(tmp_path):
    """Debian's own binaries need glibc 2.3x and libz/libexpat from the system: both are caught."""
    exe = os.path.realpath(sys.executable)
    out = tmp_path / "a.json"
    p = subprocess.run([sys.executable, CHECK, exe, "--target", "el7", "--json", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 1, p.stdout
    assert "FAIL" in p.stdout
    rows = json.loads(out.read_text())["rows"]
    assert any("GLIBC_" in pr for r in rows for pr in r["problems"])


def test_unbundled_needed_library_fails(tmp_path):
    """libz.so.1 needs only libc: passes alone; an ELF NEEDing it passes only when it is bundled."""
    shutil.copy(host_lib("libz.so.1"), tmp_path / "libz.so.1")
    assert check_glibc.main(["x", str(tmp_path), "--target", "el7"]) == 0
    # Debian's /usr/bin/python3 NEEDs libz.so.1 (bundled here) and libexpat.so.1 (not)
    shutil.copy(os.path.realpath("/usr/bin/python3"), tmp_path / "py")
    rows = check_glibc.audit(str(tmp_path), {"glibc": "9.99", "gcc": None, "kernel": None})
    probs = [p for r in rows if r["file"] == "py" for p in r["problems"]]
    assert not any("libz.so.1" in p for p in probs), probs          # bundled
    assert any("libexpat.so.1" in p for p in probs), probs           # not bundled, not system


def test_rejects_non_elf_and_32bit():
    with pytest.raises(check_glibc.ElfError):
        check_glibc.analyse_elf(b"#!/bin/sh\n")
    hdr = bytearray(b"\x7fELF" + bytes(60))
    hdr[4], hdr[5] = 1, 1  # ELFCLASS32
    with pytest.raises(check_glibc.ElfError):
        check_glibc.analyse_elf(bytes(hdr))


def test_onefile_archive_is_read(tmp_path):
    """A fake onefile: an ELF with a PyInstaller CArchive appended holding one ELF entry."""
    with open(host_lib("libz.so.1"), "rb") as fh:
        member = fh.read()
    name = b"libz.so.1".ljust(16, b"\0")
    entry_fmt = "!IIIIBc"
    entry = struct.pack(entry_fmt, struct.calcsize(entry_fmt) + len(name), 0, len(member),
                        len(member), 0, b"b") + name
    pkg = member + entry
    cookie_fmt = "!8sIIII64s"
    pkg_len = len(pkg) + struct.calcsize(cookie_fmt)
    cookie = struct.pack(cookie_fmt, b"MEI\014\013\012\013\016", pkg_len, len(member), len(entry),
                         311, b"libpython3.11.so.1.0")
    with open("/bin/true", "rb") as fh:
        boot = fh.read()
    f = tmp_path / "onefile"
    f.write_bytes(boot + pkg + cookie)
    items, bundled = check_glibc.iter_elves(str(f))
    labels = [lbl for lbl, _ in items]
    assert "[onefile] libz.so.1" in labels and "libz.so.1" in bundled
