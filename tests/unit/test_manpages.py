"""The manual pages in man/: they render without warnings and cannot drift from the code.

Every ha.cf directive the parser knows, every cl_status sub-command, every authkeys method and
every section and key of the extension file must be the tag of an entry (.TP) in its page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from appliance.cli import cl_status
from appliance.config import authkeys, extension, hacf

MAN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "man")
PAGES = ["heartbeat.8", "cl_status.1", "hb_standby.1", "hb_takeover.1", "ha.cf.5", "haresources.5",
         "authkeys.5", "hb-appliance.cf.5"]


def source(page: str) -> str:
    with open(os.path.join(MAN, page), encoding="utf-8") as f:
        return f.read()


def plain(roff: str) -> str:
    """Roff text as read: font escapes, quotes and macro names gone, \\- as -."""
    text = re.sub(r"\\f[BIRP]", "", roff).replace("\\-", "-").replace("\\e", "\\").replace('"', "")
    return re.sub(r"^\.[A-Z]{1,2}\s*", "", text)


def tags(page: str) -> list[str]:
    """The tag line of every .TP (or .TQ) entry, as plain text."""
    lines = source(page).splitlines()
    return [plain(lines[i + 1]) for i, line in enumerate(lines[:-1]) if line in (".TP", ".TQ")]


def tag_words(page: str) -> set[str]:
    return {w for t in tags(page) for w in re.split(r"[\s,|\[\]=]+", t) if w}


def test_every_page_is_there() -> None:
    present = sorted(f for f in os.listdir(MAN) if re.search(r"\.[158]$", f))
    assert present == sorted(PAGES)
    for page in PAGES:
        section = page.rsplit(".", 1)[1]
        name = page.rsplit(".", 1)[0]
        th = re.search(r"^\.TH (\S+) (\d)", source(page), re.M)
        assert th and th.group(1) == name.upper() and th.group(2) == section, page


@pytest.mark.parametrize("page", PAGES)
def test_renders_without_warnings(page: str) -> None:
    groff = shutil.which("groff")
    if groff is None:
        pytest.fail("groff is missing (groff-base, installed by scripts/setup)")
    # -ww: every warning; rendering for ASCII (not -z, not utf8) also flags stray control or
    # non-ASCII characters.
    p = subprocess.run([groff, "-man", "-ww", "-Tascii", "-P-cbou", os.path.join(MAN, page)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert "NAME" in p.stdout and "SEE ALSO" in p.stdout and len(p.stdout) > 500


def test_every_hacf_directive_is_documented() -> None:
    documented = tag_words("ha.cf.5")
    missing = [d for d in hacf._KNOWN if d not in documented]
    assert not missing, f"ha.cf directives without an entry in man/ha.cf.5: {missing}"


def test_every_cl_status_sub_command_is_documented() -> None:
    documented = tag_words("cl_status.1")
    commands = {"hbstatus", "--json", *cl_status._COMMANDS}
    assert not commands - documented, sorted(commands - documented)
    # and the page promises nothing the tool does not have
    usage = {line.split()[0] for line in cl_status.USAGE.splitlines()[2:] if line.strip()}
    assert usage <= documented


def test_every_extension_section_and_key_is_documented() -> None:
    text = source("hb-appliance.cf.5")
    section, keys = None, {}
    for line in extension.SPEC:
        head = re.fullmatch(r"\s*\[([a-z_]+)\]\s*", line)
        if head:
            section = head.group(1)
            keys[section] = set()
        elif "=" in line and section and not line.startswith(" "):
            keys[section].add(line.split("=")[0].strip())
    assert keys and "resources" in keys
    subsections = re.findall(r"^\.SS \[([a-z_]+)\]$", text, re.M)
    assert subsections == list(keys), "one .SS [section] per section, in the spec's order"
    documented = tag_words("hb-appliance.cf.5")
    missing = sorted(f"[{s}] {k}" for s, ks in keys.items() for k in ks if k not in documented)
    assert not missing, missing


def test_every_authkeys_method_is_documented() -> None:
    documented = tag_words("authkeys.5")
    assert not set(authkeys.METHODS) - documented, sorted(set(authkeys.METHODS) - documented)


def test_export_is_documented() -> None:
    words = tag_words("heartbeat.8")
    assert {"--pcs", "--crm", "--cib", "-t", "-k", "-r", "-s", "-f"} <= words
