"""A fuzzed corpus of configuration files: every mutation of ha.cf, haresources, authkeys and
hb-appliance.cf either loads or fails with ConfigErrors naming the file (and a line wherever a
line exists), never anything else; and the real program exits 6 without a traceback."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.cli.configload import load_all
from appliance.errors import ConfigError, ConfigErrors
from appliance.paths import Paths

HACF = """\
logfile /var/log/ha-log
keepalive 2
deadtime 30
warntime 10
initdead 120
udpport 694
bcast eth0
mcast eth0 225.0.0.1 694 1 0
ucast eth0 192.168.56.102
auto_failback on
ping 192.168.56.1
ping_group routers 192.168.56.1 192.168.56.254
respawn hacluster /usr/lib/heartbeat/ipfail
node server1
node server2
node server3
"""
HARESOURCES = """\
server1 192.168.56.200 httpd
server2 IPaddr2::192.168.56.201/24/eth0:web/192.168.56.255 Filesystem::/dev/sdb1::/data::ext3 \\
    smb
server3 IPv6addr::2001:db8:56::10/64/eth0 squid
"""
AUTHKEYS = "auth 2\n1 md5 an-older-key\n2 sha1 a-secret-key-for-the-lab\n3 crc\n"
EXTENSION = """\
[resources]
start_timeout = 60
[announce]
refresh_interval = 30
[monitor]
interval = 5
fall = 2
  [[192.168.56.200]]
  restarts = 1
[hooks]
notify = /etc/ha.d/notify.sh
[metrics]
listen = 127.0.0.1:9694
"""
FILES = {"ha.cf": HACF, "haresources": HARESOURCES, "authkeys": AUTHKEYS, "hb-appliance.cf": EXTENSION}


def mutate(text: str, rng: random.Random) -> str:
    """One of: drop / duplicate / swap / truncate lines, flip or insert bytes, splice tokens."""
    lines = text.splitlines(keepends=True)
    op = rng.randrange(9)
    if op == 0 and lines:
        del lines[rng.randrange(len(lines))]
    elif op == 1 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif op == 2 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == 3:
        return text[: rng.randrange(len(text) + 1)]
    elif op == 4 and text:
        b = bytearray(text.encode())
        b[rng.randrange(len(b))] = rng.randrange(256)
        return b.decode("utf-8", "replace")
    elif op == 5:
        i = rng.randrange(len(text) + 1)
        junk = rng.choice(["\0", "\t", "\\", "#", "::", "/", " 999999999999", "[", "]]", "=", "\n",
                           "\xff", "-1", "0", "ms", "\r\n", "'", '"', "%s", "${x}"])
        return text[:i] + junk + text[i:]
    elif op == 6 and lines:
        i = rng.randrange(len(lines))
        words = lines[i].split()
        if words:
            words[rng.randrange(len(words))] = rng.choice(["", "x", "-5", "1e9", "eth99", "999.1.1.1",
                                                         "nosuch", "::::", "a" * 300])
            lines[i] = " ".join(words) + "\n"
    elif op == 7:
        return text * 2
    else:
        return "".join(rng.sample(lines, len(lines))) if lines else text
    return "".join(lines)


def write_tree(root: str, files: dict[str, str]) -> Paths:
    os.makedirs(root, exist_ok=True)
    for name, text in files.items():
        path = os.path.join(root, name)
        with open(path, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
        os.chmod(path, 0o600 if name == "authkeys" else 0o644)
    return Paths(etc=root)


def check_loads_or_names_the_file(paths: Paths) -> None:
    try:
        load_all(paths, "server1")
    except ConfigErrors as exc:
        for e in exc.errors:
            assert isinstance(e, ConfigError)
            assert e.path.startswith(paths.etc), e
            assert e.message, e
            assert e.line is None or e.line >= 1


def test_the_unmutated_corpus_loads(tmp_path) -> None:
    load_all(write_tree(str(tmp_path), FILES), "server1")


@pytest.mark.parametrize("seed", range(8))
def test_mutated_corpus(tmp_path, seed: int) -> None:
    """2000 mutated trees (250 per seed), 1 to 3 mutations of one or more files each."""
    rng = random.Random(seed)
    for case in range(250):
        files = dict(FILES)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(list(files))
            files[name] = mutate(files[name], rng)
        check_loads_or_names_the_file(write_tree(str(tmp_path / str(case)), files))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(FILES)), text=st.text(max_size=400))
def test_any_text_in_any_file(tmp_path, name: str, text: str) -> None:
    files = dict(FILES, **{name: text})
    check_loads_or_names_the_file(write_tree(str(tmp_path / "t"), files))


def test_the_program_exits_6_without_traceback(tmp_path) -> None:
    """The same mutations through the real `heartbeat -t`: exit 0 or 6, never a traceback."""
    rng = random.Random(1234)
    exe = os.path.join(os.path.dirname(sys.executable), "heartbeat")
    codes = set()
    for case in range(40):
        files = dict(FILES)
        name = rng.choice(list(files))
        files[name] = mutate(mutate(files[name], rng), rng)
        root = str(tmp_path / str(case))
        write_tree(root, files)
        with open(os.path.join(root, "nodeinfo"), "w") as f:
            f.write("server1\n")
        res = subprocess.run([exe, "-t"], env=dict(os.environ, HA_DIR=root), capture_output=True,
                             text=True, timeout=60)
        assert res.returncode in (0, 6), (res.returncode, res.stderr)
        assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, res.stderr
        if res.returncode == 6:
            assert f"ERROR: {root}/" in res.stderr, res.stderr
        codes.add(res.returncode)
    assert codes == {0, 6}      # the corpus exercises both outcomes
