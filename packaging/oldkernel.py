#!/usr/bin/python3
# ruff: noqa: UP031  (%-formatting kept: runs on any python3 >= 3.6)
"""packaging/oldkernel.py KVER [--no-uname26] -- CMD ARGS...

Crude old-kernel emulation for smoke tests: installs a seccomp filter that makes
every x86_64 syscall introduced after Linux KVER (e.g. 2.6.32 for EL6, 3.10
for EL7) fail with ENOSYS, as it would on that kernel, then execs CMD. By default the
UNAME26 personality also makes uname(2) report 2.6.x, so version checks see an
old kernel (OpenSSL 3 refuses its /dev/urandom fallback when uname says >= 4.8
and getrandom is missing; glibc/ld.so "kernel too old" checks). It does NOT emulate missing flags or changed
semantics of older syscalls, nor distribution backports. Needs Debian's
python3-seccomp (apt-get install python3-seccomp); run with /usr/bin/python3.

Used by tests/packaging (EL6: 2.6.32, EL7: 3.10). Note: the frozen program links the
HOST's glibc dynamically, so this exercises Debian's glibc 2.36 plus everything above libc
(CPython, OpenSSL, Rust std in cryptography) -- on EL6/EL7 their own glibc runs instead.
Adapted from shared/reference/packaging/oldkernel.py.
"""
import ctypes
import errno
import os
import sys

import seccomp

# x86_64 syscalls added after 2.6.32, with the release that added them.
NEW_SYSCALLS = {
    "2.6.33": ["recvmmsg"],
    "2.6.36": ["fanotify_init", "fanotify_mark", "prlimit64"],
    "2.6.39": ["name_to_handle_at", "open_by_handle_at", "clock_adjtime", "syncfs"],
    "3.0": ["sendmmsg", "setns"],
    "3.1": ["process_vm_readv", "process_vm_writev"],
    "3.5": ["kcmp"],
    "3.8": ["finit_module"],
    "3.10": [],
    "3.14": ["sched_setattr", "sched_getattr"],
    "3.15": ["renameat2"],
    "3.17": ["seccomp", "getrandom", "memfd_create", "kexec_file_load"],
    "3.18": ["bpf"],
    "3.19": ["execveat"],
    "4.3": ["membarrier"],
    "4.4": ["mlock2"],
    "4.5": ["copy_file_range"],
    "4.6": ["preadv2", "pwritev2"],
    "4.9": ["pkey_mprotect", "pkey_alloc", "pkey_free"],
    "4.11": ["statx"],
    "4.18": ["io_pgetevents", "rseq"],
    "5.1": ["pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register"],
    "5.2": ["open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick"],
    "5.3": ["pidfd_open", "clone3"],
    "5.6": ["openat2", "pidfd_getfd"],
    "5.8": ["faccessat2"],
    "5.9": ["close_range"],
    "5.10": ["process_madvise"],
    "5.11": ["epoll_pwait2"],
    "5.12": ["mount_setattr"],
    "5.13": ["landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"],
    "5.14": ["memfd_secret", "quotactl_fd"],
    "5.15": ["process_mrelease"],
    "5.16": ["futex_waitv"],
    "5.17": ["set_mempolicy_home_node"],
    "6.5": ["cachestat"],
    "6.6": ["fchmodat2", "map_shadow_stack"],
    "6.8": ["statmount", "listmount", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules"],
    "6.10": ["mseal"],
}


def vt(s):
    return tuple(int(x) for x in s.split("."))


def main():
    argv = sys.argv[1:]
    if "--" not in argv or not argv:
        print(__doc__)
        return 2
    opts, cmd = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    kver = vt(opts[0])
    if "--no-uname26" not in opts:
        libc = ctypes.CDLL(None, use_errno=True)
        UNAME26 = 0x0020000
        libc.personality(UNAME26)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    blocked = []
    for ver, names in NEW_SYSCALLS.items():
        if vt(ver) > kver:
            for n in names:
                try:
                    f.add_rule(seccomp.ERRNO(errno.ENOSYS), n)
                    blocked.append(n)
                except Exception:
                    pass  # unknown to this libseccomp
    f.load()
    if os.environ.get("OLDKERNEL_VERBOSE"):
        print("oldkernel: ENOSYS for %d syscalls newer than %s" % (len(blocked), opts[0]), file=sys.stderr)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
