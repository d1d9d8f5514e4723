"""Pool exhaustion: no deadlock under contention, and PoolTimeoutError that says what to raise."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import pool as sa_pool

from dbwire import Database, DatabaseConfig, PoolStatus, PoolTimeoutError
from dbwire.health import pool_status
from dbwire.pool import (
    DbwireAsyncQueuePool,
    DbwireQueuePool,
    HookedPool,
    hooked_pool_class,
    name_pool,
    pool_class_for,
)


@pytest.fixture
def small_pg(pg_url: str) -> Iterator[Database]:
    """A PostgreSQL Database with a pool of 5 and no overflow."""
    db = Database(
        DatabaseConfig(name="small", url=pg_url, pool_size=5, max_overflow=0, pool_timeout=10)
    )
    yield db
    db.close()


def _run_threads(count: int, target: object, timeout: float) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t.is_alive()]


def test_fifty_threads_share_five_connections_without_deadlock(small_pg: Database) -> None:
    backend_pids: set[int] = set()
    errors: list[BaseException] = []
    done = []

    def work() -> None:
        try:
            for _ in range(5):
                with small_pg.connect() as conn:
                    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                    conn.exec_driver_sql("SELECT pg_sleep(0.005)")
                    backend_pids.add(pid)
            done.append(1)
        except BaseException as exc:
            errors.append(exc)

    stuck = _run_threads(50, work, timeout=30)
    assert not stuck, f"{len(stuck)} threads deadlocked"
    assert not errors, errors[:3]
    assert len(done) == 50
    assert len(backend_pids) <= 5, "max_overflow=0 must never open a sixth connection"
    status = small_pg.get_pool_status()
    assert status == PoolStatus(
        size=5,
        checked_in=status.checked_in,
        checked_out=0,
        overflow=0,
        max_overflow=0,
        timeout=10,
        pool_class="DbwireQueuePool",
        waiting=0,
    )
    assert small_pg.get_stats().queries == 50 * 5 * 2


def test_short_pool_timeout_raises_pool_timeout_error_with_the_fix(pg_url: str) -> None:
    db = Database(
        DatabaseConfig(name="dry", url=pg_url, pool_size=5, max_overflow=0, pool_timeout=0.3)
    )
    failures: list[BaseException] = []
    successes = []
    start = threading.Barrier(50)

    def work() -> None:
        start.wait()
        try:
            with db.connect() as conn:
                conn.exec_driver_sql("SELECT pg_sleep(1.0)")
            successes.append(1)
        except BaseException as exc:
            failures.append(exc)

    try:
        stuck = _run_threads(50, work, timeout=30)
        assert not stuck
        # Five hold a connection for a second; everyone else gives up after 0.3 s.
        assert len(successes) == 5
        assert len(failures) == 45
        for exc in failures:
            assert isinstance(exc, PoolTimeoutError)
            assert isinstance(exc, sqlalchemy.exc.TimeoutError)
            assert isinstance(exc, TimeoutError)
            assert exc.database == "dry"
        message = str(failures[0])
        assert "database 'dry'" in message
        assert "pool_size=5" in message
        assert "max_overflow=0" in message
        assert "5 connections are checked out" in message
        assert "pool_timeout=0.3s" in message
        assert "raise pool_size or max_overflow" in message
        assert db.get_pool_status().checked_out == 0
    finally:
        db.close()


def test_pool_class_survives_dispose_and_recreate(pg_url: str) -> None:
    db = Database(
        DatabaseConfig(name="again", url=pg_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    )
    try:
        db.engine.dispose()  # Engine.dispose() swaps in pool.recreate()
        db.dispose_pools()
        assert type(db.engine.pool) is DbwireQueuePool
        with db.connect(), pytest.raises(PoolTimeoutError, match="database 'again'"):
            db.connect()
    finally:
        db.close()


async def test_async_pool_raises_pool_timeout_error(pg_url: str) -> None:
    db = Database(
        DatabaseConfig(name="adry", url=pg_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    )
    try:
        assert type(db.async_engine.sync_engine.pool) is DbwireAsyncQueuePool
        async with db.async_connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
            with pytest.raises(PoolTimeoutError, match="pool_size=1, max_overflow=0"):
                await asyncio.wait_for(db.async_connect().start(), timeout=5)
        status = db.get_pool_status(is_async=True)
        assert (status.size, status.checked_out) == (1, 0)
    finally:
        await db.aclose()


@pytest.mark.parametrize(
    ("url", "is_async", "expected"),
    [
        ("postgresql+psycopg://h/d", False, DbwireQueuePool),
        ("postgresql+asyncpg://h/d", True, DbwireAsyncQueuePool),
        ("mysql+pymysql://h/d", False, DbwireQueuePool),
        ("sqlite+aiosqlite:///x.db", True, DbwireAsyncQueuePool),
        ("sqlite:///x.db", False, DbwireQueuePool),
    ],
)
def test_the_pool_class_is_chosen_before_the_engine_is_built(
    url: str, is_async: bool, expected: type[sa_pool.Pool]
) -> None:
    # poolclass= replaces the dialect's queue pool: no pool changes class after it is built.
    assert pool_class_for(sqlalchemy.make_url(url), is_async=is_async) is expected


def test_every_pool_kind_is_hooked_and_foreign_pools_are_left_alone(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="lite", url=f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        # A file SQLite database gets SQLAlchemy's QueuePool, hence dbwire's subclass ...
        assert type(db.engine.pool) is DbwireQueuePool
        assert db.get_pool_status().pool_class == "DbwireQueuePool"
    finally:
        db.close()
    # ... and any other pool the dialect picks gets the same hooks mixed in, once per class.
    memory = pool_class_for(sqlalchemy.make_url("sqlite://"), is_async=False)
    assert memory is not None and memory.__name__ == "DbwireSingletonThreadPool"
    assert issubclass(memory, sa_pool.SingletonThreadPool) and issubclass(memory, HookedPool)
    assert hooked_pool_class(sa_pool.SingletonThreadPool) is memory
    engine = sqlalchemy.create_engine("sqlite://", poolclass=memory)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
    # A plain SQLAlchemy engine's pool is not dbwire's: naming it changes nothing.
    engine = sqlalchemy.create_engine("sqlite://", poolclass=sa_pool.StaticPool)
    name_pool(engine, "static")
    assert type(engine.pool) is sa_pool.StaticPool
    status = pool_status(engine.pool)
    assert (status.pool_class, status.checked_out) == ("StaticPool", None)
    engine.dispose()


def test_pool_status_counts_checked_out_and_overflow(pg_url: str) -> None:
    db = Database(DatabaseConfig(name="count", url=pg_url, pool_size=2, max_overflow=3))
    try:
        conns = [db.connect() for _ in range(4)]
        for conn in conns:
            conn.exec_driver_sql("SELECT 1")
        status = db.get_pool_status()
        assert (status.size, status.checked_out, status.checked_in, status.overflow) == (2, 4, 0, 2)
        assert status["checked_out"] == 4  # seed 003 reads it as a mapping
        for conn in conns:
            conn.close()
        status = db.get_pool_status()
        # The two overflow connections are closed on return; the pool keeps its size.
        assert (status.checked_out, status.checked_in, status.overflow) == (0, 2, 0)
    finally:
        db.close()


def test_a_queue_pool_with_its_own_checkout_keeps_it_under_the_tracker(tmp_path: Path) -> None:
    # dbwire takes an idle connection off the queue directly only where _do_get is
    # QueuePool's own; a subclass with its own checkout runs it every time.
    from dbwire.observe import PoolTracker

    calls: list[int] = []

    class CountingPool(sa_pool.QueuePool):
        def _do_get(self) -> sa_pool.ConnectionPoolEntry:
            calls.append(1)
            return super()._do_get()

    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'c.db'}", poolclass=hooked_pool_class(CountingPool)
    )
    tracker = PoolTracker("counting")
    tracker.install(engine)
    try:
        for _ in range(5):  # the connection is idle in the queue from the second one on
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        assert len(calls) == 5
        # and the queue pool's own direct take still times every checkout
        assert tracker.timings.wait_time.snapshot().count == 5
    finally:
        engine.dispose()


def test_an_idle_connection_taken_directly_is_timed_and_named_like_any_checkout(
    tmp_path: Path,
) -> None:
    from dbwire.observe import PoolTracker

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'q.db'}", poolclass=DbwireQueuePool)
    tracker = PoolTracker("queue")
    tracker.install(engine)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert engine.pool.checkedin() == 1  # idle in the queue: the next take is direct
        with engine.connect() as conn:
            holders = tracker.holders()
            assert len(holders) == 1 and "test_pool.py" in holders[0].where
        assert tracker.timings.wait_time.snapshot().count == 2
        assert tracker.timings.use_time.snapshot().count == 2
    finally:
        engine.dispose()
