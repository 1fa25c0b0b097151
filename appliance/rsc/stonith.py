"""Resetting a node with cluster-glue's `stonith` command (an I/O adapter; no decisions here).

Heartbeat 3.0.6 loads the cluster-glue plugin itself; we run the `stonith` program that ships
with the same plugins (/usr/sbin/stonith on Debian and EL6/EL7 Heartbeat boxes):

    stonith -t TYPE -F PARAMFILE -T reset NODE        exit 0 = reset done

through scripts.run_script, so it runs where resource scripts run (the privileged helper once
the daemon has dropped its privileges) with a timeout, killed with its process group on expiry.

The parameters never travel on a command line (world-readable in /proc/PID/cmdline) nor reach
the log: `stonith TYPE CONFIGFILE` passes CONFIGFILE with -F as it is; a `stonith_host` line's
parameter string is written once, at start-up while still root, to a mode-0600 file in the
run directory (-F reads the same syntax as -p), and the command's output is logged only with
every parameter word masked.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from appliance.config.stonith import StonithDevice
from appliance.rsc.scripts import run_script

log = logging.getLogger("heartbeat")

STONITH = "/usr/sbin/stonith"
RESET_TIMEOUT = 120.0       # 3.0.6 has none (it forks and waits); power switches answer in ~10 s
INFO_TIMEOUT = 20.0
PARAM_FILE = "stonith-device.cf"
S_BADHOST = 4               # cluster-glue's S_BADHOST, the stonith command's exit status for it
_SHORTDESC = re.compile(r"<shortdesc[^>]*>\s*(.*?)\s*</shortdesc>", re.S)


@dataclass(frozen=True)
class ResetOutcome:
    result: str             # the `stonith` message's result: OK, badhost or bad (3.0.6's words)
    detail: str             # exit status and masked output, for the log

    @property
    def ok(self) -> bool:
        return self.result == "OK"


class StonithRunner:
    def __init__(self, device: StonithDevice, run_dir: str, env: dict[str, str],
                 program: str = STONITH) -> None:
        self.device = device
        self.program = program
        self.env = env
        self.param_file = device.config_file or os.path.join(run_dir, PARAM_FILE)
        self._description: str | None = None

    def prepare(self) -> None:
        """Write a stonith_host parameter string to its 0600 file (call while still root:
        after the privilege drop the run directory may not be writable)."""
        if self.device.config_file is not None:
            return
        os.makedirs(os.path.dirname(self.param_file), exist_ok=True)
        tmp = self.param_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, ((self.device.params or "") + "\n").encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.param_file)

    def argv(self, node: str) -> list[str]:
        return [self.program, "-t", self.device.type, "-F", self.param_file, "-T", "reset", node]

    def commands(self, nodes: list[str]) -> frozenset[tuple[str, ...]]:
        """Every command line this runner may use: what a strict privsep policy must allow."""
        info = (self.program, "-t", self.device.type, "-m")
        return frozenset({info, *(tuple(self.argv(n)) for n in nodes)})

    async def description(self) -> str:
        """The device as 3.0.6 names it in "Resetting node X with [...]" (the plugin's own
        short description, e.g. "NULL STONITH device"); asked once."""
        if self._description is None:
            res = await run_script([self.program, "-t", self.device.type, "-m"], self.env, INFO_TIMEOUT)
            m = _SHORTDESC.search(res.output) if res.ok else None
            self._description = m.group(1) if m else f"{self.device.type} STONITH device"
        return self._description

    async def reset(self, node: str) -> ResetOutcome:
        res = await run_script(self.argv(node), self.env, RESET_TIMEOUT)
        if res.ok:
            return ResetOutcome("OK", "exit 0")
        detail = res.describe()
        tail = self.mask(res.output.strip())[-300:]
        if tail:
            detail += f": {tail}"
        return ResetOutcome("badhost" if res.rc == S_BADHOST else "bad", detail)

    def mask(self, text: str) -> str:
        """Every word of the parameter string replaced by *** (passwords, but hosts too)."""
        for word in sorted(set((self.device.params or "").split()), key=len, reverse=True):
            text = text.replace(word, "***")
        return text
