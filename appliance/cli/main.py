"""One program, four names: heartbeat, cl_status, hb_standby, hb_takeover (chosen by argv[0])."""

from __future__ import annotations

import os
import sys

TOOLS = ("heartbeat", "cl_status", "hb_standby", "hb_takeover")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0]) if argv else "heartbeat"
    args = argv[1:]
    if name not in TOOLS and args and args[0] in TOOLS:
        # `python -m appliance cl_status ...` and the like.
        name, args = args[0], args[1:]
    if name == "cl_status":
        from appliance.cli.cl_status import run
    elif name in ("hb_standby", "hb_takeover"):
        from appliance.cli.standby import run_standby, run_takeover

        run = run_standby if name == "hb_standby" else run_takeover
    else:
        from appliance.cli.heartbeat import run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
