"""Property tests: arbitrary input only ever raises DbwireError, and no repr shows a password."""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dbwire.credentials import (
    PasswordCommand,
    lookup_pgpass,
    parse_conninfo,
    parse_pgpass,
    read_mysql_option_files,
    read_password_file,
    resolve_pg,
)
from dbwire.errors import DbwireError

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory standing in for HOME and PGSYSCONFDIR: no real file is ever read."""
    path = tmp_path_factory.mktemp("fuzz")
    (path / "home").mkdir()
    (path / "etc").mkdir()
    yield path


def _env(box: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(box / "home"), "PGSYSCONFDIR": str(box / "etc"), **extra}


_uri_chars = st.sampled_from([*list("@:/?&=%,[]# '\\\t"), "%2", "%41", "%00", "host", "port"])
_uri_tail = st.one_of(st.text(max_size=40), st.lists(_uri_chars, max_size=30).map("".join))


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=60),
        _uri_tail.map(lambda t: "postgresql://" + t),
        _uri_tail.map(lambda t: "postgres://" + t),
        st.lists(_uri_chars | st.sampled_from(["user=", "host=", "'", "\\'"]), max_size=30).map(
            "".join
        ),
    )
)
@example(text="postgresql://[")
@example(text="postgresql://u:p@[::1")
@example(text="host='")
@example(text="postgresql://?&")
@example(text="\x00")
def test_conninfo_text_only_raises_dbwire_errors(box: Path, text: str) -> None:
    try:
        parse_conninfo(text)
        resolve_pg(text, _env(box))
    except DbwireError:
        pass


@SETTINGS
@given(
    params=st.dictionaries(
        st.sampled_from(["host", "port", "user", "dbname", "hostaddr", "sslmode", "bogus"]),
        st.one_of(st.none(), st.text(max_size=20)),
        max_size=5,
    ),
    env=st.dictionaries(
        st.sampled_from(["PGHOST", "PGPORT", "PGUSER", "PGHOSTADDR", "PGREQUIRESSL", "PGSERVICE"]),
        st.text(max_size=15),
        max_size=4,
    ),
)
def test_mappings_and_env_only_raise_dbwire_errors(
    box: Path, params: dict[str, str | None], env: dict[str, str]
) -> None:
    with contextlib.suppress(DbwireError):
        resolve_pg(params, _env(box, **env))


@SETTINGS
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_pgpass_content_only_raises_dbwire_errors(box: Path, content: bytes) -> None:
    passfile = box / "fuzz.pgpass"
    passfile.write_bytes(content)
    passfile.chmod(0o600)
    parse_pgpass(content)
    lookup_pgpass("127.0.0.1", 5432, "d", "u", passfile)
    with contextlib.suppress(DbwireError):
        resolve_pg({"host": "/nonexistent", "passfile": str(passfile)}, _env(box))


@SETTINGS
@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(["[s]", "\n", "user=a", "host=", "=", "#", " ", "ldap", "[", "x"]),
            max_size=30,
        ).map(lambda parts: "".join(parts).encode()),
    )
)
def test_service_file_content_only_raises_dbwire_errors(box: Path, content: bytes) -> None:
    service_file = box / "fuzz-service.conf"
    service_file.write_bytes(content)
    with contextlib.suppress(DbwireError):
        resolve_pg("service=s", _env(box, PGSERVICEFILE=str(service_file)))


@SETTINGS
@given(content=st.binary(max_size=300))
def test_other_sources_only_raise_dbwire_errors(box: Path, content: bytes) -> None:
    path = box / "fuzz.bin"
    path.write_bytes(content)
    path.chmod(0o600)
    for call in (
        lambda: read_password_file(path),
        lambda: read_mysql_option_files([str(path)]),
    ):
        with contextlib.suppress(DbwireError):
            call()


@SETTINGS
@given(command=st.text(max_size=30))
def test_password_command_parsing_only_raises_dbwire_errors(command: str) -> None:
    with contextlib.suppress(DbwireError):
        PasswordCommand(command, ttl=1)


_password = st.text(min_size=1, max_size=30).filter(lambda p: "\x00" not in p)


def _repr_with(password: str, box: Path) -> str:
    encoded = urllib.parse.quote(password, safe="")
    return repr(resolve_pg(f"postgresql://alice:{encoded}@/db?host=/nonexistent", _env(box)))


@SETTINGS
@given(password=_password, other=_password)
def test_repr_does_not_depend_on_the_password(box: Path, password: str, other: str) -> None:
    assume(password != other)
    assert _repr_with(password, box) == _repr_with(other, box)


@SETTINGS
@given(password=_password)
def test_repr_never_contains_a_distinctive_password(box: Path, password: str) -> None:
    secret = "S3cr3t-" + password
    escaped = secret.replace("\\", "\\\\").replace("'", "\\'")
    for params in (
        f"user=alice password='{escaped}' host=/nonexistent sslpassword='{escaped}'",
        {"user": "alice", "password": secret, "host": "/nonexistent,/other"},
    ):
        result = resolve_pg(params, _env(box))
        assert result.password is not None
        assert result.password.get_secret_value() == secret
        for text in (repr(result), str(result), repr(result.targets)):
            assert secret not in text
            assert secret.encode("unicode_escape").decode() not in text


@SETTINGS
@given(password=_password.filter(lambda p: "\n" not in p and "\r" not in p))
def test_repr_hides_pgpass_passwords(box: Path, password: str) -> None:
    secret = "S3cr3t-" + password
    passfile = box / "repr.pgpass"
    escaped = secret.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"*:*:*:*:{escaped}\n")
    passfile.chmod(0o600)
    result = resolve_pg({"host": "/nonexistent", "passfile": str(passfile)}, _env(box))
    assert result.password is not None
    assert result.password.get_secret_value() == secret
    assert secret not in repr(result)
    assert repr(secret)[1:-1] not in repr(result)
    assert os.fspath(passfile) in repr(result)
