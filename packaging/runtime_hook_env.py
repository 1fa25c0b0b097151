"""PyInstaller runtime hook: give child processes the system's environment back.

PyInstaller's bootloader (6.x, Linux) prepends the bundle directory to LD_LIBRARY_PATH
(onedir: then re-executes itself; onefile: for the extracted child), saving the original
value in LD_LIBRARY_PATH_ORIG when there was one, and sets private _PYI_* variables.
Everything the daemon starts (resource agents, init scripts, /sbin/ip, mail, ...) must run
with the system's libraries, not the bundle's libssl/libpython: so this hook, which runs
before any application code, restores os.environ (and thus the C environment that
subprocess/os.exec* hand down) to what the operator started the program with:

- LD_LIBRARY_PATH := LD_LIBRARY_PATH_ORIG, or removed when the bootloader made it up;
- LD_LIBRARY_PATH_ORIG and the bootloader's _PYI_* variables are removed, so that a child
  which is this same program (a resource script calling cl_status) starts as a fresh,
  top-level instance instead of believing it is a sub-process of this one.

The running interpreter is not affected: the dynamic loader read LD_LIBRARY_PATH when
the process started, and the bundle's libraries are already mapped or found by RPATH.
"""

import os
import sys


def _restore_environment(environ=os.environ, bundle_dir=None):
    """Restore the original library search path in `environ` (a mapping).

    bundle_dir: the bundle's library directory (sys._MEIPASS); entries under it are what
    the bootloader added. Returns the mapping for convenience (tests).
    """
    if bundle_dir is None:
        bundle_dir = getattr(sys, "_MEIPASS", None)
    orig = environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if orig is not None:
        environ["LD_LIBRARY_PATH"] = orig
    elif "LD_LIBRARY_PATH" in environ:
        # No original value was saved: the bootloader created the variable. Keep any
        # entry that is not ours (defensive: a future bootloader could behave differently).
        def ours(entry):
            if not entry or not bundle_dir:
                return not entry
            real = os.path.realpath(entry)
            top = os.path.realpath(bundle_dir)
            return real == top or real.startswith(top + os.sep)

        kept = [e for e in environ["LD_LIBRARY_PATH"].split(os.pathsep) if not ours(e)]
        if kept:
            environ["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
        else:
            del environ["LD_LIBRARY_PATH"]
    for name in [n for n in environ if n.startswith("_PYI_")]:
        del environ[name]
    return environ


if getattr(sys, "frozen", False):
    _restore_environment()
