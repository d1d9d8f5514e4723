"""pooler = "pgbouncer": psycopg and asyncpg through a real PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

import dbwire
from dbwire import ConfigError, Database
from servers.pgbouncer import PgBouncerServer

# Parameters, repeated: psycopg prepares a statement run 5 times on one connection,
# SQLAlchemy's asyncpg dialect prepares every statement (named, cached).
STATEMENTS = [
    (text("SELECT CAST(:n AS integer) + 1 AS v"), "n"),
    (text("SELECT length(CAST(:s AS text)) AS v"), "s"),
    (text("SELECT CAST(:n AS integer) * 2 AS v"), "n"),
]
PREPARED = "prepared statement"


def _connect(bouncer: PgBouncerServer, name: str, **fields: Any) -> Database:
    return dbwire.connect(bouncer.url, name=name, **fields)


def _one_sync_session(db: Database, i: int) -> str | None:
    try:
        with db.session() as s:
            for round_ in range(3):
                for statement, key in STATEMENTS:
                    value: Any = i + round_ if key == "n" else "x" * (i % 7)
                    s.execute(statement, {key: value}).scalar_one()
    except Exception as exc:  # collected: the test counts them by kind
        return str(exc).splitlines()[0]
    return None


def _sync_load(db: Database, sessions: int = 200) -> list[str]:
    with ThreadPoolExecutor(max_workers=30) as run:
        found = list(run.map(lambda i: _one_sync_session(db, i), range(sessions)))
    return [e for e in found if e is not None]


async def _async_load(db: Database, sessions: int = 200) -> list[str]:
    async def one(i: int) -> str | None:
        try:
            async with db.async_session() as s:
                for round_ in range(3):
                    for statement, key in STATEMENTS:
                        value: Any = i + round_ if key == "n" else "x" * (i % 7)
                        (await s.execute(statement, {key: value})).scalar_one()
        except Exception as exc:
            return str(exc).splitlines()[0]
        return None

    try:
        found = await asyncio.gather(*(one(i) for i in range(sessions)))
    finally:
        await db.aclose()
    return [e for e in found if e is not None]


def test_threaded_psycopg_sessions_need_the_setting(pgbouncer: PgBouncerServer) -> None:
    plain = _connect(pgbouncer, "bouncer_sync_plain")
    try:
        errors = _sync_load(plain)
    finally:
        plain.close()
    # Without pooler = "pgbouncer": psycopg's prepared statements meet other servers.
    assert any(PREPARED in e for e in errors), errors[:3]

    safe = _connect(pgbouncer, "bouncer_sync_safe", pooler="pgbouncer")
    try:
        assert _sync_load(safe) == []
    finally:
        safe.close()


def test_concurrent_asyncpg_sessions_need_the_setting(pgbouncer: PgBouncerServer) -> None:
    plain = _connect(pgbouncer, "bouncer_async_plain")
    errors = asyncio.run(_async_load(plain))
    plain.close()
    assert any(PREPARED in e for e in errors), errors[:3]

    safe = _connect(pgbouncer, "bouncer_async_safe", pooler="pgbouncer")
    try:
        assert asyncio.run(_async_load(safe)) == []
    finally:
        safe.close()


def test_fast_path_health_and_readonly_sessions_are_safe(pgbouncer: PgBouncerServer) -> None:
    db = _connect(pgbouncer, "bouncer_misc", pooler="pgbouncer")
    try:
        for i in range(40):  # execute_query's autocommit path, same statement repeated
            assert db.execute_query("SELECT CAST(:n AS integer) AS v", {"n": i})[1] == [{"v": i}]
        for _ in range(10):
            assert db.health_check().healthy
            with db.session(readonly=True) as s:
                assert s.execute(text("SHOW transaction_read_only")).scalar() == "on"
        with pytest.raises(dbwire.ReadOnlyError), db.session(readonly=True) as s:
            s.execute(text("CREATE TABLE pooled_nope (x int)"))

        async def main() -> list[Any]:
            try:
                found = [(await db.async_health_check()).healthy]
                for i in range(40):
                    found.append(
                        (await db.async_execute_query("SELECT CAST(:n AS integer) AS v", {"n": i}))[
                            1
                        ][0]["v"]
                    )
                return found
            finally:
                await db.aclose()

        assert asyncio.run(main()) == [True, *range(40)]
    finally:
        db.close()


def test_readonly_database_behind_pgbouncer_is_read_only_per_transaction(
    pgbouncer: PgBouncerServer,
) -> None:
    # The login setting (default_transaction_read_only) is a startup parameter PgBouncer
    # refuses: without the pooler setting a readonly database cannot even log in.
    plain = _connect(pgbouncer, "bouncer_ro_plain", readonly=True)
    try:
        with pytest.raises(dbwire.ConnectError):
            plain.execute_query("SELECT 1")
    finally:
        plain.close()
    db = _connect(pgbouncer, "bouncer_ro", readonly=True, pooler="pgbouncer")
    try:
        assert db.execute_query("SHOW transaction_read_only")[1] == [
            {"transaction_read_only": "on"}
        ]
        with db.session() as s:
            assert s.execute(text("SHOW transaction_read_only")).scalar() == "on"
        with pytest.raises(dbwire.ReadOnlyError):
            db.execute_query("CREATE TABLE pooled_ro_nope (x int)")
    finally:
        db.close()


def test_null_pool_leaves_pooling_to_pgbouncer(pgbouncer: PgBouncerServer) -> None:
    db = _connect(pgbouncer, "bouncer_null", pooler="pgbouncer", pooler_pool="null")
    try:
        assert _sync_load(db, sessions=60) == []
        status = db.get_pool_status()
        assert status.pool_class == "DbwireNullPool"
        assert (status.size, status.checked_out) == (None, None)  # NullPool keeps no count
        assert db.health_check().healthy
        assert contextvars.copy_context().run(lambda: asyncio.run(_async_load(db, 60))) == []
    finally:
        db.close()


def test_misspelled_pooler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'pgbouncer'\?"):
        dbwire.connect("postgresql://a@h/d", pooler="pgbouncr", name="typo")
    with pytest.raises(ConfigError, match="pooler_pool"):
        dbwire.connect("postgresql://a@h/d", pooler_pool="none", name="typo2")
    with pytest.raises(ConfigError, match="pool_min_size"):
        dbwire.connect(
            "postgresql://a@h/d", pooler="pgbouncer", pooler_pool="null", pool_min_size=2, name="mn"
        )
