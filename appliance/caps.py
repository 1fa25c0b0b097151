"""Linux capabilities and process hardening through libc: capget/capset and prctl (ctypes).

No new dependency: the python-prctl or libcap bindings would add a C extension to both frozen
builds for what is a handful of system calls.  The kernel keeps credentials (capability sets,
securebits, no_new_privs, the bounding set) per *thread*: the callers make these calls in the
main thread before any other thread they care about exists, or restart such threads after.
Only PR_SET_DUMPABLE is per process.
"""

from __future__ import annotations

import ctypes
import os

CAP_NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)  # fmt: skip

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_GET_SECUREBITS = 27
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38      # Linux 3.5
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47           # Linux 4.3
PR_CAP_AMBIENT_CLEAR_ALL = 4

SECBIT_NOROOT = 1 << 0                 # uid 0 gets no capabilities from execve
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_KEEP_CAPS = 1 << 4              # keep the permitted set across a change from uid 0
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6   # Linux 4.3
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7

_CAP_V3 = 0x20080522          # 64-bit capability sets, two 32-bit words (Linux 2.6.26)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong]
        _libc.prctl.restype = ctypes.c_int
    return _libc


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); OSError on failure (EINVAL for options an old kernel does not know)."""
    rc = _c().prctl(option, arg2, arg3, arg4, arg5)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return rc


def number(name: str) -> int:
    return CAP_NAMES.index(name.lower().removeprefix("cap_"))


def mask(names: list[str] | tuple[str, ...]) -> int:
    out = 0
    for name in names:
        out |= 1 << number(name)
    return out


def names(value: int) -> list[str]:
    out = []
    for bit in range(64):
        if value >> bit & 1:
            out.append("cap_" + CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"cap_{bit}")
    return out


def last_cap() -> int:
    """Highest capability number this kernel knows (cap_last_cap from 3.2, else probed)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        pass
    n = 0
    while n < 63:
        try:
            prctl(PR_CAPBSET_READ, n + 1)
        except OSError:
            break
        n += 1
    return n


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread."""
    hdr = _Header(_CAP_V3, 0)
    data = (_Data * 2)()
    if _c().capget(ctypes.byref(hdr), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")

    def word(name: str) -> int:
        return getattr(data[0], name) | getattr(data[1], name) << 32

    return word("effective"), word("permitted"), word("inheritable")


def capset(effective: int, permitted: int, inheritable: int = 0) -> None:
    hdr = _Header(_CAP_V3, 0)
    data = (_Data * 2)()
    for i in (0, 1):
        data[i].effective = effective >> (32 * i) & 0xFFFFFFFF
        data[i].permitted = permitted >> (32 * i) & 0xFFFFFFFF
        data[i].inheritable = inheritable >> (32 * i) & 0xFFFFFFFF
    if _c().capset(ctypes.byref(hdr), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def drop_bounding(keep: int) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(last_cap() + 1):
        if not keep >> cap & 1:
            prctl(PR_CAPBSET_DROP, cap)


def set_securebits(bits: int) -> None:
    prctl(PR_SET_SECUREBITS, bits)


def securebits() -> int:
    return prctl(PR_GET_SECUREBITS)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def clear_ambient() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def dumpable() -> bool:
    return prctl(PR_GET_DUMPABLE) == 1


def set_comm(name: str) -> None:
    """The 15-character name ps/top/pgrep show (the thread's comm)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _c().prctl(PR_SET_NAME, ctypes.cast(buf, ctypes.c_void_p).value or 0, 0, 0, 0)


def proc_status(pid: int | str = "self") -> dict[str, str]:
    """/proc/PID/status as a dict (Uid, CapEff, NoNewPrivs...); {} if unreadable."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
    except OSError:
        pass
    return out


def thread_caps(pid: int | str = "self") -> dict[int, tuple[int, int]]:
    """tid -> (CapEff, CapPrm) for every thread of a process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        st = proc_status(f"{pid}/task/{tid}")
        if "CapEff" in st:
            out[int(tid)] = (int(st["CapEff"], 16), int(st["CapPrm"], 16))
    return out
