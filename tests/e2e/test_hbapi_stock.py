"""The STOCK /usr/bin/cl_status and api_test against appliance.hbapi (spec §12.2, §12.3).

Each namespace here is throwaway and unnamed (``unshare --mount --net``, tmpfs on /run), so
/var/run/heartbeat/register is private and ``ip netns list`` never sees it. The server runs a
stub provider; the outputs and exit codes are the ones the spec table and Debian's 3.0.6 give.
The last test runs Debian's real heartbeat in the lab and checks ours answers the same.
"""

from __future__ import annotations

import grp
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

CL_STATUS = "/usr/bin/cl_status"
API_TEST = "/usr/libexec/heartbeat/api_test"
REAL_HEARTBEAT = "/usr/libexec/heartbeat/heartbeat"
REPO = str(Path(__file__).resolve().parents[2])
HB_VERSION = "3.0.6 (node: 958e11be8686759f1b99204c17812f2c2633b169)"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root"),
    pytest.mark.skipif(not os.path.exists(CL_STATUS), reason="Debian's heartbeat is not installed"),
]

SERVER = r"""
import asyncio, json, signal, sys
from appliance.hbapi import ApiClients, serve_api
from appliance.wire.message import Message

snap = json.load(open(sys.argv[1]))
snap["uuids"] = {k: bytes.fromhex(v) for k, v in snap.get("uuids", {}).items()}
clients = ApiClients()

class Provider:
    def api_snapshot(self):
        return snap

def poke():  # SIGUSR1: what the daemon would pass on from the cluster
    clients.deliver(Message.of(t="status", src="server2", st="dead"))
    clients.deliver(Message.of(t="ping", src="server2"))

async def main():
    await serve_api("/var/run/heartbeat/register", Provider(), clients)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, poke)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

SNAPSHOT = {
    "node": "server1",
    "rscstatus": "local",
    "generation": 3,
    "nodes": [
        {"name": "server1", "state": "active", "type": "normal", "links": {"eth0": "up"}},
        {"name": "server2", "state": "dead", "type": "normal", "links": {"eth0": "dead"}},
        {"name": "server3", "state": "up", "type": "normal", "links": {"eth0": "up"}},
        {"name": "10.0.0.254", "state": "ping", "type": "ping", "links": {"10.0.0.254": "up"}},
    ],
    "params": {"deadtime": "6", "keepalive": "500ms", "crm": "false", "auto_failback": "on"},
    "uuids": {"server1": "00112233445566778899aabbccddeeff"},
}


def _read_line(proc: subprocess.Popen, want: str, timeout: float) -> str:
    """Read proc's stdout until a line containing `want` (bounded)."""
    assert proc.stdout is not None
    fd, buf, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout
    while want.encode() not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
            raise AssertionError(f"no {want!r} from {proc.args}: {buf.decode(errors='replace')}")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"EOF before {want!r}: {buf.decode(errors='replace')}")
            buf += chunk
    return buf.decode(errors="replace")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Namespace:
    """A holder process in fresh mount+net namespaces with its own tmpfs /run."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.server: subprocess.Popen | None = None
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs -o mode=0755 tmpfs /run && echo up && exec sleep infinity"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            _read_line(self.holder, "up", 10)
        except BaseException:
            _stop(self.holder)
            raise

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", *argv]

    def start_server(self, snapshot: dict) -> None:
        snap_file, script = self.tmp / "snapshot.json", self.tmp / "server.py"
        snap_file.write_text(json.dumps(snapshot))
        script.write_text(SERVER)
        env = {**os.environ, "PYTHONPATH": REPO}
        self.server = subprocess.Popen(
            self.argv(sys.executable, str(script), str(snap_file)),
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )  # fmt: skip
        _read_line(self.server, "ready", 20)

    def stop_server(self) -> None:
        if self.server is not None:
            _stop(self.server)

    def run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*argv), capture_output=True, text=True, timeout=timeout)

    def cl_status(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(CL_STATUS, *args)

    def close(self) -> None:
        self.stop_server()
        _stop(self.holder)


@pytest.fixture(scope="module")
def ns(tmp_path_factory) -> Iterator[Namespace]:
    space = Namespace(tmp_path_factory.mktemp("hbapi"))
    try:
        space.start_server(SNAPSHOT)
        yield space
    finally:
        space.close()


def out(r: subprocess.CompletedProcess) -> tuple[str, int]:
    return r.stdout, r.returncode


def test_socket_directory_like_306(ns: Namespace) -> None:
    r = ns.run("stat", "-c", "%a %U %G %F", "/var/run/heartbeat", "/var/run/heartbeat/register")
    assert r.stdout.splitlines() == ["750 hacluster haclient directory", "777 root root socket"]


@pytest.mark.parametrize(
    ("args", "stdout", "rc"),
    [
        (["hbstatus"], "Heartbeat is running on this machine.\n", 0),
        (["listnodes"], "10.0.0.254\nserver3\nserver2\nserver1\n", 0),
        (["listnodes", "-n"], "server3\nserver2\nserver1\n", 0),
        (["listnodes", "-p"], "10.0.0.254\n", 0),
        (["nodestatus", "server1"], "active\n", 0),
        (["nodestatus", "SERVER1"], "active\n", 0),
        (["nodestatus", "server2"], "dead\n", 1),
        (["nodestatus", "server3"], "up\n", 0),
        (["nodestatus", "10.0.0.254"], "ping\n", 0),
        (["nodestatus", "-m", "server1"], "The cluster node server1 is active\n", 0),
        (["nodetype", "server1"], "normal\n", 0),
        (["nodetype", "10.0.0.254"], "ping\n", 0),
        (["nodeweight", "server1"], "100\n", 0),
        (["nodesite", "server1"], "\n", 0),
        (["listhblinks", "server1"], "\teth0\n", 0),
        (["listhblinks", "-v", "server2"], "\teth0\tdead\n", 0),
        (["listhblinks", "10.0.0.254"], "\t10.0.0.254\n", 0),
        (["hblinkstatus", "server1", "eth0"], "up\n", 0),
        (["hblinkstatus", "server2", "eth0"], "dead\n", 1),
        (["rscstatus"], "local\n", 0),
        (["rscstatus", "-m"], "This node is holding local resources.\n", 0),
        (["hbparameter", "-p", "deadtime"], "6\n", 0),
        (["hbparameter", "-p", "keepalive"], "500ms\n", 0),
        (["hbparameter", "-p", "hbversion"], HB_VERSION + "\n", 0),
        (["hbparameter", "-p", "pacemaker"], "false\n", 0),
        (["clientstatus", "server1", "ipfail"], "offline\n", 1),
        (["clientstatus", "server2", "ipfail"], "offline\n", 1),
    ],
)
def test_cl_status(ns: Namespace, args: list[str], stdout: str, rc: int) -> None:
    r = ns.cl_status(*args)
    assert out(r) == (stdout, rc), r.stderr


def test_cl_status_verbose_listing(ns: Namespace) -> None:
    r = ns.cl_status("hbstatus", "-v")
    assert r.returncode == 0
    assert r.stdout == (
        f'version:\t{HB_VERSION}\nmanaged by:\t"haresources"\n'
        "\n10.0.0.254\tping\t(nodetype: ping)\n\t10.0.0.254\tup\n"
        "\nserver3\tup\t(nodetype: normal)\n\teth0\tup\n"
        "\nserver2\tdead\t(nodetype: normal)\n\teth0\tdead\n"
        "\nserver1\tactive\t(nodetype: normal)\n\teth0\tup\n"
    )


@pytest.mark.parametrize(
    ("args", "rc", "stderr"),
    [
        (["nodestatus", "bogus"], 11, "Error. May be due to incorrect node name"),
        (["nodetype", "bogus"], 11, "Error. May be due to incorrect node name"),
        (["nodeweight", "bogus"], 11, "Error. Maybe due to incorrect node name."),
        (["hblinkstatus", "server1", "eth9"], 13, "Cannot get heartbeat link status"),
        (["listhblinks", "bogus"], 13, "REASON: EINVAL"),
        (["hbparameter", "-p", "nosuch"], 1, "Cannot get parameter nosuch's value"),
    ],
)
def test_cl_status_errors(ns: Namespace, args: list[str], rc: int, stderr: str) -> None:
    r = ns.cl_status(*args)
    assert (r.stdout.strip(), r.returncode) == ("", rc) and stderr in r.stderr


def test_cl_status_for_an_ordinary_user(ns: Namespace) -> None:
    """cl_status is setgid haclient, so anyone may ask (the directory keeps the rest out)."""
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    assert out(ns.run(*nobody, CL_STATUS, "nodestatus", "server1")) == ("active\n", 0)
    probe = "import socket; socket.socket(socket.AF_UNIX).connect('/var/run/heartbeat/register')"
    r = ns.run(*nobody, sys.executable, "-c", probe)
    assert r.returncode != 0 and "Permission denied" in r.stderr


def _api_test(ns: Namespace, *prefix: str) -> tuple[int, str]:
    """Run api_test up to its message loop, have the server pass it two cluster messages, then
    ^C it; the next message lets it see the ^C, sign off and exit (its normal way out)."""
    proc = subprocess.Popen(
        ns.argv(*prefix, API_TEST), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None and ns.server is not None
    fd, log = proc.stderr.fileno(), b""

    def wait_for(text: bytes, timeout: float) -> None:
        nonlocal log
        deadline = time.monotonic() + timeout
        while text not in log and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                log += chunk

    try:
        wait_for(b"Waiting for messages", 30)
        if proc.poll() is None:
            ns.server.send_signal(signal.SIGUSR1)
            wait_for(b"Got message", 10)
            proc.send_signal(signal.SIGINT)
            ns.server.send_signal(signal.SIGUSR1)
        _, rest = proc.communicate(timeout=15)
        text = (log + rest).decode(errors="replace")
        return proc.returncode, re.sub(r"^.*?api_test: \[\d+\]: ", "", text, flags=re.M)
    finally:
        _stop(proc)


def test_api_test(ns: Namespace) -> None:
    try:
        grp.getgrnam("haclient")
    except KeyError:
        pytest.skip("no haclient group")
    rc, log = _api_test(ns, "setpriv", "--regid=haclient", "--clear-groups")
    assert rc == 0, log
    for line in (
        f"info: Parameter hbversion is [{HB_VERSION}]",
        "info: Parameter deadtime is [6]",
        "info: Current resource status: local",
        "info: Cluster node: server1: status: active",
        "info: \tnode server1: intf: eth0 ifstatus: up",
        "info: server1/api_test status: [online]",
        "info: Cluster node: server2: status: dead",
        "info: \tnode server2: intf: eth0 ifstatus: dead",
        "info: \tnode 10.0.0.254: intf: 10.0.0.254 ifstatus: up",
        "info: Sent ping request to cluster",
        "info: Waiting for messages...",
        "notice: Status update: Node server2 now has status dead",
        "notice: Got message 1 of type [ping] from [server2]",
    ):
        assert line in log.splitlines(), log


def test_api_test_as_plain_root_is_refused_like_306(ns: Namespace) -> None:
    """apiauth gives the named client "ping" to group haclient only: root with gid 0 is out."""
    rc, log = _api_test(ns)
    assert rc == 1 and "REASON: client failed authorization" in log


def test_stopped_daemon(tmp_path: Path) -> None:
    space = Namespace(tmp_path)
    try:
        r = space.cl_status("hbstatus")
        assert out(r) == ("Heartbeat is stopped on this machine.\n", 1)
        space.start_server(SNAPSHOT)
        assert out(space.cl_status("hbstatus")) == ("Heartbeat is running on this machine.\n", 0)
        space.stop_server()  # the socket file stays behind, nobody answers
        assert out(space.cl_status("hbstatus")) == ("Heartbeat is stopped on this machine.\n", 1)
        r = space.cl_status("nodestatus", "server1")
        assert r.returncode == 1 and "Cannot signon with heartbeat" in r.stderr
    finally:
        space.close()


# --------------------------------------------------------------------------- against real 3.0.6

COMPARE = [
    ["hbstatus"], ["hbstatus", "-v"], ["listnodes"], ["listnodes", "-v"], ["listnodes", "-p"],
    ["nodestatus", "server1"], ["nodestatus", "192.168.56.1"], ["nodestatus", "nosuch"],
    ["nodetype", "192.168.56.1"], ["nodeweight", "server1"], ["nodesite", "server1"],
    ["listhblinks", "-v", "server1"], ["listhblinks", "192.168.56.1"], ["hblinkstatus", "server1", "eth0"],
    ["hblinkstatus", "server1", "eth7"], ["rscstatus"], ["clientstatus", "server1", "ipfail"],
    *(["hbparameter", "-p", p] for p in (
        "deadtime", "keepalive", "warntime", "initdead", "deadping", "udpport", "auto_failback", "hopfudge",
        "baud", "hbgenmethod", "realtime", "debug", "logfile", "debugfile", "logfacility", "crm", "pacemaker",
        "hbversion", "msgfmt", "nosuch")),
]  # fmt: skip


def _strip_log_prefix(text: str) -> str:
    return re.sub(r"^\w{3} [ \d]\d [\d:]{8} \S+ cl_status: \[\d+\]: ", "", text, flags=re.M)


def _answers(node) -> list[tuple[str, str, int]]:
    res = []
    for args in COMPARE:
        r = node.run([CL_STATUS, *args], check=False, timeout=20)
        res.append((r.stdout, _strip_log_prefix(r.stderr), r.returncode))
    return res


@pytest.mark.skipif(not os.path.exists(REAL_HEARTBEAT), reason="no real heartbeat 3.0.6")
def test_same_answers_as_real_heartbeat(lab_factory) -> None:
    """Debian's 3.0.6 runs one node (plus a ping node nobody answers) and cl_status records what it
    says; then 3.0.6 is killed and our server, fed the same ha.cf (through our parser) and the same
    state, must say exactly the same."""
    from appliance.config.hacf import parse_hacf
    from appliance.lab.cluster import Cluster, ClusterConfig

    lab = lab_factory(["server1"], client=False)
    cfg = ClusterConfig(haresources="", extra=["ping 192.168.56.1"], initdead="4")
    cluster = Cluster(lab, cfg, binary=REAL_HEARTBEAT)
    node = lab.node("server1")
    cluster.configure(node)
    cluster.start("server1")
    try:
        deadline = time.monotonic() + 40
        while (node.run([CL_STATUS, "nodestatus", "server1"], check=False).stdout != "active\n"
               or node.run([CL_STATUS, "nodestatus", "192.168.56.1"], check=False).stdout != "dead\n"):
            assert time.monotonic() < deadline, "3.0.6 never settled"
            time.sleep(0.5)
        rsc = node.run([CL_STATUS, "rscstatus"], check=False).stdout.strip()  # no resources: stays
        real = _answers(node)  # "transition" in 3.0.6
        assert real[0] == ("Heartbeat is running on this machine.\n", "", 0)
        assert node.run([CL_STATUS, "rscstatus"], check=False).stdout.strip() == rsc
    finally:
        for pid in cluster.daemon_pids("server1"):  # processes this test started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    hacf = parse_hacf(node.read("/etc/ha.d/ha.cf"), local_node="server1")
    snap = {
        "node": "server1", "rscstatus": rsc, "generation": 1, "params": hacf.params,
        "nodes": [
            {"name": "192.168.56.1", "state": "dead", "type": "ping", "links": {"192.168.56.1": "dead"}},
            {"name": "server1", "state": "active", "type": "normal", "links": {"eth0": "up"}},
        ],
    }  # fmt: skip
    node.write("/run/hbapi-snapshot.json", json.dumps(snap))
    node.write("/run/hbapi-server.py", SERVER)
    server = node.popen([sys.executable, "/run/hbapi-server.py", "/run/hbapi-snapshot.json"],
                        env={"PYTHONPATH": REPO}, stdout=subprocess.PIPE)  # fmt: skip
    try:
        _read_line(server, "ready", 20)
        ours = _answers(node)
    finally:
        _stop(server)
    mismatches = [(args, r, o) for args, r, o in zip(COMPARE, real, ours) if r != o]
    report = [f"{' '.join(a)}:\n  3.0.6: {r!r}\n  ours:  {o!r}" for a, r, o in mismatches]
    assert not mismatches, "\n".join(report)
