"""One program, four names: heartbeat, cl_status, hb_standby, hb_takeover (chosen by argv[0])."""

from __future__ import annotations

import os
import sys

TOOLS = ("heartbeat", "cl_status", "hb_standby", "hb_takeover")


def skip_openssl() -> None:
    """Keep OpenSSL out of the process: asyncio imports `ssl` (we never use TLS) and hashlib
    prefers `_hashlib`, which together map libssl + libcrypto and cost ~4.5 MB of resident
    memory, mlock'ed with `realtime`.  CPython's own SHA-1/SHA-256/MD5 then serve HMAC (~2 us
    more per packet).  The optional AEAD auth methods use cryptography's own OpenSSL."""
    for name in ("ssl", "_ssl", "_hashlib"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "import fails"


def main(argv: list[str] | None = None) -> int:
    skip_openssl()
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0]) if argv else "heartbeat"
    args = argv[1:]
    if args[:1] == ["--privsep-helper"]:     # appliance.spawner.EXEC_FLAG (not imported: tools stay light)
        # The daemon's privileged helper (appliance.spawner), started by the daemon itself.
        from appliance.spawner import exec_main

        return exec_main(args[1:])
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
