"""Errors name the database and the fix, and never carry the password."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import dbwire
from dbwire import ConnectError, Database, DatabaseConfig, MissingDependencyError

CANARY = "Canary-hunter2-7f3a9c"


def _everything_printed(exc: BaseException) -> str:
    """str, repr and the whole formatted chain: what a user or a log could ever see."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def _with_wrong_password(url: str) -> str:
    return make_url(url).set(password=CANARY).render_as_string(hide_password=False)


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_refused_login_names_user_and_fix_without_the_password(
    request: pytest.FixtureRequest, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = request.getfixturevalue("pg_url" if scheme == "postgresql" else "mysql_url")
    url = _with_wrong_password(url).replace("mysql://", "mariadb://", 1)
    db = Database(DatabaseConfig(name="refused", url=url, echo=True))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(ConnectError) as sync_info, db.connect() as conn:
            conn.execute(text("SELECT 1"))

        async def attempt() -> None:
            async with db.async_connect() as conn:
                await conn.execute(text("SELECT 1"))

        with pytest.raises(ConnectError) as async_info:
            asyncio.run(attempt())
    finally:
        db.close()
    for info in (sync_info, async_info):
        message = str(info.value)
        assert "'refused'" in message
        assert "dbwire" in message  # the user that was refused
        assert "check the password" in message
        assert info.value.database == "refused"
        assert CANARY not in _everything_printed(info.value)
    assert CANARY not in repr(db)
    assert CANARY not in caplog.text


def test_unreachable_server_says_what_to_check(tmp_path: Path) -> None:
    from servers import free_port

    port = free_port()
    db = Database(DatabaseConfig(name="nowhere", url=f"postgresql://u:{CANARY}@127.0.0.1:{port}/x"))
    with pytest.raises(ConnectError, match=r"'nowhere'.*server is running") as info:
        db.execute_query("SELECT 1")
    assert CANARY not in _everything_printed(info.value)
    db.close()


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(dbwire.UnknownBackendError) as info:
        dbwire.connect(f"oracle://scott:{CANARY}@db/orcl").engine  # noqa: B018
    message = str(info.value)
    for known in ("postgresql", "mysql", "mariadb", "sqlite", "duckdb"):
        assert known in message
    assert "dbwire.backends" in message
    assert CANARY not in _everything_printed(info.value)


@pytest.mark.parametrize(
    ("url", "module", "extra", "is_async"),
    [
        ("postgresql://u@h/d", "psycopg", "postgres", False),
        ("postgresql://u@h/d", "asyncpg", "postgres", True),
        ("mysql://u@h/d", "pymysql", "mysql", False),
        ("mariadb://u@h/d", "aiomysql", "mysql", True),
        ("sqlite://", "aiosqlite", "sqlite", True),
        ("duckdb://", "duckdb_engine", "duckdb", False),
    ],
)
def test_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, extra: str, is_async: bool
) -> None:
    # None in sys.modules makes `import module` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, module, None)
    url = url.replace("://u@", f"://u:{CANARY}@")
    db = Database(DatabaseConfig(name="nodriver", url=url))
    with pytest.raises(MissingDependencyError) as info:
        _ = db.async_engine if is_async else db.engine
    assert f"pip install 'dbwire[{extra}]'" in str(info.value)
    assert "'nodriver'" in str(info.value)
    assert CANARY not in _everything_printed(info.value)
    db.close()


def test_malformed_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(dbwire.ConfigError) as info:
        dbwire.connect(f"postgresql://u:{CANARY}@host:notaport/db").engine  # noqa: B018
    assert CANARY not in _everything_printed(info.value)
