"""authkeys methods only hb-appliance nodes speak: sha256, aes256gcm, chacha20poly1305."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from appliance.config.authkeys import MIN_MODERN_KEY, AuthMethod, parse_authkeys
from appliance.errors import ConfigErrors

SECRET = "Zq9-SuperSecret-7781-long"


def errors_of(text: str):
    with pytest.raises(ConfigErrors) as info:
        parse_authkeys(text, "authkeys")
    for e in info.value.errors:
        assert SECRET not in str(e)
    return info.value.errors


@pytest.mark.parametrize("method", ["sha256", "aes256gcm", "chacha20poly1305"])
def test_modern_methods_parse(method: str) -> None:
    keys = parse_authkeys(f"auth 3\n1 sha1 old\n3 {method} {SECRET}\n")
    assert keys.active_method == AuthMethod(3, method, SECRET.encode())
    assert 1 in keys.methods          # every listed index is accepted on receipt


@pytest.mark.parametrize("method", ["sha256", "aes256gcm", "chacha20poly1305"])
def test_modern_methods_need_a_long_key(method: str) -> None:
    short = "k" * (MIN_MODERN_KEY - 1)
    errors = errors_of(f"auth 1\n1 {method} {short}\n")
    assert (errors[0].line, errors[0].message) == (2, f"{method} key too short")
    assert "openssl rand" in errors[0].hint and short not in str(errors[0])
    assert "requires a key" in errors_of(f"auth 1\n1 {method}\n")[0].message


def test_unknown_method_hint_lists_all() -> None:
    hint = errors_of(f"auth 1\n1 {SECRET}\n")[0].hint
    assert "crc, md5 or sha1" in hint and "sha256" in hint and "chacha20poly1305" in hint


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def test_aead_without_cryptography_is_a_config_error_with_file_and_line(tmp_path) -> None:
    """The EL6 build has no `cryptography`: `heartbeat -t` reports the line, exit 6."""
    etc = tmp_path / "ha.d"
    etc.mkdir()
    (etc / "ha.cf").write_text("keepalive 1\ndeadtime 10\nbcast lo\nnode nodea\nnode nodeb\n")
    (etc / "haresources").write_text("")
    (etc / "nodeinfo").write_text("nodea\n")
    (etc / "authkeys").write_text(f"auth 2\n1 sha256 {SECRET}\n2 aes256gcm {SECRET}\n")
    os.chmod(etc / "authkeys", 0o600)
    hide = """
        import sys
        sys.modules["cryptography"] = None          # as if the package were not in the bundle
        from appliance.cli.main import main
        sys.exit(main(["heartbeat", "-t"]))
    """
    env = {"HA_DIR": str(etc), "HA_VARLIB": str(tmp_path), "HA_VARRUN": str(tmp_path)}
    res = _run(hide, **env)
    assert res.returncode == 6, res.stderr
    assert f"{etc}/authkeys:3: auth method aes256gcm is not available in this build" in res.stderr
    assert "use sha256" in res.stderr and SECRET not in res.stderr + res.stdout
    # sha256 works without it
    (etc / "authkeys").write_text(f"auth 1\n1 sha256 {SECRET}\n")
    res = _run(hide, **env)
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout + res.stderr


def test_cryptography_is_imported_only_for_aead() -> None:
    code = f"""
        import sys
        from appliance.config.authkeys import parse_authkeys
        from appliance.wire import auth
        from appliance.wire.message import Message, decode_packet
        k = parse_authkeys("auth 1\\n1 sha256 {SECRET}\\n")
        packet = auth.sign(Message.of(t="status", src="a", hg="1"), k)
        assert auth.verify(decode_packet(packet), k) is None
        print("cryptography" in sys.modules)
        parse_authkeys("auth 1\\n1 chacha20poly1305 {SECRET}\\n")
        print("cryptography" in sys.modules)
    """
    assert _run(code).stdout.split() == ["False", "True"]
