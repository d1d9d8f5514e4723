"""Closed means closed: after close() every use refuses, and no connection is left anywhere.

The server is asked, not dbwire: PostgreSQL's pg_stat_activity (by an application_name
unique to the test) and MariaDB's PROCESSLIST (by the connection ids each new connection
reported) must show nothing of a closed Database, whichever loop, thread or moment the
connections were opened and closed from.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

import dbwire
from dbwire import Database
from dbwire.errors import DatabaseClosedError, DbwireError
from servers import DatabaseServer

GONE_WITHIN = 5.0  # seconds the server may take to notice a closed socket


@dataclass
class Target:
    """One server database with a way to count the connections a Database holds on it."""

    kind: str
    url: str
    server: DatabaseServer
    marker: str
    ids: set[int] = field(default_factory=set)

    def connect(self, **overrides: Any) -> Database:
        return dbwire.connect(self.url, name=f"closing_{self.kind}", **overrides)

    def follow(self, engine: Engine) -> None:
        """Record the server-side id of every connection this engine opens (MariaDB)."""
        if self.kind != "mysql":
            return

        @event.listens_for(engine, "connect")
        def _record(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT CONNECTION_ID()")
            self.ids.add(int(cursor.fetchone()[0]))
            cursor.close()

    def open_connections(self) -> int:
        if self.kind == "postgresql":
            rows = self.server.query_admin(
                "SELECT count(*) FROM pg_stat_activity "
                f"WHERE application_name = '{self.marker}' AND pid <> pg_backend_pid()"
            )
            return int(rows[0][0])
        if not self.ids:
            return 0
        listed = ", ".join(str(i) for i in sorted(self.ids))
        rows = self.server.query_admin(
            f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID IN ({listed})"
        )
        return int(rows[0][0])

    def assert_none_open(self) -> None:
        deadline = time.monotonic() + GONE_WITHIN
        count = self.open_connections()
        while count and time.monotonic() < deadline:
            time.sleep(0.05)
            count = self.open_connections()
        assert count == 0, f"{count} server connection(s) of the closed Database remain"


@pytest.fixture(params=["postgresql", "mysql"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    marker = f"dbwire_close_{uuid.uuid4().hex[:12]}"
    if request.param == "postgresql":
        server: DatabaseServer = request.getfixturevalue("pg_server")
        url = request.getfixturevalue("pg_url") + f"?application_name={marker}"
    else:
        server = request.getfixturevalue("mysql_server")
        url = request.getfixturevalue("mysql_url")
    yield Target(request.param, url, server, marker)


def _use_sync(db: Database, target: Target) -> None:
    target.follow(db.engine)
    assert db.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
    with db.session() as s:
        assert s.execute(text("SELECT 2")).scalar_one() == 2
    with db.session(readonly=True) as s:
        assert s.execute(text("SELECT 3")).scalar_one() == 3
    with db.connect() as conn:
        assert conn.execute(text("SELECT 4")).scalar_one() == 4


async def _use_async(db: Database, target: Target) -> None:
    target.follow(db.async_engine.sync_engine)
    assert (await db.async_execute_query("SELECT 1 AS one"))[1] == [{"one": 1}]
    async with db.async_session() as s:
        assert (await s.execute(text("SELECT 2"))).scalar_one() == 2
    async with db.async_session(readonly=True) as s:
        assert (await s.execute(text("SELECT 3"))).scalar_one() == 3
    # Several at once, so the pool holds more than one connection.
    async with db.async_connect() as a, db.async_connect() as b:
        assert (await a.execute(text("SELECT 5"))).scalar_one() == 5
        assert (await b.execute(text("SELECT 6"))).scalar_one() == 6


# -- every use refuses -----------------------------------------------------------------
SYNC_USES: dict[str, Callable[[Database], object]] = {
    "engine": lambda db: db.engine,
    "async_engine": lambda db: db.async_engine,
    "Session": lambda db: db.Session,
    "AsyncSession": lambda db: db.AsyncSession,
    "session": lambda db: db.session().__enter__(),
    "session_readonly": lambda db: db.session(readonly=True).__enter__(),
    "session_scope": lambda db: db.session_scope().__enter__(),
    "get_session": lambda db: db.get_session(),
    "scoped_session": lambda db: db.scoped_session(),
    "connect": lambda db: db.connect(),
    "connect_readonly": lambda db: db.connect(readonly=True),
    "async_connect": lambda db: db.async_connect(),
    "execute_query": lambda db: db.execute_query("SELECT 1"),
    "get_schema": lambda db: db.get_schema(),
    "metadata": lambda db: db.metadata,
    "refresh_metadata": lambda db: db.refresh_metadata(),
    "health_check": lambda db: db.health_check(),
    "wait": lambda db: db.wait(timeout=1),
    "get_pool_status": lambda db: db.get_pool_status(),
    "create_database": lambda db: db.create_database(),
    "drop_database": lambda db: db.drop_database(),
    "database_exists": lambda db: db.database_exists(),
    "session_plain": lambda db: db.session().execute(text("SELECT 1")),
}
ASYNC_USES: dict[str, Callable[[Database], Awaitable[object]]] = {
    "async_execute_query": lambda db: db.async_execute_query("SELECT 1"),
    "async_get_schema": lambda db: db.async_get_schema(),
    "async_health_check": lambda db: db.async_health_check(),
    "async_wait": lambda db: db.async_wait(timeout=1),
    "async_create_database": lambda db: db.async_create_database(),
    "async_drop_database": lambda db: db.async_drop_database(),
    "async_database_exists": lambda db: db.async_database_exists(),
}


def _embedded_url(kind: str, tmp_path: Path) -> str:
    return f"{kind}:///{tmp_path / f'closed.{kind}'}"


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_every_sync_use_after_close_raises_embedded(kind: str, tmp_path: Path) -> None:
    db = dbwire.connect(_embedded_url(kind, tmp_path), name=f"closed_{kind}")
    db.execute_query("CREATE TABLE t (x INTEGER)")
    db.execute_query("INSERT INTO t VALUES (1)")
    session_factory, engine = db.Session, db.engine
    db.close()
    _assert_every_sync_use_refuses(db)
    # Handles taken before close() do not reopen it either.
    with pytest.raises(DatabaseClosedError):
        engine.connect()
    with pytest.raises(DatabaseClosedError), session_factory() as s:
        s.execute(text("SELECT 1"))
    # The file is released: a plain driver opens it and sees the data.
    if kind == "duckdb":
        with duckdb.connect(str(tmp_path / "closed.duckdb")) as con:
            assert con.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_every_sync_use_after_close_raises_on_servers(target: Target) -> None:
    db = target.connect()
    _use_sync(db, target)
    session_factory, engine = db.Session, db.engine
    db.close()
    _assert_every_sync_use_refuses(db)
    with pytest.raises(DatabaseClosedError):
        engine.connect()
    with pytest.raises(DatabaseClosedError), session_factory() as s:
        s.execute(text("SELECT 1"))
    target.assert_none_open()


def _assert_every_sync_use_refuses(db: Database) -> None:
    for name, use in SYNC_USES.items():
        with pytest.raises(DatabaseClosedError, match=f"database {db.name!r} is closed"):
            use(db)
            pytest.fail(f"{name} worked after close()")
    assert db.closed and "closed" in repr(db)


async def test_every_async_use_after_close_raises(target: Target) -> None:
    db = target.connect()
    await _use_async(db, target)
    await db.aclose()
    for name, use in ASYNC_USES.items():
        with pytest.raises(DatabaseClosedError):
            await use(db)
            pytest.fail(f"{name} worked after aclose()")
    with pytest.raises(DatabaseClosedError):
        async with db.async_session():
            pass
    with pytest.raises(DatabaseClosedError):
        async with db.async_connect():
            pass
    target.assert_none_open()


# -- no connection remains, whoever opened it and wherever close() runs ----------------
def test_sync_close_after_the_async_loop_is_gone(target: Target) -> None:
    """asyncio.run() returned: its connections can only be closed by hand."""
    db = target.connect()
    _use_sync(db, target)
    asyncio.run(_use_async(db, target))
    asyncio.run(_use_async(db, target))  # a second loop, a second async pool
    assert target.open_connections() >= 2
    db.close()
    target.assert_none_open()


def test_sync_close_from_inside_the_running_loop(target: Target) -> None:
    db = target.connect()

    async def main() -> None:
        await _use_async(db, target)
        db.close()  # sync close() in a coroutine: it cannot wait for this loop
        with pytest.raises(DatabaseClosedError):
            await db.async_execute_query("SELECT 1")

    asyncio.run(main())
    target.assert_none_open()


def test_sync_close_from_another_thread_while_the_loop_runs(target: Target) -> None:
    db = target.connect()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="test-loop")
    runner.start()
    try:
        asyncio.run_coroutine_threadsafe(_use_async(db, target), loop).result(30)
        assert target.open_connections() >= 1
        db.close()  # closes that loop's pool on that loop
        target.assert_none_open()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


async def test_aclose_closes_async_and_sync_pools(target: Target) -> None:
    db = target.connect()
    await asyncio.to_thread(_use_sync, db, target)
    await _use_async(db, target)
    await db.aclose()
    target.assert_none_open()


def test_reconnect_by_name_after_close_gives_a_new_working_database(
    target: Target, tmp_path: Path
) -> None:
    config = {"databases": {"primary": {"url": target.url}}}
    db = dbwire.connect("primary", config=config)
    assert dbwire.connect("primary", config=config) is db
    _use_sync(db, target)
    db.close()
    again = dbwire.connect("primary", config=config)
    try:
        assert again is not db and not again.closed
        assert again.execute_query("SELECT 7 AS n")[1] == [{"n": 7}]
        with again.session() as s:
            assert s.execute(text("SELECT 8")).scalar_one() == 8
        with pytest.raises(DatabaseClosedError):
            db.execute_query("SELECT 1")  # the old one stays closed
    finally:
        again.close()
    target.assert_none_open()


# -- closing while a session is running on another thread -------------------------------
def test_close_while_another_thread_is_inside_a_session(target: Target) -> None:
    db = target.connect()
    target.follow(db.engine)
    db.execute_query("DROP TABLE IF EXISTS closing_race")
    db.execute_query("CREATE TABLE closing_race (x INTEGER)")
    inside, closed = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def worker() -> None:
        try:
            with db.session() as s:
                s.execute(text("INSERT INTO closing_race VALUES (1)"))
                inside.set()
                assert closed.wait(10)
                # Same connection, same transaction: it finishes and commits.
                s.execute(text("INSERT INTO closing_race VALUES (2)"))
            outcome["first"] = "committed"
        except Exception as exc:  # failing is allowed, if cleanly
            outcome["first"] = exc
        try:
            with db.session() as s:
                s.execute(text("SELECT 1"))
            outcome["second"] = "ran"
        except Exception as exc:
            outcome["second"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    db.close()
    closed.set()
    thread.join(15)
    assert not thread.is_alive(), "the session hung after close()"
    first = outcome["first"]
    assert first == "committed" or isinstance(first, DbwireError), repr(first)
    assert isinstance(outcome["second"], DatabaseClosedError), repr(outcome["second"])
    target.assert_none_open()
    check = dbwire.connect(target.url, name="closing_check")
    try:
        rows = check.execute_query("SELECT x FROM closing_race ORDER BY x")[1]
        # All or nothing: the session's transaction is never half applied.
        assert [r["x"] for r in rows] in ([1, 2], []), rows
        check.execute_query("DROP TABLE closing_race")
    finally:
        check.close()


def test_close_while_an_async_session_runs_on_another_thread(target: Target) -> None:
    db = target.connect()
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, name="test-loop")
    runner.start()
    inside, closed = threading.Event(), threading.Event()

    async def session_across_close() -> int:
        async with db.async_session() as s:
            first = (await s.execute(text("SELECT 1"))).scalar_one()
            inside.set()
            await asyncio.to_thread(closed.wait, 10)
            second = (await s.execute(text("SELECT 2"))).scalar_one()
        return int(first + second)

    try:
        future = asyncio.run_coroutine_threadsafe(session_across_close(), loop)
        assert inside.wait(10)
        db.close()
        closed.set()
        assert future.result(15) == 3  # the running session finished on its connection
        target.assert_none_open()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


# -- embedded files used from async -----------------------------------------------------
@pytest.mark.parametrize("where", ["after the loop", "inside the loop", "aclose"])
def test_duckdb_file_used_from_async_can_be_reopened_after_close(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "async.duckdb"
    url = f"duckdb:///{path}"
    db = dbwire.connect(url, name="async_duck")

    async def main() -> None:
        await db.async_execute_query("CREATE TABLE t (x INTEGER)")
        await db.async_execute_query("INSERT INTO t VALUES (42)")
        async with db.async_session() as s:
            assert (await s.execute(text("SELECT x FROM t"))).scalar_one() == 42
        if where == "inside the loop":
            db.close()
        elif where == "aclose":
            await db.aclose()

    asyncio.run(main())
    db.close()
    with duckdb.connect(str(path)) as con:  # a fresh, writable open of the same file
        assert con.execute("SELECT x FROM t").fetchall() == [(42,)]
    again = dbwire.connect(url, name="async_duck")
    try:
        assert again is not db
        assert again.execute_query("SELECT x FROM t")[1] == [{"x": 42}]
    finally:
        again.close()


def test_sqlite_async_close_leaves_no_aiosqlite_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    db = dbwire.connect(f"sqlite:///{tmp_path / 'a.db'}", name="async_sqlite")

    async def main() -> None:
        await db.async_execute_query("CREATE TABLE t (x INTEGER)")
        async with db.async_connect() as a, db.async_connect() as b:
            await a.execute(text("SELECT 1"))
            await b.execute(text("SELECT 1"))

    asyncio.run(main())
    db.close()
    deadline = time.monotonic() + 5
    extra = [t for t in threading.enumerate() if t not in before]
    while extra and time.monotonic() < deadline:
        time.sleep(0.05)
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not extra, f"threads left after close(): {extra}"


@pytest.mark.parametrize("kind", ["sqlite", "duckdb"])
def test_a_closed_database_is_neither_attached_nor_collected(kind: str, tmp_path: Path) -> None:
    db = dbwire.connect(_embedded_url(kind, tmp_path), name=f"store_closed_{kind}")
    db.execute_query("CREATE TABLE t (x INTEGER)")
    db.close()
    with dbwire.get_duckdb_connection() as store:
        with pytest.raises(DatabaseClosedError):
            store.attach(db)
        with pytest.raises(DatabaseClosedError):
            store.collect(db, "SELECT x FROM t", table="copied")
        assert store.attached == {}
        assert store.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)


def test_close_twice_and_from_many_threads_at_once(target: Target) -> None:
    db = target.connect()
    _use_sync(db, target)
    asyncio.run(_use_async(db, target))
    errors: list[BaseException] = []

    def close() -> None:
        try:
            db.close()
        except BaseException as exc:  # close() must never raise, whoever wins the race
            errors.append(exc)

    threads = [threading.Thread(target=close) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    db.close()
    assert errors == []
    target.assert_none_open()
