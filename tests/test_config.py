"""load_config(): every source, the precedence between them, and errors that say what to fix."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbwire
from dbwire import ConfigError, load_config
from dbwire.config import DatabaseConfig


@pytest.fixture(autouse=True)
def _clean_cwd(tmp_path: Path) -> Iterator[None]:
    """Run in an empty directory so no dbwire.toml or pyproject.toml of the repo is found."""
    previous = Path.cwd()
    os.chdir(tmp_path)
    yield
    os.chdir(previous)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- where the configuration is found -------------------------------------------------------


def test_explicit_path_wins_over_dbwire_config(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.toml", '[databases.a]\nurl = "sqlite://"\n')
    b = _write(tmp_path / "b.toml", '[databases.b]\nurl = "sqlite://"\n')
    config = load_config(a, environ={"DBWIRE_CONFIG": str(b)})
    assert list(config.databases) == ["a"]
    assert config.source == str(a)


def test_dbwire_config_wins_over_cwd_file(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.cwd]\nurl = "sqlite://"\n')
    other = _write(tmp_path / "other.toml", '[databases.env]\nurl = "sqlite://"\n')
    assert list(load_config(environ={"DBWIRE_CONFIG": str(other)}).databases) == ["env"]
    assert list(load_config(environ={}).databases) == ["cwd"]


def test_dbwire_toml_wins_over_pyproject(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[tool.dbwire.databases.py]\nurl = "sqlite://"\n')
    assert list(load_config(environ={}).databases) == ["py"]
    _write(tmp_path / "dbwire.toml", '[databases.toml]\nurl = "sqlite://"\n')
    assert list(load_config(environ={}).databases) == ["toml"]


def test_pyproject_without_tool_dbwire_is_empty(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert load_config(environ={}).databases == {}


def test_dict_and_seed_003_dbs_shape() -> None:
    seed = {"dbs": {"primary": {"url": "postgresql://u:p@h/db", "readonly": False}}}
    config = load_config(seed, environ={})
    assert config.databases["primary"].url_with_password() == "postgresql://u:p@h/db"
    assert config.databases["primary"].url == "postgresql://u:***@h/db"
    manager_shape = {"databases": {"x": {"url": "sqlite://", "pool_size": 3}}}
    assert load_config(manager_shape, environ={}).databases["x"].pool_size == 3


def test_database_url_alone_is_default() -> None:
    config = load_config(environ={"DATABASE_URL": "postgresql://app@db/app"})
    assert config.databases["default"].url == "postgresql://app@db/app"
    assert config.databases["default"].field_source("url") == "env DATABASE_URL"


def test_database_url_does_not_replace_a_configured_default(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.default]\nurl = "sqlite://"\n')
    config = load_config(environ={"DATABASE_URL": "postgresql://app@db/app"})
    assert config.databases["default"].url == "sqlite://"


# -- precedence ----------------------------------------------------------------------------


def test_precedence_env_over_file(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.primary]\nurl = "sqlite://"\npool_size = 2\n')
    config = load_config(environ={"DBWIRE_PRIMARY__POOL_SIZE": "10"})
    primary = config.databases["primary"]
    assert primary.pool_size == 10
    assert primary.field_source("pool_size") == "env DBWIRE_PRIMARY__POOL_SIZE"
    assert primary.field_source("url") == f"{tmp_path / 'dbwire.toml'}:2"


def test_precedence_args_over_env(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.primary]\nurl = "sqlite://"\n')
    db = dbwire.connect("primary", environ={"DBWIRE_PRIMARY__POOL_SIZE": "10"}, pool_size=4)
    try:
        assert db.config.pool_size == 4
        assert db.config.field_source("pool_size") == "argument"
    finally:
        db.close()


def test_precedence_file_over_defaults(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.p]\nurl = "sqlite://"\nhealth_timeout = 2\n')
    p = load_config(environ={}).databases["p"]
    assert p.health_timeout == 2
    assert p.field_source("slow_query_ms") == "default"


def test_dbwire_prefix_wins_over_env_prefix() -> None:
    environ = {"PROJECT_DB_HOST": "from-prefix", "DBWIRE_MAIN__HOST": "from-dbwire"}
    config = load_config(
        {"databases": {"main": {"backend": "postgresql", "env_prefix": "PROJECT_DB"}}},
        environ=environ,
    )
    assert config.databases["main"].host == "from-dbwire"


def test_seed_001_env_prefix() -> None:
    environ = {
        "PROJECT_DB_HOST": "127.0.0.1",
        "PROJECT_DB_PORT": "6543",
        "PROJECT_DB_USER": "your_user",
        "PROJECT_DB_DATABASE": "your_db",
        "PROJECT_DB_PASSWORD": "",  # empty -> use ~/.pgpass
        "PROJECT_DB_PGPASS": "/secrets/pgpass",
        "PROJECT_DB_UNRELATED": "ignored",
    }
    config = load_config(
        {"databases": {"main": {"backend": "postgresql", "env_prefix": "PROJECT_DB"}}},
        environ=environ,
    )
    main = config.databases["main"]
    assert (main.host, main.port, main.user, main.database) == (
        "127.0.0.1",
        6543,
        "your_user",
        "your_db",
    )
    assert main.password is None
    assert main.passfile == "/secrets/pgpass"
    assert main.field_source("port") == "env PROJECT_DB_PORT"


# -- interpolation ------------------------------------------------------------------------


def test_interpolation_with_and_without_default(tmp_path: Path) -> None:
    _write(
        tmp_path / "dbwire.toml",
        '[databases.a]\nurl = "postgresql://${DB_USER}@${DB_HOST:-localhost}/app"\n',
    )
    config = load_config(environ={"DB_USER": "svc"})
    assert config.databases["a"].url == "postgresql://svc@localhost/app"


def test_missing_interpolation_variable_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.a]\nurl = "postgresql://${DB_USER}@h/app"\n')
    with pytest.raises(ConfigError, match=r"'DB_USER' is not set.*\$\{DB_USER:-default\}"):
        load_config(environ={})


# -- errors ---------------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.a]\nurl = "sqlite://"\npool_sise = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(environ={})
    message = str(info.value)
    assert "dbwire.toml" in message and "'a'" in message
    assert "pool_sise" in message and "did you mean 'pool_size'" in message


def test_bad_value_names_file_database_field_and_allowed(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.a]\nurl = "sqlite://"\npool_size = "many"\n')
    with pytest.raises(ConfigError) as info:
        load_config(environ={})
    message = str(info.value)
    assert "dbwire.toml" in message and "'a'" in message and "'pool_size'" in message
    assert "valid integer" in message


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.primary]\nurl = "sqlite://"\n')
    with pytest.raises(ConfigError, match="DBWIRE_PRIMARY__POOL_SIZE='ten' is not a valid int"):
        load_config(environ={"DBWIRE_PRIMARY__POOL_SIZE": "ten"})


def test_unknown_env_field_suggests(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.primary]\nurl = "sqlite://"\n')
    with pytest.raises(ConfigError, match="did you mean 'pool_size'"):
        load_config(environ={"DBWIRE_PRIMARY__POOL_SIZ": "3"})


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    _write(tmp_path / "dbwire.toml", '[databases.a]\nurl = "sqlite://"\npool_size = = 3\n')
    with pytest.raises(ConfigError, match=r"dbwire.toml.*line 3, column \d+"):
        load_config(environ={})


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("nope.toml", environ={})


def test_unknown_database_lists_known() -> None:
    config = load_config({"databases": {"alpha": {"url": "sqlite://"}}}, environ={})
    with pytest.raises(dbwire.UnknownDatabaseError, match=r"'alpah'.*did you mean 'alpha'"):
        config.database("alpah")


def test_secret_never_in_config_errors_or_repr() -> None:
    secret = "Sup3r-Secret-Canary"
    config = load_config(
        {"databases": {"a": {"url": f"postgresql://u:{secret}@h/db", "password": secret}}},
        environ={},
    )
    assert secret not in repr(config) and secret not in str(config.databases["a"])
    with pytest.raises(ConfigError) as info:
        load_config(
            {"databases": {"a": {"url": f"postgresql://u:{secret}@h/db", "pool_size": "x"}}},
            environ={},
        )
    assert secret not in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config({"databases": {"a": {"password": ["not", secret]}}}, environ={})
    assert secret not in str(info.value)


def test_escaped_dollar_is_interpolated(tmp_path: Path) -> None:
    # A file may write "$" as a TOML escape: ${VAR} must still expand there.
    (tmp_path / "dbwire.toml").write_text(
        '[databases.main]\nurl = "postgresql://app@\\u0024{DB_HOST}/app"\n', encoding="utf-8"
    )
    config = load_config(tmp_path / "dbwire.toml", {"DB_HOST": "db.example"})
    assert config.databases["main"].url == "postgresql://app@db.example/app"


def test_private_attributes_set_however_the_model_is_made() -> None:
    made = [
        DatabaseConfig(url="postgresql://app:pw-x1@h/app"),
        DatabaseConfig.model_construct(url="sqlite://"),
        DatabaseConfig(url="sqlite://").model_copy(),
    ]
    for config in made:
        assert set(config.__pydantic_private__ or {}) == set(DatabaseConfig.__private_attributes__)
    assert made[0].url_with_password() == "postgresql://app:pw-x1@h/app"
    assert "pw-x1" not in repr(made[0])
