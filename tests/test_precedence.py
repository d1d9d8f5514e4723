"""Configuration precedence is one ordered tuple of sources: the first that sets a field wins."""

from __future__ import annotations

from typing import Any

import pytest

import dbwire
from dbwire import DatabaseConfig, load_config
from dbwire.config import DATABASE_SOURCES, Sourced, first_wins

FILE = {"databases": {"main": {"url": "sqlite://", "env_prefix": "APP", "pool_size": 1}}}
ALL_ENV = {"APP_POOL_SIZE": "2", "DBWIRE_MAIN__POOL_SIZE": "3"}


def test_the_tuple_reads_from_the_top() -> None:
    assert DATABASE_SOURCES[0] == "argument" and DATABASE_SOURCES[-1] == "default"
    merged = first_wins(
        ({"a": Sourced(1, "top")}, {"a": Sourced(2, "low"), "b": Sourced(3, "low")})
    )
    assert merged == {"a": Sourced(1, "top"), "b": Sourced(3, "low")}


def _resolved(environ: dict[str, str], **arguments: Any) -> DatabaseConfig:
    db = dbwire.connect("main", config=FILE, environ=environ, **arguments)
    try:
        return db.config
    finally:
        db.close()


@pytest.mark.parametrize(
    ("environ", "arguments", "value", "source"),
    [
        (ALL_ENV, {"pool_size": 4}, 4, "argument"),  # argument over DBWIRE_ env
        (ALL_ENV, {}, 3, "env DBWIRE_MAIN__POOL_SIZE"),  # DBWIRE_ env over env_prefix
        ({"APP_POOL_SIZE": "2"}, {}, 2, "env APP_POOL_SIZE"),  # env_prefix over the file
        ({}, {}, 1, "config dict"),  # the file over the default
    ],
    ids=["argument>dbwire-env", "dbwire-env>prefix-env", "prefix-env>file", "file>default"],
)
def test_each_adjacent_pair(
    environ: dict[str, str], arguments: dict[str, Any], value: int, source: str
) -> None:
    config = _resolved(environ, **arguments)
    assert config.pool_size == value
    assert config.field_source("pool_size") == source
    assert config.field_source("echo") == "default"  # set by nobody


def test_a_secret_keeps_its_source_and_stays_masked() -> None:
    environ = {"DBWIRE_MAIN__URL": "postgresql://app:prec-hunter2@db.example/app"}
    config = load_config(FILE, environ=environ).database("main")
    assert config.field_source("url") == "env DBWIRE_MAIN__URL"
    assert "prec-hunter2" not in config.url and "prec-hunter2" not in repr(config)
    assert "prec-hunter2" in (config.url_with_password() or "")
    # An argument over it still keeps the password of the source it came from.
    overridden = config.with_overrides(pool_size=9)
    assert overridden.field_source("url") == "env DBWIRE_MAIN__URL"
    assert overridden.field_source("pool_size") == "argument"
    assert "prec-hunter2" in (overridden.url_with_password() or "")


def test_store_settings_use_the_same_order() -> None:
    from dbwire.store.local import _settings_sources

    environ = {"DBWIRE_DUCKDB_THREADS": "2", "DBWIRE_DUCKDB_MEMORY_LIMIT": ""}
    chosen = _settings_sources({"threads": 3, "memory_limit": None}, environ)
    assert chosen["threads"] == Sourced(3, "argument")
    assert "memory_limit" not in chosen  # empty variable: unset, the default applies
    chosen = _settings_sources({"threads": None}, environ)
    assert chosen["threads"] == Sourced("2", "env DBWIRE_DUCKDB_THREADS")
