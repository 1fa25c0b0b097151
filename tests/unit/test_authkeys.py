"""authkeys parser: 3.0.6 semantics (spec 4.1); key material never leaks into messages."""

from __future__ import annotations

import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.authkeys import (
    AuthKeys,
    AuthMethod,
    check_permissions,
    load_authkeys,
    parse_authkeys,
)
from appliance.errors import ConfigError, ConfigErrors

SECRET = "Zq9-SuperSecret-7781"


def errors_of(text: str) -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        parse_authkeys(text, "authkeys")
    return info.value.errors


def assert_no_leak(exc: ConfigErrors, secret: str) -> None:
    texts = [str(exc), repr(exc)] + [f"{e.message} {e.hint} {e}" for e in exc.errors]
    assert not any(secret in t for t in texts), texts


# ---- valid files ---------------------------------------------------------------------------


def test_tutorial_file() -> None:
    keys = parse_authkeys("auth 2\n2 sha1 pre-shared-password\n")
    assert keys.active == 2
    assert keys.active_method == AuthMethod(2, "sha1", b"pre-shared-password")
    assert keys.path == "/etc/ha.d/authkeys"


@pytest.mark.parametrize(
    ("text", "index", "method", "key"),
    [("auth 2\n2 crc\n", 2, "crc", b""),
     ("auth 1\n1 md5 md5Key-Xy\n", 1, "md5", b"md5Key-Xy"),
     ("auth 1\n1 sha1 pbSecret42\n", 1, "sha1", b"pbSecret42")],
)  # fmt: skip
def test_lab_files(text: str, index: int, method: str, key: bytes) -> None:
    keys = parse_authkeys(text)
    assert (keys.active, keys.active_method.method, keys.active_method.key) == (index, method, key)


def test_comments_blanks_leading_whitespace_and_crlf() -> None:
    text = "# comment\n\n   \t\n   auth 3\r\n\t# another\r\n  3 md5 abc\r\n"
    keys = parse_authkeys(text)
    assert keys.active_method == AuthMethod(3, "md5", b"abc")


def test_key_is_the_first_token_only() -> None:
    keys = parse_authkeys("auth 1\n1 sha1 first second third\n")
    assert keys.active_method.key == b"first"


def test_several_methods_all_kept_and_auth_selects_one() -> None:
    keys = parse_authkeys("auth 15\n0 crc\n15 sha1 k15\n7 md5 k7\n")
    assert keys.active == 15
    assert sorted(keys.methods) == [0, 7, 15]
    assert keys.methods[7] == AuthMethod(7, "md5", b"k7")


def test_active_index_is_matched_while_reading() -> None:
    # 3.0.6 keeps the last method line that matched the auth value current at the time.
    keys = parse_authkeys("auth 1\n1 md5 a\nauth 2\n2 sha1 b\n")
    assert keys.active == 2
    keys = parse_authkeys("auth 1\n1 md5 a\nauth 2\n")
    assert keys.active == 1


def test_sscanf_forms_accepted_like_306() -> None:
    assert parse_authkeys("auth2\n2sha1 key\n").active_method == AuthMethod(2, "sha1", b"key")
    assert parse_authkeys("auth 01 junk\n1 crc\n").active == 1


# ---- errors ------------------------------------------------------------------------------


def test_auth_after_its_method_line_is_not_found() -> None:
    [error] = errors_of(f"1 sha1 {SECRET}\nauth 1\n")
    assert error.message == "Auth Key [1] not found"
    assert error.line == 2
    assert "line 1" in error.hint


def test_auth_index_never_defined() -> None:
    [error] = errors_of("auth 3\n1 md5 abc\n")
    assert error.message == "Auth Key [3] not found" and error.line == 1


def test_missing_auth_line() -> None:
    [error] = errors_of("1 md5 abc\n")
    assert error.message == "No auth line" and error.line is None
    assert errors_of("")[0].message == "No auth line"


@pytest.mark.parametrize("line", ["16 md5 abc", "-1 md5 abc", "99999999999999 md5 abc"])
def test_index_out_of_range(line: str) -> None:
    errors = errors_of(f"auth 1\n1 crc\n{line}\n")
    assert [(e.line, e.message) for e in errors] == [(3, "key index out of range")]
    assert "0..15" in errors[0].hint


def test_unknown_method_is_listed_and_not_echoed() -> None:
    errors = errors_of(f"auth 1\n1 {SECRET}\n")
    assert errors[0].message == "unknown authentication method"
    assert "crc, md5 or sha1" in errors[0].hint
    assert errors[0].line == 2


def test_method_names_are_case_sensitive() -> None:
    assert errors_of("auth 1\n1 SHA1 key\n")[0].message == "unknown authentication method"


def test_md5_and_sha1_need_a_key_crc_takes_none() -> None:
    assert "requires a key" in errors_of("auth 1\n1 md5\n")[0].message
    assert "requires a key" in errors_of("auth 1\n1 sha1   \n")[0].message
    assert errors_of(f"auth 1\n1 crc {SECRET}\n")[0].message == "crc takes no key"


def test_duplicate_index() -> None:
    errors = errors_of("auth 1\n1 md5 a\n1 sha1 b\n")
    assert [(e.line, e.message) for e in errors] == [(3, "Multiply defined authnum [1]")]


@pytest.mark.parametrize(
    "line", [f"sha1 {SECRET}", SECRET, f"auth {SECRET}", f"authx {SECRET}", "1", f"x 1 md5 {SECRET}"]
)
def test_other_lines_are_errors_without_echo(line: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_authkeys(f"auth 1\n1 crc\n{line}\n", "authkeys")
    assert info.value.errors[0].line == 3
    assert_no_leak(info.value, SECRET)


def test_all_errors_collected() -> None:
    errors = errors_of("auth 1\n1 md5\n2 foo bar\n3 crc x\nwhat\n")
    assert [e.line for e in errors] == [2, 3, 4, 5, 1]


BAD_FILES = [
    "auth 1\n1 md5 {s}\n1 sha1 {s}\n",
    "1 sha1 {s}\nauth 1\n",
    "auth 1\n1 crc {s}\n",
    "auth 1\n1 {s} {s}\n",
    "auth 2\n2 sha1 {s}\n{s}\n",
    "auth 2\n99 sha1 {s}\n",
    "auth 2\n2 sha1 {s}\nsha1 {s}\n",
    "{s} auth\n",
    "auth 1\n1 md5 {s}\n\x00{s}\n1x\n",
]


@pytest.mark.parametrize("template", BAD_FILES)
def test_bad_files_never_echo_the_secret(template: str) -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_authkeys(template.format(s=SECRET))
    assert_no_leak(info.value, SECRET)


def test_repr_and_str_never_show_keys() -> None:
    keys = parse_authkeys(f"auth 1\n1 sha1 {SECRET}\n2 md5 {SECRET}x\n")
    for text in (repr(keys), str(keys), repr(keys.active_method), str(keys.methods)):
        assert SECRET not in text
    assert keys.active_method.key == SECRET.encode()


# ---- files and permissions -------------------------------------------------------------


def write(path, content: bytes, mode: int) -> str:
    path.write_bytes(content)
    os.chmod(path, mode)
    return str(path)


def test_check_permissions(tmp_path) -> None:
    good = write(tmp_path / "good", b"auth 1\n1 crc\n", 0o600)
    check_permissions(good)
    check_permissions(write(tmp_path / "ro", b"", 0o400))
    for mode in (0o644, 0o640, 0o604):
        path = write(tmp_path / f"bad{mode:o}", b"", mode)
        with pytest.raises(ConfigErrors) as info:
            check_permissions(path)
        [error] = info.value.errors
        assert error.message == f"Bad permissions on keyfile [{path}], 600 recommended"
        assert error.hint == f"chmod 600 {path}"
    with pytest.raises(ConfigErrors, match="Cannot open keyfile"):
        check_permissions(str(tmp_path / "missing"))


def test_load_authkeys(tmp_path) -> None:
    path = write(tmp_path / "authkeys", b"auth 1\n1 sha1 k\xff\xfe\n", 0o600)
    keys = load_authkeys(path)
    assert keys.path == path
    assert keys.active_method.key == b"k\xff\xfe"  # raw bytes survive


def test_load_checks_permissions_before_parsing(tmp_path) -> None:
    path = write(tmp_path / "authkeys", f"1 sha1 {SECRET}\n".encode(), 0o644)
    with pytest.raises(ConfigErrors) as info:
        load_authkeys(path)
    assert "Bad permissions" in info.value.errors[0].message
    assert len(info.value.errors) == 1
    assert_no_leak(info.value, SECRET)


def test_load_missing_directory_and_fifo(tmp_path) -> None:
    with pytest.raises(ConfigErrors, match="Cannot open keyfile"):
        load_authkeys(str(tmp_path / "missing"))
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(ConfigErrors, match="Cannot open keyfile"):
        load_authkeys(str(directory))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ConfigErrors, match="not a regular file"):
        load_authkeys(str(fifo))  # must not block
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# ---- properties ----------------------------------------------------------------------------

# Any code point (lone surrogates included, as surrogateescape produces them) or the
# characters the grammar cares about.
NASTY = st.text(
    st.one_of(
        st.characters(),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        st.sampled_from(list("#\\ \t\r\n\f\v\x00,.:/=0123456789")),
    ),
    max_size=300,
)



@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_arbitrary_text_gives_keys_or_config_errors(text: str) -> None:
    try:
        keys = parse_authkeys(text)
    except ConfigErrors as exc:
        assert exc.errors
        str(exc)
    else:
        assert isinstance(keys, AuthKeys) and keys.active in keys.methods


token = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="\x85\xa0"),
    min_size=1,
    max_size=40,
).filter(lambda t: not any(c.isspace() for c in t))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.integers(0, 15), st.tuples(st.sampled_from(["md5", "sha1", "crc"]), token),
                    min_size=1),
    st.data(),
)  # fmt: skip
def test_generated_files_round_trip(defs: dict[int, tuple[str, str]], data: st.DataObject) -> None:
    active = data.draw(st.sampled_from(sorted(defs)))
    lines = [f"auth {active}"]
    for index, (method, key) in defs.items():
        lines.append(f"{index} {method}" + ("" if method == "crc" else f" {key}"))
    keys = parse_authkeys("\n".join(lines))
    assert keys.active == active
    for index, (method, key) in defs.items():
        expected = b"" if method == "crc" else key.encode()
        assert keys.methods[index] == AuthMethod(index, method, expected)


secret_tokens = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=6, max_size=20)


@settings(max_examples=200, deadline=None)
@given(secret_tokens, st.sampled_from(BAD_FILES))
def test_generated_secrets_never_leak(secret: str, template: str) -> None:
    secret = "K" + secret  # never a method name or a keyword
    with pytest.raises(ConfigErrors) as info:
        parse_authkeys(template.format(s=secret))
    assert_no_leak(info.value, secret)
