"""create_database / database_exists / drop_database on real servers, sync and async,
with names that try to break out of their identifier."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from dbwire import ConfigError, Database, DatabaseConfig


def _pg_databases(pg_url: str) -> set[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _my_databases(admin_url: str) -> set[str]:
    url = make_url(admin_url)
    conn = pymysql.connect(
        host=url.host, port=url.port, user=url.username, password=url.password or ""
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW DATABASES")
            return {row[0] for row in cursor.fetchall()}
    finally:
        conn.close()


def _on(url: Any, database: str) -> Database:
    return Database(
        DatabaseConfig(
            name="lifecycle",
            backend=url.get_backend_name(),
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=database,
        )
    )


@pytest.mark.parametrize(
    "name", [f"plain_{uuid.uuid4().hex[:6]}", 'x"; DROP DATABASE postgres; --', "Mixed Case-1"]
)
def test_postgres_create_exists_drop_with_hostile_names(pg_url: str, name: str) -> None:
    before = _pg_databases(pg_url)
    db = _on(make_url(pg_url), name)
    try:
        assert db.database_exists() is False
        assert db.create_database() is True
        assert db.create_database() is False  # already there: nothing happens
        assert db.database_exists() is True
        # Created literally, under exactly that name, and nothing else changed.
        assert _pg_databases(pg_url) == before | {name}
        assert db.execute_query("SELECT current_database() AS d")[1] == [{"d": name}]
        assert db.drop_database() is True
        assert db.drop_database() is False
        assert db.database_exists() is False
    finally:
        db.close()
    after = _pg_databases(pg_url)
    assert after == before and "postgres" in after


@pytest.mark.parametrize(
    "name", [f"plain_{uuid.uuid4().hex[:6]}", "x`; DROP DATABASE mysql; --", 'q"`\\`x']
)
def test_mariadb_create_exists_drop_with_hostile_names(mysql_server: Any, name: str) -> None:
    before = _my_databases(mysql_server.admin_url)
    db = _on(make_url(mysql_server.admin_url), name)
    try:
        assert db.database_exists() is False
        assert db.create_database() is True
        assert db.create_database() is False
        assert db.database_exists() is True
        assert _my_databases(mysql_server.admin_url) == before | {name}
        assert db.drop_database() is True
        assert db.drop_database() is False
    finally:
        db.close()
    after = _my_databases(mysql_server.admin_url)
    assert after == before and "mysql" in after


def test_async_twins_on_postgres(pg_url: str) -> None:
    name = f"async_{uuid.uuid4().hex[:6]}"
    db = _on(make_url(pg_url), name)

    async def scenario() -> list[bool]:
        return [
            await db.async_database_exists(),
            await db.async_create_database(),
            await db.async_database_exists(),
            await db.async_drop_database(),
            await db.async_database_exists(),
        ]

    try:
        assert asyncio.run(scenario()) == [False, True, True, True, False]
    finally:
        db.close()
    assert name not in _pg_databases(pg_url)


def test_embedded_backends_refuse_server_only_actions(tmp_path: Any) -> None:
    db = Database(DatabaseConfig(name="lite", url=f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        with pytest.raises(ConfigError, match=r"'lite'.*drop_database\(\).*sqlite"):
            db.drop_database()
        with pytest.raises(ConfigError, match=r"database_exists\(\)"):
            db.database_exists()
    finally:
        db.close()
