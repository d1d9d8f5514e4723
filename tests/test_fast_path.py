"""execute_query and async_execute_query share one fast path: the statement alone, in autocommit.

Seen from the driver: asyncpg's query logger records every statement sent with
Connection.execute (BEGIN, COMMIT) but not the prepared statements that carry queries.
Core's path sends BEGIN, the statement and COMMIT; the fast path sends the statement only,
with the same read-only guard, counters and error translation.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc

from dbwire import Database, DatabaseConfig
from dbwire.errors import DatabaseClosedError, ReadOnlyError


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
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers with loop.call_soon
        sent.clear()
        columns, rows = await db.async_execute_query("SELECT CAST(:x AS int) AS x", {"x": 5})
        assert (columns, rows) == (["x"], [{"x": 5}])
        await asyncio.sleep(0.05)
        # asyncpg's own fetch, which its logger sees: no BEGIN, no COMMIT, the statement alone.
        assert sent == ["SELECT CAST($1 AS int) AS x"]
        # An empty result still names its columns, as the sync path does.
        assert await db.async_execute_query("SELECT 1 AS a WHERE false") == (["a"], [])
        # Core's path, for comparison: what the fast path saves.
        db._direct_queries[True] = False
        sent.clear()
        await db.async_execute_query("SELECT 2 AS two")
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers with loop.call_soon
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
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers with loop.call_soon
        # The guard refuses before anything reaches the server ...
        sent.clear()
        with pytest.raises(ReadOnlyError, match="CREATE"):
            await db.async_execute_query("CREATE TABLE fast_ro_t (v int)")
        await asyncio.sleep(0.05)
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


# -- every backend, sync and async ---------------------------------------------------
BACKENDS = ["postgresql", "mysql", "sqlite", "duckdb"]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A database URL of each backend: the session's servers, files in tmp_path."""
    kind = request.param
    if kind == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    if kind == "mysql":
        return str(request.getfixturevalue("mysql_url"))
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'fast.sqlite'}"
    return f"duckdb:///{tmp_path / 'fast.duckdb'}"


def _table(db: Database) -> str:
    return f"fast_{db.backend.name}_t"


def _check_shape_and_errors(db: Database, results: list[Any], errors: list[Any]) -> None:
    table = _table(db)
    created, inserted, read, bound, empty = results
    if db.backend.name == "duckdb":  # DuckDB answers DDL and DML with a count, as in Core
        assert inserted == (["Count"], [{"Count": 1}])
    else:
        assert created == inserted == ([], [])
    assert read == (["v", "label"], [{"v": 7, "label": "seven"}])
    assert bound == (["v"], [{"v": 7}])
    assert empty == (["v"], [])
    missing, wrong = errors
    # A server error comes out as SQLAlchemy's class of the driver's error, naming the table.
    assert isinstance(missing, sa_exc.DBAPIError)
    assert f"{table}_missing" in str(missing)
    assert isinstance(wrong, sa_exc.DBAPIError)
    password = db.current_password()
    if password:
        for error in (missing, wrong):
            seen: BaseException | None = error
            while seen is not None:
                assert password not in str(seen)
                seen = seen.__cause__ or seen.__context__


def test_execute_query_direct_on_every_backend(backend_url: str) -> None:
    db = Database(DatabaseConfig(name="fast_each", url=backend_url))
    try:
        table = _table(db)
        db.execute_query(f"DROP TABLE IF EXISTS {table}")
        results = [
            db.execute_query(f"CREATE TABLE {table} (v int, label varchar(20))"),
            db.execute_query(
                f"INSERT INTO {table} VALUES (:v, :label)", {"v": 7, "label": "seven"}
            ),
            db.execute_query(f"SELECT v, label FROM {table}"),
            db.execute_query(f"SELECT v FROM {table} WHERE v = :v", {"v": 7}),
            db.execute_query(f"SELECT v FROM {table} WHERE v = :v", {"v": 8}),
        ]
        errors = []
        for bad in (f"SELECT * FROM {table}_missing", f"SELECT nosuchcolumn FROM {table}"):
            with pytest.raises(sa_exc.DBAPIError) as raised:
                db.execute_query(bad)
            errors.append(raised.value)
        _check_shape_and_errors(db, results, errors)
        # The write was committed: a Core session on another connection sees it.
        assert db._direct_queries[False]  # the fast path ran, not Core's
        with db.session() as session:
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
        queries = db.get_stats().queries
        db.execute_query(f"SELECT v FROM {table}")
        assert db.get_stats().queries == queries + 1
        db.execute_query(f"DROP TABLE {table}")
    finally:
        db.close()
    with pytest.raises(DatabaseClosedError):
        db.execute_query("SELECT 1")


async def test_async_execute_query_direct_on_every_backend(backend_url: str) -> None:
    db = Database(DatabaseConfig(name="fast_each_async", url=backend_url))
    try:
        table = _table(db)
        await db.async_execute_query(f"DROP TABLE IF EXISTS {table}")
        results = [
            await db.async_execute_query(f"CREATE TABLE {table} (v int, label varchar(20))"),
            await db.async_execute_query(
                f"INSERT INTO {table} VALUES (:v, :label)", {"v": 7, "label": "seven"}
            ),
            await db.async_execute_query(f"SELECT v, label FROM {table}"),
            await db.async_execute_query(f"SELECT v FROM {table} WHERE v = :v", {"v": 7}),
            await db.async_execute_query(f"SELECT v FROM {table} WHERE v = :v", {"v": 8}),
        ]
        errors = []
        for bad in (f"SELECT * FROM {table}_missing", f"SELECT nosuchcolumn FROM {table}"):
            with pytest.raises(sa_exc.DBAPIError) as raised:
                await db.async_execute_query(bad)
            errors.append(raised.value)
        _check_shape_and_errors(db, results, errors)
        assert db._direct_queries[True]
        async with db.async_session() as session:
            count = await session.execute(text(f"SELECT count(*) FROM {table}"))
            assert count.scalar() == 1
        queries = db.get_stats().queries
        await db.async_execute_query(f"SELECT v FROM {table}")
        assert db.get_stats().queries == queries + 1
        await db.async_execute_query(f"DROP TABLE {table}")
    finally:
        await db.aclose()
    with pytest.raises(DatabaseClosedError):
        await db.async_execute_query("SELECT 1")


async def test_readonly_refusal_on_every_backend(backend_url: str) -> None:
    writer = Database(DatabaseConfig(name="fast_ro_setup", url=backend_url))
    try:
        writer.execute_query("CREATE TABLE IF NOT EXISTS fast_ro_each (v int)")
    finally:
        writer.close()
    db = Database(DatabaseConfig(name="fast_ro_each", url=backend_url, readonly=True))
    try:
        assert db.execute_query("SELECT count(*) AS n FROM fast_ro_each")[1] == [{"n": 0}]
        assert (await db.async_execute_query("SELECT 1 AS one"))[1] == [{"one": 1}]
        with pytest.raises(ReadOnlyError):
            db.execute_query("INSERT INTO fast_ro_each VALUES (:v)", {"v": 1})
        with pytest.raises(ReadOnlyError):
            await db.async_execute_query("DROP TABLE fast_ro_each")
    finally:
        await db.aclose()
    writer = Database(DatabaseConfig(name="fast_ro_setup", url=backend_url))
    try:
        assert writer.execute_query("SELECT count(*) AS n FROM fast_ro_each")[1] == [{"n": 0}]
        writer.execute_query("DROP TABLE fast_ro_each")
    finally:
        writer.close()


def _questions(db: Database) -> int:
    """MySQL's count of statements this session sent (the query itself included)."""
    rows = db.execute_query("SHOW SESSION STATUS LIKE 'Questions'")[1]
    return int(next(iter(rows[0].values())) if "Value" not in rows[0] else rows[0]["Value"])


def test_mysql_direct_sends_the_statement_alone(mysql_url: str) -> None:
    # One pooled connection: every query below runs on the same server session.
    db = Database(DatabaseConfig(name="fast_my_trips", url=mysql_url, pool_size=1, max_overflow=0))
    try:
        before = _questions(db)
        for _ in range(5):
            db.execute_query("SELECT :x AS x", {"x": 1})
        # Five statements and the second SHOW: no SET autocommit, COMMIT or ROLLBACK.
        assert _questions(db) - before == 6
    finally:
        db.close()


@pytest.mark.parametrize("url_fixture", ["mysql_url", "pg_url"])
async def test_core_transactions_survive_autocommit_left_on(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    """The fast path leaves MySQL's, psycopg's and asyncpg's autocommit on; a session on
    that same connection next must still get a real transaction that a rollback undoes."""
    url = request.getfixturevalue(url_fixture)
    db = Database(DatabaseConfig(name="fast_txn", url=url, pool_size=1, max_overflow=0))
    try:
        db.execute_query("CREATE TABLE IF NOT EXISTS fast_txn (v int)")
        with db.session(auto_commit=False) as session:
            session.execute(text("INSERT INTO fast_txn VALUES (1)"))
            session.rollback()
        assert db.execute_query("SELECT count(*) AS n FROM fast_txn")[1] == [{"n": 0}]
        await db.async_execute_query("SELECT 1")
        async with db.async_session(auto_commit=False) as session:
            await session.execute(text("INSERT INTO fast_txn VALUES (2)"))
            await session.rollback()
        rows = (await db.async_execute_query("SELECT count(*) AS n FROM fast_txn"))[1]
        assert rows == [{"n": 0}]
        db.execute_query("DROP TABLE fast_txn")
    finally:
        await db.aclose()


def test_mysql_connection_killed_while_autocommit_was_left_on(mysql_url: str) -> None:
    """The autocommit switch-back meets a connection the server dropped: the session gets
    a fresh connection instead of an error."""
    db = Database(DatabaseConfig(name="fast_my_kill", url=mysql_url, pool_size=1, max_overflow=0))
    killer = Database(DatabaseConfig(name="fast_my_killer", url=mysql_url))
    try:
        rows = db.execute_query("SELECT CONNECTION_ID() AS id")[1]  # leaves autocommit on
        killer.execute_query(f"KILL {int(rows[0]['id'])}")
        with db.session() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
            new_id = session.execute(text("SELECT CONNECTION_ID()")).scalar()
        assert new_id != rows[0]["id"]
    finally:
        killer.close()
        db.close()


async def test_aiomysql_connection_killed_while_autocommit_was_left_on(mysql_url: str) -> None:
    db = Database(DatabaseConfig(name="fast_aio_kill", url=mysql_url, pool_size=1, max_overflow=0))
    killer = Database(DatabaseConfig(name="fast_aio_killer", url=mysql_url))
    try:
        rows = (await db.async_execute_query("SELECT CONNECTION_ID() AS id"))[1]
        killer.execute_query(f"KILL {int(rows[0]['id'])}")
        await asyncio.sleep(0.1)
        async with db.async_session() as session:
            new_id = (await session.execute(text("SELECT CONNECTION_ID()"))).scalar()
        assert new_id != rows[0]["id"]
    finally:
        killer.close()
        await db.aclose()


def test_failing_direct_queries_return_every_pool_entry(backend_url: str) -> None:
    """The direct path takes pool entries without SQLAlchemy's checkout wrapper: with one
    connection and no overflow, any entry not given back would make the next call wait
    out pool_timeout and fail."""
    db = Database(
        DatabaseConfig(
            name="fast_entries", url=backend_url, pool_size=1, max_overflow=0, pool_timeout=2
        )
    )
    try:
        for i in range(30):
            with pytest.raises(sa_exc.DBAPIError):
                db.execute_query(f"SELECT * FROM fast_entries_missing_{i}")
            with pytest.raises(sa_exc.StatementError):
                db.execute_query("SELECT :a AS a", {"b": 1})  # a missing value: Core raises
        assert db.get_pool_status().checked_out in (0, None)
        assert db.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
    finally:
        db.close()


def _terminate(killer: Database, pid: int) -> None:
    """End PostgreSQL backend `pid` with pg_terminate_backend and wait until it is gone
    (a few milliseconds; blocking an event loop for them is harmless in a test)."""
    import time

    killer.execute_query("SELECT pg_terminate_backend(:pid)", {"pid": pid})
    deadline = time.monotonic() + 5
    while killer.execute_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = :pid", {"pid": pid}
    )[1] != [{"n": 0}]:
        assert time.monotonic() < deadline, "the backend did not end"
        time.sleep(0.02)


def test_backend_terminated_under_the_direct_path_is_replaced(pg_url: str) -> None:
    """A server backend killed between two direct calls: the idle ping's poll sees the
    hang-up at checkout and the next call runs on a fresh connection."""

    db = Database(DatabaseConfig(name="fast_pg_kill", url=pg_url, pool_size=1, max_overflow=0))
    killer = Database(DatabaseConfig(name="fast_pg_killer", url=pg_url))
    try:
        pid = db.execute_query("SELECT pg_backend_pid() AS pid")[1][0]["pid"]
        _terminate(killer, pid)
        new_pid = db.execute_query("SELECT pg_backend_pid() AS pid")[1][0]["pid"]
        assert new_pid != pid
        assert db.get_pool_status().checked_out == 0
    finally:
        killer.close()
        db.close()


# Statements that run for seconds (or far longer) unless stopped.
_SLOW = {
    "postgresql": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)"
    " SELECT count(*) FROM c",
    "duckdb": "SELECT count(*) FROM range(100000) a, range(1000000) b WHERE a.range + b.range < 0",
}


async def test_cancelled_async_query_drops_its_connection(backend_url: str) -> None:
    """A task cancelled mid-statement gives its entry back dropped, never pooled half-read:
    with one connection and no overflow, the next call opens a fresh one and works; the
    statement is stopped (a thread-run one interrupted), not waited out."""
    import time

    db = Database(
        DatabaseConfig(
            name="fast_cancel", url=backend_url, pool_size=1, max_overflow=0, pool_timeout=3
        )
    )
    try:
        opened: list[Any] = []
        event.listen(db.async_engine.sync_engine, "connect", lambda conn, _rec: opened.append(conn))
        for _ in range(3):
            assert await db.async_execute_query("SELECT 1 AS one") == (["one"], [{"one": 1}])
        assert len(opened) == 1  # the direct path reuses the pooled connection
        for round_ in range(2):
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(db.async_execute_query(_SLOW[db.backend.name]), 0.3)
            assert time.monotonic() - started < 4  # stopped, not waited out (5 s and more)
            assert db.get_pool_status().checked_out in (0, None)
            assert await db.async_execute_query("SELECT 2 AS two") == (["two"], [{"two": 2}])
            assert len(opened) == round_ + 2  # the cancelled connection was replaced
        assert db.get_stats().errors >= 2  # each cancelled statement was counted, as failed
    finally:
        await db.aclose()


# The cancelled statement, as the server's own activity list shows it while it runs.
_RUNNING = {
    "postgresql": (
        "SELECT count(*) AS n FROM pg_stat_activity "
        "WHERE query = 'SELECT pg_sleep(31)' AND state = 'active'"
    ),
    "mysql": (
        "SELECT count(*) AS n FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(31)'"
    ),
}


@pytest.mark.parametrize("server", ["postgresql", "mysql"])
async def test_cancelled_async_query_does_not_keep_running_on_the_server(
    server: str, request: pytest.FixtureRequest
) -> None:
    """Dropping the connection is not enough on a server: a statement the caller gave up on
    must not go on using the server's CPU, locks and a connection slot behind its back."""
    import time

    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mysql_url")
    db = Database(DatabaseConfig(name="fast_cancel_server", url=url, pool_size=1))
    watcher = Database(DatabaseConfig(name="fast_cancel_watcher", url=url))
    # 31 s: a duration no other test sleeps, so only this test's statement is counted
    sleep = "SELECT pg_sleep(31)" if server == "postgresql" else "SELECT SLEEP(31)"
    try:
        await db.async_execute_query("SELECT 1")
        task = asyncio.ensure_future(db.async_execute_query(sleep))
        deadline = time.monotonic() + 5
        while watcher.execute_query(_RUNNING[server])[1] != [{"n": 1}]:
            assert time.monotonic() < deadline, "the statement never started"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 3
        while watcher.execute_query(_RUNNING[server])[1] != [{"n": 0}]:
            assert time.monotonic() < deadline, "the cancelled statement still runs"
            await asyncio.sleep(0.05)
        assert await db.async_execute_query("SELECT 2 AS two") == (["two"], [{"two": 2}])
    finally:
        watcher.close()
        await db.aclose()


async def test_async_backend_terminated_between_direct_calls_is_replaced(pg_url: str) -> None:
    """The async direct path takes an idle entry without a greenlet only when its checkout
    needs no IO: a killed backend's hang-up makes the idle ping due, which runs (under the
    greenlet) and replaces the connection before the statement is sent."""

    db = Database(DatabaseConfig(name="fast_pg_akill", url=pg_url, pool_size=1, max_overflow=0))
    killer = Database(DatabaseConfig(name="fast_pg_akiller", url=pg_url))
    try:
        pid = (await db.async_execute_query("SELECT pg_backend_pid() AS pid"))[1][0]["pid"]
        _terminate(killer, pid)
        new_pid = (await db.async_execute_query("SELECT pg_backend_pid() AS pid"))[1][0]["pid"]
        assert new_pid != pid
        assert db.get_pool_status().checked_out == 0
    finally:
        killer.close()
        await db.aclose()


async def test_async_query_behind_a_pooler_keeps_the_adapters_statement_names(
    pg_url: str,
) -> None:
    """Behind a transaction pooler SQLAlchemy's adapter gives each prepared statement a
    unique name; asyncpg's own fetch and prepare would not, so the statement goes through
    the adapter (which asyncpg's query logger does not see) instead of asyncpg's fetch."""
    db = Database(DatabaseConfig(name="fast_pooled", url=pg_url, pooler="pgbouncer"))
    try:
        sent = _asyncpg_log(db)
        assert await db.async_execute_query("SELECT 1 AS a WHERE false") == (["a"], [])
        assert await db.async_execute_query("SELECT 1 AS a") == (["a"], [{"a": 1}])
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers with loop.call_soon
        assert sent == []
    finally:
        await db.aclose()


async def test_overflow_connections_are_closed_at_checkin_on_the_async_direct_path(
    pg_url: str,
) -> None:
    """Three statements at once on a pool of one with two overflow: the overflow entries
    cannot go back into the full queue, so their checkin closes them (IO, under the
    greenlet); the pool ends with nothing checked out and one connection kept."""
    db = Database(DatabaseConfig(name="fast_overflow", url=pg_url, pool_size=1, max_overflow=2))
    opened: list[Any] = []
    event.listen(db.async_engine.sync_engine, "connect", lambda conn, _rec: opened.append(conn))
    try:
        for round_ in range(2):
            found = await asyncio.gather(
                *(
                    db.async_execute_query("SELECT pg_sleep(0.2), CAST(:i AS int) AS i", {"i": i})
                    for i in range(3)
                )
            )
            assert [rows[0]["i"] for _columns, rows in found] == [0, 1, 2]
            pool: Any = db.async_engine.sync_engine.pool
            assert pool.checkedout() == 0
            assert pool.checkedin() == 1
            # Closed for real on the server connection, not dropped with the close failed.
            closed = [conn.driver_connection.is_closed() for conn in opened]
            assert len(opened) == 3 + 2 * round_
            assert closed.count(False) == 1
    finally:
        await db.aclose()
