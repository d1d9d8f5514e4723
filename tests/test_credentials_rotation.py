"""Credentials are resolved per physical connection: rotation works without a new engine."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from dbwire import ConnectError, Database, DatabaseConfig

CANARY = "Canary-rotate-5d1e"


@pytest.fixture
def role(pg_server: Any, pg_url: str) -> Iterator[str]:
    """A login role of its own, so changing its password disturbs no other test."""
    name = f"rot_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}-1'")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {pg_server.database} TO {name}")
    yield name
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}'"
    )
    pg_server.run_sql_admin(f"REVOKE CONNECT ON DATABASE {pg_server.database} FROM {name}")
    pg_server.run_sql_admin(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture(autouse=True)
def _no_libpq_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("PG"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))  # never read the developer's ~/.pgpass


def _pgpass(path: Path, server: Any, user: str, password: str) -> None:
    path.write_text(f"# rotated\n{server.host}:{server.port}:*:{user}:{password}\n")
    path.chmod(0o600)


def _whoami(db: Database) -> str:
    with db.connect() as conn:
        return str(conn.execute(text("SELECT current_user")).scalar_one())


async def _whoami_async(db: Database) -> str:
    async with db.async_connect() as conn:
        return str((await conn.execute(text("SELECT current_user"))).scalar_one())


def _config(server: Any, user: str, **fields: Any) -> DatabaseConfig:
    url = f"postgresql://{user}@{server.host}:{server.port}/{server.database}"
    return DatabaseConfig(name="rotating", url=url, **fields)


def test_pgpass_rotation_reaches_the_next_new_connection(
    pg_server: Any, role: str, tmp_path: Path
) -> None:
    passfile = tmp_path / "pgpass"
    _pgpass(passfile, pg_server, role, f"{CANARY}-1")
    db = Database(_config(pg_server, role, passfile=str(passfile)))
    try:
        assert _whoami(db) == role
        assert asyncio.run(_whoami_async(db)) == role
        held = db.engine.connect()  # keep one pooled connection busy: the next one is new
        held.execute(text("SELECT 1"))
        pg_server.run_sql_admin(f"ALTER ROLE {role} PASSWORD '{CANARY}-2'")
        _pgpass(passfile, pg_server, role, f"{CANARY}-2")
        engine = db.engine
        assert _whoami(db) == role  # a new physical connection, same engine
        assert asyncio.run(_whoami_async(db)) == role  # asyncpg: the same .pgpass line
        assert db.engine is engine
        assert db.connect_params().sources["password"] == f".pgpass {passfile} line 2"
        held.close()
    finally:
        db.close()


def test_password_file_is_reread_for_each_new_connection(
    pg_server: Any, role: str, tmp_path: Path
) -> None:
    secret = tmp_path / "db_password"
    secret.write_text(f"{CANARY}-1\n")
    db = Database(_config(pg_server, role, password_file=str(secret), pool_size=1))
    try:
        assert _whoami(db) == role
        pg_server.run_sql_admin(f"ALTER ROLE {role} PASSWORD '{CANARY}-2'")
        secret.write_text(f"{CANARY}-2\n")
        with db.engine.connect() as first, db.engine.connect() as second:  # overflow: new
            for conn in (first, second):
                assert conn.execute(text("SELECT current_user")).scalar_one() == role
    finally:
        db.close()


def test_password_command_output_is_cached_for_its_ttl(
    pg_server: Any, role: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "token"
    secret.write_text(f"{CANARY}-1")
    command = [sys.executable, "-c", f"print(open({str(secret)!r}).read())"]
    ttl = 2.0
    db = Database(
        _config(pg_server, role, password_command=command, password_command_ttl=ttl, echo=True)
    )
    caplog.set_level(logging.DEBUG)
    try:
        assert _whoami(db) == role
        started = time.monotonic()
        pg_server.run_sql_admin(f"ALTER ROLE {role} PASSWORD '{CANARY}-2'")
        secret.write_text(f"{CANARY}-2")
        db.engine.dispose()  # every connection from now on is new
        with pytest.raises(ConnectError) as info:
            _whoami(db)  # still inside the TTL: the cached, now wrong, token
        assert time.monotonic() - started < ttl, "the machine was too slow to see the cache"
        assert CANARY not in str(info.value)
        time.sleep(max(0.0, ttl - (time.monotonic() - started)) + 0.2)
        assert _whoami(db) == role  # TTL passed: the command ran again
    finally:
        db.close()
    assert CANARY not in caplog.text
