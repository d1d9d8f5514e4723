"""Unit tests for resolve_pg beyond libpq parity: API shape, errors, secrecy, sources."""

from __future__ import annotations

import dataclasses
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from dbwire.credentials import ResolvedPg, parse_conninfo, resolve_pg
from dbwire.errors import ConfigError, CredentialsError

OS_USER = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "etc").mkdir()
    return {"HOME": str(tmp_path), "PGSYSCONFDIR": str(tmp_path / "etc")}


def test_defaults(env: dict[str, str]) -> None:
    result = resolve_pg(None, env)
    assert (result.host, result.port, result.user, result.dbname) == (
        "/var/run/postgresql",
        5432,
        OS_USER,
        OS_USER,
    )
    assert result.password is None
    assert result.sources == {
        "host": "default",
        "port": "default",
        "user": "default",
        "dbname": "default",
    }
    assert result.targets[0].is_unix_socket
    assert result.passfile == f"{env['HOME']}/.pgpass"


def test_resolved_is_frozen(env: dict[str, str]) -> None:
    result = resolve_pg("host=h", env)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.host = "other"  # type: ignore[misc]


def test_multi_host_lists(env: dict[str, str]) -> None:
    result = resolve_pg("postgresql://u:pw@a:1,[::1]:2,:3/db", env)
    assert result.hosts == [("a", 1), ("::1", 2), ("/var/run/postgresql", 3)]
    assert [t.password is not None for t in result.targets] == [True, True, True]
    assert not result.targets[0].is_unix_socket


def test_hostaddr_without_host_is_reported_as_host(env: dict[str, str]) -> None:
    result = resolve_pg({"hostaddr": "10.0.0.1", "port": "6000"}, env)
    assert result.hosts == [("10.0.0.1", 6000)]
    assert result.targets[0].hostaddr == "10.0.0.1"
    assert result.sources["host"] == "argument"
    assert result.options["hostaddr"] == "10.0.0.1"


def test_mapping_accepts_int_port_and_ignores_none(env: dict[str, str]) -> None:
    params: dict[str, Any] = {"host": "h", "port": 6432, "user": None}
    result = resolve_pg(params, {**env, "PGUSER": "envuser"})
    assert (result.port, result.user, result.sources["user"]) == (6432, "envuser", "env PGUSER")


@pytest.mark.parametrize("bad", [{"port": True}, {"port": 1.5}, {"host": b"h"}, {"user": "a\0b"}])
def test_mapping_rejects_bad_values(env: dict[str, str], bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        resolve_pg(bad, env)


def test_params_of_the_wrong_type(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="mapping of libpq keywords"):
        resolve_pg(42, env)  # type: ignore[arg-type]


def test_unknown_keyword_in_mapping(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match='invalid connection option "colour"'):
        resolve_pg({"colour": "blue"}, env)


def test_unsupported_libpq_version(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="libpq_version=14"):
        resolve_pg(None, env, libpq_version=14)


def test_keywords_follow_the_version(env: dict[str, str]) -> None:
    assert resolve_pg("load_balance_hosts=random", env, libpq_version=16).options == {
        "load_balance_hosts": "random"
    }
    with pytest.raises(ConfigError, match="load_balance_hosts"):
        resolve_pg("load_balance_hosts=random", env, libpq_version=15)
    with pytest.raises(ConfigError, match="sslnegotiation"):
        resolve_pg("sslnegotiation=direct", env, libpq_version=16)
    with pytest.raises(ConfigError, match='weak sslmode "prefer"'):
        resolve_pg("sslnegotiation=direct", env, libpq_version=17)


def test_sslrootcert_system_strengthens_the_default_sslmode(env: dict[str, str]) -> None:
    result = resolve_pg("sslrootcert=system", env)
    assert result.options["sslmode"] == "verify-full"
    assert result.sources["sslmode"] == "default (sslrootcert=system)"
    with pytest.raises(ConfigError, match="weak sslmode"):
        resolve_pg("sslrootcert=system sslmode=require", env)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("password,!md5", "cannot be mixed"),
        ("!md5,password", "cannot be mixed"),
        ("md5,md5", "more than once"),
        ("kerberos", "invalid require_auth value"),
    ],
)
def test_require_auth_validation(env: dict[str, str], value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_pg({"require_auth": value}, env)


def test_home_argument_overrides_HOME(env: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    (other / ".pgpass").write_text("*:*:*:*:fromother\n")
    (other / ".pgpass").chmod(0o600)
    result = resolve_pg("host=h", env, home=str(other))
    assert result.password is not None
    assert result.password.get_secret_value() == "fromother"
    assert result.sources["password"] == f".pgpass {other}/.pgpass line 1"


def test_repr_masks_every_secret(env: dict[str, str]) -> None:
    result = resolve_pg(
        "postgresql://alice:hunter2@db/app?sslpassword=keypass&application_name=x", env
    )
    text = repr(result)
    assert "hunter2" not in text and "keypass" not in text
    assert "SecretStr('**********')" in text
    assert "'sslpassword': '**********'" in text
    assert "'application_name': 'x'" in text
    assert str(result) == text
    assert result.options["sslpassword"] == "keypass"


@pytest.mark.parametrize(
    "conninfo",
    [
        "postgresql://alice:hunter2@[::1/db",
        "postgresql://alice:hunter2@[]/db",
        "postgresql://alice:hunter2@[::1]x/db",
        "postgresql://alice:hun%zzter2@db/app",
        "postgresql://alice:hunter2@db/app?hunter2",
        "postgresql://alice:hunter2@db/app?password=hunter2=x",
        "postgresql://alice:hunter2@db/app?hunter2=x",
        "postgresql://alice:hunter2@db/a%00pp",
        "user=alice password='hunter2",
        "user=alice hunter2",
        "password=hunter2 sslmode=bogus",
        "password=hunter2 port=hunter2",
    ],
)
def test_error_messages_never_show_the_password(env: dict[str, str], conninfo: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_pg(conninfo, env)
    assert "hunter2" not in str(caught.value)
    assert "hun" not in str(caught.value).replace("hunter", "")


def test_error_messages_name_the_fix(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=r"%25"):
        resolve_pg("postgresql://h/%zz", env)
    with pytest.raises(ConfigError, match=r'definition of service "x" not found.*add a'):
        resolve_pg("service=x", env)
    with pytest.raises(ConfigError, match="give as many host names"):
        resolve_pg("host=a,b hostaddr=1.2.3.4", env)


def test_unreadable_service_file_is_a_credentials_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    loop_a, loop_b = tmp_path / "loop-a", tmp_path / "loop-b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(CredentialsError, match="could not be read"):
        resolve_pg("service=s", {**env, "PGSERVICEFILE": str(loop_a)})


def test_ldap_service_lines_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    service_file = tmp_path / "svc"
    service_file.write_text("[s]\nldap://ldap.example/dc=x?y\n")
    with pytest.raises(ConfigError, match="LDAP"):
        resolve_pg("service=s", {**env, "PGSERVICEFILE": str(service_file)})


def test_service_line_too_long(env: dict[str, str], tmp_path: Path) -> None:
    service_file = tmp_path / "svc"
    service_file.write_text("[s]\nuser=" + "u" * 1100 + "\n")
    with pytest.raises(ConfigError, match="line 2 too long"):
        resolve_pg("service=s", {**env, "PGSERVICEFILE": str(service_file)})


def test_parse_conninfo_is_explicit_only() -> None:
    assert parse_conninfo("postgresql://u@h/d?requiressl=1", libpq_version=15) == {
        "user": "u",
        "host": "h",
        "dbname": "d",
        "sslmode": "require",
    }


def test_resolved_pg_is_exported_type(env: dict[str, str]) -> None:
    assert isinstance(resolve_pg(None, env), ResolvedPg)
