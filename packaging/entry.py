# ruff: noqa: UP031  (%-formatting kept: runs on any python3 >= 3.6)
"""Entry script frozen by packaging/heartbeat.pyi.spec.

One program for heartbeat, cl_status, hb_standby and hb_takeover: appliance.cli.main:main
dispatches on the basename of argv[0]. While the CLI module does not exist yet (the daemon
is being written), a minimal stand-in answers --version so the toolchain can be built and
tested; a missing dependency *inside* the CLI is a real error and is not masked.
"""

import os
import sys


def _fallback_main():
    import appliance

    prog = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if any(a in ("--version", "-V", "version") for a in args):
        print("%s (hb-appliance %s, Heartbeat %s compatible)"
              % (prog, appliance.__version__, appliance.HEARTBEAT_COMPAT_VERSION))
        return 0
    print("usage: %s --version  (hb-appliance CLI not built into this bundle)" % prog,
          file=sys.stderr)
    return 2


def _main():
    try:
        from appliance.cli.main import main
    except ModuleNotFoundError as exc:
        if exc.name not in ("appliance.cli.main",):
            raise
        return _fallback_main()
    return main()


if __name__ == "__main__":
    sys.exit(_main())
