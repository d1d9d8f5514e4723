"""execute_query and async_execute_query share one fast path: the statement alone, in autocommit.

Seen from the driver: asyncpg's query logger records every statement sent with
Connection.execute (BEGIN, COMMIT) but not the prepared statements that carry queries.
Core's path sends BEGIN, the statement and COMMIT; the fast path sends the statement only,
with the same read-only guard, counters and error translation.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from dbwire import Database, DatabaseConfig
from dbwire.errors import ReadOnlyError


def _asyncpg_log(db: Database) -> list[str]:
    sent: list[str] = []

    @event.listens_for(db.async_engine.sync_engine, "connect")
    def _log(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(lambda r: sent.append(r.query))

    return sent


async def test_async_execute_query_sends_only_the_statement_on_asyncpg(pg_url: str) -> None:
    db = Database(DatabaseConfig(name="fast_async", url=pg_url))
    try:
        sent = _asyncpg_log(db)
        assert await db.async_execute_query("SELECT 1 AS one") == (["one"], [{"one": 1}])
        sent.clear()
        columns, rows = await db.async_execute_query("SELECT CAST(:x AS int) AS x", {"x": 5})
        assert (columns, rows) == (["x"], [{"x": 5}])
        assert sent == []  # no BEGIN, no COMMIT: the statement alone
        # An empty result still names its columns, as the sync path does.
        assert await db.async_execute_query("SELECT 1 AS a WHERE false") == (["a"], [])
        # Core's path, for comparison: what the fast path saves.
        db._direct_queries[True] = False
        sent.clear()
        await db.async_execute_query("SELECT 2 AS two")
        assert sent == ["BEGIN;", "COMMIT;"]
        db._direct_queries[True] = True
        queries = db.get_stats().queries
        # A write in autocommit is committed at once: another connection sees it.
        await db.async_execute_query("CREATE TABLE IF NOT EXISTS fast_async_t (v int)")
        await db.async_execute_query("INSERT INTO fast_async_t VALUES (:v)", {"v": 7})
        assert db.execute_query("SELECT v FROM fast_async_t")[1] == [{"v": 7}]
        assert db.get_stats().queries >= queries + 2
        with pytest.raises(sa_exc.ProgrammingError) as raised:
            await db.async_execute_query("SELECT * FROM fast_async_missing")
        assert "fast_async_missing" in str(raised.value)
        await db.async_execute_query("DROP TABLE fast_async_t")
    finally:
        await db.aclose()


async def test_async_fast_path_keeps_readonly_in_both_layers(pg_url: str) -> None:
    writer = Database(DatabaseConfig(name="fast_rw", url=pg_url))
    try:
        writer.execute_query("CREATE SEQUENCE IF NOT EXISTS fast_ro_seq")
    finally:
        writer.close()
    db = Database(DatabaseConfig(name="fast_ro", url=pg_url, readonly=True))
    try:
        sent = _asyncpg_log(db)
        assert await db.async_execute_query("SELECT 3 AS three") == (["three"], [{"three": 3}])
        # The guard refuses before anything reaches the server ...
        sent.clear()
        with pytest.raises(ReadOnlyError, match="CREATE"):
            await db.async_execute_query("CREATE TABLE fast_ro_t (v int)")
        assert sent == []
        # ... and the server's read-only default holds in autocommit (layer 1): a write
        # the guard lets through as a read is refused by PostgreSQL itself.
        with pytest.raises(ReadOnlyError, match="refused a write: the session or database"):
            await db.async_execute_query("SELECT nextval('fast_ro_seq')")
    finally:
        await db.aclose()
        writer = Database(DatabaseConfig(name="fast_rw", url=pg_url))
        try:
            writer.execute_query("DROP SEQUENCE fast_ro_seq")
        finally:
            writer.close()
