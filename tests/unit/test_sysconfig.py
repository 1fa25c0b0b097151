"""/etc/sysconfig/heartbeat as the daemon reads it (shell KEY="value" lines, via configobj)."""

from __future__ import annotations

from appliance.config.sysconfig import load_sysconfig
from appliance.paths import Paths


def test_shell_style_file_is_read(tmp_path, monkeypatch) -> None:
    f = tmp_path / "heartbeat"
    f.write_text('# comment\nHEARTBEAT_OPTS="-d"\nHA_DIR="/srv/ha.d"\n')
    assert load_sysconfig(str(f)) == {"HEARTBEAT_OPTS": "-d", "HA_DIR": "/srv/ha.d"}
    monkeypatch.delenv("HA_DIR", raising=False)
    assert Paths.from_env(sysconfig=str(f)).etc == "/srv/ha.d"
    monkeypatch.setenv("HA_DIR", "/env/ha.d")
    assert Paths.from_env(sysconfig=str(f)).etc == "/env/ha.d"


def test_missing_or_broken_file_means_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HA_DIR", raising=False)
    assert load_sysconfig(str(tmp_path / "absent")) == {}
    bad = tmp_path / "bad"
    bad.write_text('HA_DIR = "unterminated\n[[[\n')
    assert load_sysconfig(str(bad)) == {}
    assert Paths.from_env(sysconfig=str(bad)).etc == "/etc/ha.d"
