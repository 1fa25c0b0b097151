#!/usr/bin/env python3
# ruff: noqa: UP031  (%-formatting kept: runs on any python3 >= 3.6)
"""check_glibc.py BUNDLE (--target el6|el7 | MAXGLIBC) [--allow LIB]... [--quiet] [--json FILE]

Audits a frozen program before it is shipped to an old distribution:

* BUNDLE is a onedir folder (every ELF under it), a single ELF, or a PyInstaller onefile
  executable (the bootloader plus every ELF of its embedded archive, read without running it).
* For every ELF it lists the highest GLIBC_x.y symbol version it requires (.gnu.version_r,
  what `objdump -p` prints under "Version References"), the other version namespaces
  (GCC_, GLIBCXX_, OPENSSL_, ...), the kernel its .note.ABI-tag declares, and its NEEDED
  libraries.
* It FAILS when
  - an ELF needs a GLIBC version above the target (EL6: 2.12, EL7: 2.17);
  - an ELF needs a libgcc_s version above what the target's gcc ships
    (EL6 gcc 4.4: GCC_4.3.0, EL7 gcc 4.8: GCC_4.8.0) or any GLIBCXX/CXXABI (no libstdc++
    may be taken from the system);
  - a NEEDED library is neither in the bundle nor in the system set every EL box has
    (glibc's libc, libm, libdl, libpthread, librt, libutil, ld-linux, and libgcc_s);
  - an ELF is not x86_64 or cannot be read;
  - an ELF declares a minimum kernel above the target's (2.6.32 / 3.10).

Exit status 0 = pass, 1 = fail, 2 = usage error. Needs only the Python standard library
(3.6+), so the tests and CI can run it with any interpreter.
"""

import io
import json
import os
import re
import struct
import sys
import zlib

TARGETS = {
    # glibc, libgcc_s symbol version, kernel
    "el6": {"glibc": "2.12", "gcc": "4.3.0", "kernel": "2.6.32"},
    "el7": {"glibc": "2.17", "gcc": "4.8.0", "kernel": "3.10.0"},
}
# Present on every EL6/EL7 system (glibc and libgcc packages). Nothing else may be taken
# from the system: zlib, OpenSSL, libffi, ... must be bundled (or linked statically).
SYSTEM_LIBS = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "libutil.so.1", "ld-linux-x86-64.so.2", "libgcc_s.so.1",
}

VER_RE = re.compile(r"^([A-Z][A-Z_]*?)_(\d+(?:\.\d+)*)$")
SHT_DYNAMIC, SHT_NOTE, SHT_GNU_VERNEED = 6, 7, 0x6FFFFFFE
DT_NEEDED, DT_RPATH, DT_RUNPATH = 1, 15, 29
ET_NAMES = {1: "rel", 2: "exe", 3: "dyn", 4: "core"}
EM_X86_64 = 62


def vtuple(s):
    return tuple(int(x) for x in s.split("."))


class ElfError(Exception):
    pass


def _cstr(buf, off):
    end = buf.find(b"\0", off)
    return buf[off:end if end >= 0 else len(buf)].decode("utf-8", "replace")


def analyse_elf(data):
    """Parse a little-endian ELF64 image (bytes). Returns a dict, raises ElfError."""
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("not ELF64 little-endian (class %d, data %d)" % (data[4], data[5]))
    try:
        (e_type, e_machine) = struct.unpack_from("<HH", data, 0x10)
        (e_phoff, e_shoff) = struct.unpack_from("<QQ", data, 0x20)
        (e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHHHH", data, 0x36)
        if e_machine != EM_X86_64:
            raise ElfError("machine %d is not x86_64" % e_machine)
        sections = []
        for i in range(e_shnum):
            sh = struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize)
            sections.append({"name": sh[0], "type": sh[1], "offset": sh[4], "size": sh[5],
                             "link": sh[6], "info": sh[7]})
        if not sections:
            raise ElfError("no section headers")
        shstr = sections[e_shstrndx]
        shstrtab = data[shstr["offset"]:shstr["offset"] + shstr["size"]]
        for s in sections:
            s["name"] = _cstr(shstrtab, s["name"])

        def strtab(idx):
            s = sections[idx]
            return data[s["offset"]:s["offset"] + s["size"]]

        versions = {}
        needed, runpath = [], []
        abi = None
        has_dynamic = False
        interp = None
        for s in sections:
            if s["type"] == SHT_DYNAMIC:
                has_dynamic = True
                strs = strtab(s["link"])
                for off in range(s["offset"], s["offset"] + s["size"], 16):
                    tag, val = struct.unpack_from("<qQ", data, off)
                    if tag == 0:
                        break
                    if tag == DT_NEEDED:
                        needed.append(_cstr(strs, val))
                    elif tag in (DT_RPATH, DT_RUNPATH):
                        runpath.append(_cstr(strs, val))
            elif s["type"] == SHT_GNU_VERNEED:
                strs = strtab(s["link"])
                off = s["offset"]
                for _ in range(s["info"]):
                    _vn_version, vn_cnt, _vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, off)
                    aoff = off + vn_aux
                    for _ in range(vn_cnt):
                        _hash, _flags, _other, vna_name, vna_next = struct.unpack_from("<IHHII", data, aoff)
                        m = VER_RE.match(_cstr(strs, vna_name))
                        if m:
                            versions.setdefault(m.group(1), set()).add(m.group(2))
                        if not vna_next:
                            break
                        aoff += vna_next
                    if not vn_next:
                        break
                    off += vn_next
            elif s["type"] == SHT_NOTE and s["name"] == ".note.ABI-tag":
                namesz, descsz, ntype = struct.unpack_from("<III", data, s["offset"])
                name = data[s["offset"] + 12:s["offset"] + 12 + namesz].rstrip(b"\0")
                desc_off = s["offset"] + 12 + ((namesz + 3) & ~3)
                if name == b"GNU" and ntype == 1 and descsz >= 16:
                    os_, a, b, c = struct.unpack_from("<IIII", data, desc_off)
                    abi = "%d.%d.%d" % (a, b, c) if os_ == 0 else "os%d %d.%d.%d" % (os_, a, b, c)
            elif s["name"] == ".interp":
                interp = _cstr(data, s["offset"])
    except struct.error as exc:
        raise ElfError("truncated ELF: %s" % exc) from exc
    return {
        "max": {k: max(v, key=vtuple) for k, v in versions.items()},
        "needed": needed, "runpath": runpath, "abi": abi, "interp": interp,
        "kind": "static" if not has_dynamic else ("exe" if interp else ET_NAMES.get(e_type, "?")),
    }


def carchive_entries(path):
    """(name, bytes) of every entry of a PyInstaller onefile's embedded CArchive, or []."""
    magic = b"MEI\014\013\012\013\016"
    cookie_fmt = "!8sIIII64s"
    cookie_len = struct.calcsize(cookie_fmt)
    with open(path, "rb") as fh:
        blob = fh.read()
    pos = blob.rfind(magic)
    if pos < 0:
        return []
    _magic, pkg_len, toc_off, toc_len, _pyver, _pylib = struct.unpack_from(cookie_fmt, blob, pos)
    start = pos + cookie_len - pkg_len
    toc = blob[start + toc_off:start + toc_off + toc_len]
    out = []
    cur = 0
    entry_fmt = "!IIIIBc"
    entry_len = struct.calcsize(entry_fmt)
    while cur < len(toc):
        length, off, dlen, _ulen, compressed, typecode = struct.unpack_from(entry_fmt, toc, cur)
        name = toc[cur + entry_len:cur + length].rstrip(b"\0").decode("utf-8")
        cur += length
        if typecode in (b"o", b"z", b"Z", b"s", b"m", b"M"):
            continue  # options, PYZ, scripts and modules: not ELF
        data = blob[start + off:start + off + dlen]
        if compressed:
            data = zlib.decompress(data)
        out.append((name, data))
    return out


def iter_elves(path):
    """Yield (label, bytes) for every ELF of the bundle, plus the set of bundled names."""
    bundled = set()
    items = []
    if os.path.isdir(path):
        for root, _dirs, files in os.walk(path):
            for f in sorted(files):
                p = os.path.join(root, f)
                bundled.add(f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                with open(p, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        fh.seek(0)
                        items.append((os.path.relpath(p, path), fh.read()))
    else:
        with open(path, "rb") as fh:
            items.append((os.path.basename(path), fh.read()))
        for name, data in carchive_entries(path):
            bundled.add(os.path.basename(name))
            if data[:4] == b"\x7fELF":
                items.append(("[onefile] " + name, data))
    return items, bundled


def audit(path, limits, allow=()):
    items, bundled = iter_elves(path)
    allowed = SYSTEM_LIBS | set(allow)
    rows = []
    for label, data in sorted(items):
        row = {"file": label, "problems": []}
        try:
            info = analyse_elf(data)
        except ElfError as exc:
            row.update({"glibc": None, "kind": "?", "abi": None, "other": {}, "needed": []})
            row["problems"].append("unreadable: %s" % exc)
            rows.append(row)
            continue
        g = info["max"].get("GLIBC")
        row.update({"glibc": g, "kind": info["kind"], "abi": info["abi"], "needed": info["needed"],
                    "other": {k: v for k, v in sorted(info["max"].items()) if k != "GLIBC"}})
        if g and vtuple(g) > vtuple(limits["glibc"]):
            row["problems"].append("needs GLIBC_%s > %s" % (g, limits["glibc"]))
        gcc = info["max"].get("GCC")
        if gcc and limits.get("gcc") and vtuple(gcc) > vtuple(limits["gcc"]):
            row["problems"].append("needs libgcc_s GCC_%s > %s" % (gcc, limits["gcc"]))
        for ns in ("GLIBCXX", "CXXABI"):
            if ns in info["max"]:
                row["problems"].append("needs the system libstdc++ (%s_%s)" % (ns, info["max"][ns]))
        if info["abi"] and limits.get("kernel") and not info["abi"].startswith("os") \
                and vtuple(info["abi"]) > vtuple(limits["kernel"]):
            row["problems"].append("declares kernel %s > %s" % (info["abi"], limits["kernel"]))
        for lib in info["needed"]:
            if lib not in bundled and lib not in allowed:
                row["problems"].append("NEEDED %s is neither bundled nor a system library" % lib)
        rows.append(row)
    return rows


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("maxglibc", nargs="?", help="highest GLIBC version allowed, e.g. 2.17")
    ap.add_argument("--target", choices=sorted(TARGETS))
    ap.add_argument("--max-gcc", help="highest libgcc_s GCC_x.y.z allowed")
    ap.add_argument("--allow", action="append", default=[], help="another allowed system library")
    ap.add_argument("--quiet", action="store_true", help="print only failing files and the summary")
    ap.add_argument("--json", help="also write the table as JSON to this file")
    a = ap.parse_args(argv[1:])
    if a.target:
        limits = dict(TARGETS[a.target])
    elif a.maxglibc:
        limits = {"glibc": a.maxglibc, "gcc": None, "kernel": None}
        for t in TARGETS.values():
            if t["glibc"] == a.maxglibc:
                limits = dict(t)
    else:
        ap.error("give --target or MAXGLIBC")
    if a.maxglibc:
        limits["glibc"] = a.maxglibc
    if a.max_gcc:
        limits["gcc"] = a.max_gcc
    if not os.path.exists(a.bundle):
        print("check_glibc: %s does not exist" % a.bundle, file=sys.stderr)
        return 2
    rows = audit(a.bundle, limits, a.allow)
    out = io.StringIO()
    highest = max((vtuple(r["glibc"]) for r in rows if r["glibc"]), default=())
    kernels = sorted({r["abi"] for r in rows if r["abi"]})
    bad = [r for r in rows if r["problems"]]
    for r in rows:
        if a.quiet and not r["problems"]:
            continue
        other = ",".join("%s_%s" % kv for kv in r["other"].items())
        print("%-4s %-62s GLIBC_%-6s %-6s kernel=%-8s %s%s%s" % (
            "FAIL" if r["problems"] else "ok", r["file"], r["glibc"] or "-", r["kind"],
            r["abi"] or "-", other, ("  needs=" + " ".join(r["needed"])) if r["needed"] else "",
            ("  <<< " + "; ".join(r["problems"])) if r["problems"] else ""), file=out)
    print(out.getvalue(), end="")
    print("== %s: %d ELF files, highest GLIBC_%s, declared kernels: %s; limits GLIBC_%s GCC_%s "
          "kernel %s: %s" % (
              a.bundle, len(rows), ".".join(map(str, highest)) or "-", ", ".join(kernels) or "-",
              limits["glibc"], limits.get("gcc") or "-", limits.get("kernel") or "-",
              "FAIL (%d files)" % len(bad) if bad else "PASS"))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"bundle": a.bundle, "limits": limits, "rows": rows,
                       "pass": not bad}, fh, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
