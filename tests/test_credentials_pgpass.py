"""Unit tests for .pgpass parsing and lookup_pgpass (the engine's per-connection hook)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from pydantic import SecretStr

from dbwire.credentials import PgpassEntry, PgpassWarning, lookup_pgpass, parse_pgpass
from dbwire.credentials.pgpass import pgpass_host_key


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_parse_pgpass_fields_wildcards_and_line_numbers() -> None:
    entries = parse_pgpass("# comment\n\ndb.example:5432:*:alice:pw1\n*:*:*:*:pw2\n")
    assert [(e.host, e.port, e.dbname, e.user, e.line) for e in entries] == [
        ("db.example", "5432", None, "alice", 3),
        (None, None, None, None, 4),
    ]
    assert [e.password.get_secret_value() for e in entries] == ["pw1", "pw2"]


def test_parse_pgpass_escapes() -> None:
    (entry,) = parse_pgpass(r"h\:1:\*:d\\b:u:p\:w\\d:rest-is-ignored" + "\n")
    assert entry.host == "h:1"
    assert entry.port == "*"  # an escaped star is literal, not a wildcard
    assert entry.dbname == "d\\b"
    assert entry.password.get_secret_value() == "p:w\\d"


def test_parse_pgpass_skips_what_libpq_skips() -> None:
    text = "too:few:fields\n#*:*:*:*:comment\n*:*:*:*\n*:*:*:u\\\n*:*:*:*:ok\\\n"
    (entry,) = parse_pgpass(text)
    # A trailing backslash in the password is kept, as libpq keeps it.
    assert entry.password.get_secret_value() == "ok\\"
    assert entry.line == 5


def test_parse_pgpass_indented_hash_is_not_a_comment() -> None:
    (entry,) = parse_pgpass(" #h:*:*:*:pw\n")
    assert entry.host == " #h"


def test_parse_pgpass_crlf_and_empty_password() -> None:
    entries = parse_pgpass(b"a:*:*:*:x\r\n*:*:*:*:\r\n")
    assert [e.password.get_secret_value() for e in entries] == ["x", ""]


def test_entry_matches() -> None:
    entry = PgpassEntry("h", None, "d", None, SecretStr("pw"), 1)
    assert entry.matches("h", "1", "d", "anyone")
    assert not entry.matches("other", "1", "d", "anyone")
    assert "pw" not in repr(entry)


def test_host_key_follows_libpq() -> None:
    assert pgpass_host_key(None) == "localhost"
    assert pgpass_host_key("") == "localhost"
    assert pgpass_host_key("/var/run/postgresql") == "localhost"
    assert pgpass_host_key("/var/run/postgresql/") == "/var/run/postgresql/"
    assert pgpass_host_key("/tmp") == "/tmp"
    assert pgpass_host_key("db.example") == "db.example"


def test_lookup_returns_password_and_source(tmp_path: Path) -> None:
    passfile = _write(tmp_path / "pgpass", "#\nlocalhost:5432:app:alice:s3cret\n")
    found = lookup_pgpass(None, None, "app", "alice", passfile)
    assert found is not None
    password, source = found
    assert password.get_secret_value() == "s3cret"
    assert source == f".pgpass {passfile} line 2"


def test_lookup_port_forms(tmp_path: Path) -> None:
    passfile = _write(tmp_path / "pgpass", "*:5432:*:*:default\n*:05433:*:*:padded\n")
    assert lookup_pgpass("h", 5432, "d", "u", passfile) is not None
    assert lookup_pgpass("h", "", "d", "u", passfile) is not None
    found = lookup_pgpass("h", "05433", "d", "u", passfile)
    assert found is not None and found[0].get_secret_value() == "padded"
    # 5433 as a number is not the string "05433".
    assert lookup_pgpass("h", 5433, "d", "u", passfile) is None


def test_lookup_rereads_the_file_each_time(tmp_path: Path) -> None:
    passfile = _write(tmp_path / "pgpass", "*:*:*:*:old\n")
    first = lookup_pgpass("h", 5432, "d", "u", passfile)
    _write(passfile, "*:*:*:*:new\n")
    second = lookup_pgpass("h", 5432, "d", "u", passfile)
    assert first is not None and second is not None
    assert (first[0].get_secret_value(), second[0].get_secret_value()) == ("old", "new")


def test_lookup_empty_password_stops_the_search(tmp_path: Path) -> None:
    passfile = _write(tmp_path / "pgpass", "*:*:*:u:\n*:*:*:*:later\n")
    assert lookup_pgpass("h", 5432, "d", "u", passfile) is None


def test_lookup_needs_dbname_and_user(tmp_path: Path) -> None:
    passfile = _write(tmp_path / "pgpass", "*:*:*:*:pw\n")
    assert lookup_pgpass("h", 5432, "", "u", passfile) is None
    assert lookup_pgpass("h", 5432, "d", "", passfile) is None


def test_lookup_missing_file_is_silent(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lookup_pgpass("h", 5432, "d", "u", tmp_path / "missing") is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o610])
def test_lookup_ignores_group_or_world_access(tmp_path: Path, mode: int) -> None:
    passfile = _write(tmp_path / "pgpass", "*:*:*:*:pw\n", mode)
    with pytest.warns(PgpassWarning) as record:
        assert lookup_pgpass("h", 5432, "d", "u", passfile) is None
    assert str(record[0].message) == (
        f'password file "{passfile}" has group or world access; '
        "permissions should be u=rw (0600) or less"
    )


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_lookup_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    passfile = _write(tmp_path / "pgpass", "*:*:*:*:pw\n", mode)
    assert lookup_pgpass("h", 5432, "d", "u", passfile) is not None


def test_lookup_ignores_a_directory(tmp_path: Path) -> None:
    with pytest.warns(PgpassWarning, match="is not a plain file"):
        assert lookup_pgpass("h", 5432, "d", "u", tmp_path) is None


def test_lookup_follows_symlinks_like_stat(tmp_path: Path) -> None:
    target = _write(tmp_path / "real", "*:*:*:*:pw\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert lookup_pgpass("h", 5432, "d", "u", link) is not None
