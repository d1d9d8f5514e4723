"""Who holds the pool: holders named in PoolTimeoutError, waiting callers, leak warnings.

On plain SQLAlchemy engines over the real PostgreSQL server, with dbwire's tracker installed
as the Database installs it (sync, and async through asyncpg's greenlet path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from dbwire import PoolTimeoutError
from dbwire.health import pool_status
from dbwire.observe import PoolTracker
from dbwire.pool import DbwireAsyncQueuePool, DbwireQueuePool, hooked_pool_class

HERE = Path(__file__).name


def _sync_url(pg_url: str) -> str:
    return pg_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def five(pg_url: str) -> Iterator[tuple[Engine, PoolTracker]]:
    """A pool of 5, no overflow, a short timeout, tracked."""
    engine = create_engine(
        _sync_url(pg_url),
        poolclass=DbwireQueuePool,
        pool_size=5,
        max_overflow=0,
        pool_timeout=0.5,
    )
    tracker = PoolTracker("five")
    tracker.install(engine)
    yield engine, tracker
    engine.dispose()


def hold_one_connection_for_the_test(engine: Engine) -> Connection:
    conn = engine.connect()
    conn.execute(text("SELECT 1"))
    return conn


def test_timeout_names_the_function_and_file_holding_all_five(
    five: tuple[Engine, PoolTracker],
) -> None:
    engine, tracker = five
    held = [hold_one_connection_for_the_test(engine) for _ in range(5)]
    try:
        status = pool_status(engine.pool, holders=tracker.holders(), waiting=tracker.waiting)
        assert status.checked_out == 5
        assert len(status.holders) == 5
        assert all("hold_one_connection_for_the_test" in h.where for h in status.holders)
        assert all(HERE in h.where and h.thread == "MainThread" for h in status.holders)
        held_times = [h.held_s for h in status.holders]
        assert held_times == sorted(held_times, reverse=True), "longest held first"
        with pytest.raises(PoolTimeoutError) as caught:
            engine.connect()
        message = str(caught.value)
        assert "hold_one_connection_for_the_test" in message
        assert HERE in message
        assert "pool_size=5" in message and "and 2 more" in message
        assert caught.value.__cause__ is None
        assert tracker.timings.timeouts == 1
    finally:
        for conn in held:
            conn.close()
    assert tracker.holders() == ()
    assert tracker.timings.use_time.snapshot().count == 5


def test_waiting_counts_threads_blocked_on_a_checkout(
    five: tuple[Engine, PoolTracker],
) -> None:
    engine, tracker = five
    held = [hold_one_connection_for_the_test(engine) for _ in range(5)]
    errors: list[BaseException] = []

    def wait_for_one() -> None:
        try:
            with engine.connect():
                time.sleep(1.0)  # longer than pool_timeout: the other waiters give up
        except PoolTimeoutError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait_for_one, name=f"w{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while tracker.waiting < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.waiting == 3
    held.pop().close()  # one waiter gets it, the others time out
    for thread in threads:
        thread.join(5)
    for conn in held:
        conn.close()
    assert tracker.waiting == 0
    assert len(errors) == 2
    assert tracker.timings.timeouts == 2


def test_holders_of_threads_name_the_thread(five: tuple[Engine, PoolTracker]) -> None:
    engine, tracker = five
    ready = threading.Event()
    release = threading.Event()

    def worker() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            ready.set()
            release.wait(5)

    thread = threading.Thread(target=worker, name="report-builder")
    thread.start()
    assert ready.wait(5)
    (holder,) = tracker.holders()
    assert holder.thread == "report-builder"
    assert "in worker" in holder.where
    release.set()
    thread.join(5)
    assert tracker.holders() == ()


def test_leak_warning_once_per_checkout(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dbwire")
    engine = create_engine(_sync_url(pg_url), poolclass=DbwireQueuePool, pool_size=2)
    tracker = PoolTracker("leaky", leak_warning_s=0.2)
    tracker.install(engine)
    try:
        conn = hold_one_connection_for_the_test(engine)
        time.sleep(1.0)  # several watch intervals: still one warning
        conn.close()
        warnings = [r for r in caplog.records if "leak_warning_s=0.2" in r.getMessage()]
        assert len(warnings) == 1, caplog.text
        text_ = warnings[0].getMessage()
        assert "'leaky'" in text_ and "hold_one_connection_for_the_test" in text_
        # a new checkout may warn again; a short one does not
        with engine.connect() as quick:
            quick.execute(text("SELECT 1"))
        time.sleep(0.4)
        assert len([r for r in caplog.records if "leak_warning_s" in r.getMessage()]) == 1
    finally:
        engine.dispose()


_WATCH_CHILD = """
import sys, threading, time
import dbwire
from sqlalchemy import text

db = dbwire.connect(sys.argv[1], name="watched", leak_warning_s=0.05)
with db.session() as s:
    s.execute(text("SELECT 1"))
watching = any(t.name == "dbwire-leak-watch" for t in threading.enumerate())
db.close()
time.sleep(1.5)  # past the watch's interval: it sees no tracker left and ends
print(watching, any(t.name == "dbwire-leak-watch" for t in threading.enumerate()))
"""


def test_closing_a_database_ends_its_leak_watch(tmp_path: Path) -> None:
    """The watch thread wakes for no closed Database, even one that is still referenced."""
    import subprocess

    url = f"sqlite:///{tmp_path / 'w.db'}"
    out = subprocess.run(
        [sys.executable, "-c", _WATCH_CHILD, url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


def test_a_session_running_across_close_still_gets_its_leak_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import dbwire

    caplog.set_level(logging.WARNING, logger="dbwire")
    db = dbwire.connect(f"sqlite:///{tmp_path / 'l.db'}", name="closing", leak_warning_s=0.2)
    session = db.session()
    session.execute(text("SELECT 1"))  # holds a connection
    db.close()
    time.sleep(1.0)
    session.close()
    warnings = [r for r in caplog.records if "'closing'" in r.getMessage()]
    assert len(warnings) == 1, caplog.text


def test_no_leak_warning_when_off(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="dbwire")
    engine = create_engine(_sync_url(pg_url), poolclass=DbwireQueuePool)
    tracker = PoolTracker("quiet")
    tracker.install(engine)
    conn = hold_one_connection_for_the_test(engine)
    time.sleep(0.3)
    conn.close()
    engine.dispose()
    assert "leak_warning_s" not in caplog.text


async def hold_async(engine: object) -> AsyncConnection:
    conn = await engine.connect()  # type: ignore[attr-defined]
    await conn.execute(text("SELECT 1"))
    return conn  # type: ignore[no-any-return]


async def test_async_holders_timeout_and_leak_warning(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbwire")
    engine = create_async_engine(
        pg_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        poolclass=DbwireAsyncQueuePool,
        pool_size=2,
        max_overflow=0,
        pool_timeout=0.5,
    )
    tracker = PoolTracker("async-five", leak_warning_s=0.2)
    tracker.install(engine.sync_engine)
    try:
        held = [await hold_async(engine), await hold_async(engine)]
        holders = tracker.holders()
        assert [h.where.split(" in ")[-1] for h in holders] == ["hold_async", "hold_async"]
        assert all(h.task for h in holders)
        with pytest.raises(PoolTimeoutError) as caught:
            await engine.connect()
        assert "hold_async" in str(caught.value) and HERE in str(caught.value)
        await asyncio.sleep(0.8)
        for conn in held:
            await conn.close()
        warnings = [r for r in caplog.records if "leak_warning_s=0.2" in r.getMessage()]
        assert len(warnings) == 2, caplog.text  # one per checkout
        assert all("hold_async" in r.getMessage() for r in warnings)
    finally:
        await engine.dispose()


def test_null_pool_counts_connects_and_holders(pg_url: str) -> None:
    engine = create_engine(_sync_url(pg_url), poolclass=hooked_pool_class(NullPool))
    tracker = PoolTracker("nullpool")
    tracker.install(engine)
    try:
        conns = [hold_one_connection_for_the_test(engine) for _ in range(3)]
        assert len(tracker.holders()) == 3
        for conn in conns:
            conn.close()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert tracker.timings.connects == 4, "every NullPool checkout is a connect"
        assert tracker.timings.create_time.snapshot().count == 4
        assert tracker.holders() == ()
    finally:
        engine.dispose()


def test_tracking_survives_dispose(five: tuple[Engine, PoolTracker]) -> None:
    engine, tracker = five
    old = hold_one_connection_for_the_test(engine)
    engine.dispose()  # a new pool; the old connection is still held
    new = hold_one_connection_for_the_test(engine)
    assert len(tracker.holders()) == 2
    assert tracker.timings.wait_time.snapshot().count == 2, "the new pool is timed too"
    old.close()
    new.close()
    assert tracker.holders() == ()
    assert tracker.waiting == 0


def test_holder_is_released_when_the_server_kills_its_backend(
    five: tuple[Engine, PoolTracker],
) -> None:
    engine, tracker = five
    victim = hold_one_connection_for_the_test(engine)
    pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with engine.connect() as killer:
        killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    assert len(tracker.holders()) == 1
    with pytest.raises(Exception):  # noqa: B017 - the driver's disconnect error, wrapped
        victim.exec_driver_sql("SELECT 1")
    victim.close()
    assert tracker.holders() == ()
    with engine.connect() as conn:  # the pool goes on
        assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    assert tracker.holders() == ()


def test_thirty_threads_leave_no_holder_and_no_waiter(
    five: tuple[Engine, PoolTracker],
) -> None:
    engine, tracker = five
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
        except PoolTimeoutError:
            pass  # a 0.5 s timeout under 30 threads on 2 CPUs may expire; it is counted
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [t for t in threads if t.is_alive()], "threads still running"
    assert not errors, errors[:3]
    assert tracker.holders() == ()
    assert tracker.waiting == 0
    served = tracker.timings.wait_time.snapshot().count
    assert served + tracker.timings.timeouts == 300, (served, tracker.timings.timeouts)


def test_replica_label_never_carries_a_login() -> None:
    from dbwire.observe.observation import replica_label

    assert replica_label("postgresql://app:s3cret@replica-1:5433/app") == "replica-1:5433"
    assert replica_label("app:s3cret@replica-2") == "replica-2"
    assert replica_label("postgresql://app:s3cret@replica-3:notaport/app") == "replica-3"
    assert replica_label("standby-east") == "standby-east"


def test_leak_warning_s_must_be_positive() -> None:
    from dbwire import ConfigError, load_config

    with pytest.raises(ConfigError) as caught:
        load_config({"databases": {"x": {"url": "sqlite://", "leak_warning_s": 0}}})
    assert "leak_warning_s" in str(caught.value)


def _child_report(db: object, results: object) -> None:
    status = db.get_pool_status()  # type: ignore[attr-defined]
    with db.connect() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("SELECT 1")
        during = db.get_pool_status()  # type: ignore[attr-defined]
    results.put(  # type: ignore[attr-defined]
        (len(status.holders), status.waiting, [h.where for h in during.holders])
    )


def test_a_forked_child_sees_none_of_the_parents_holders(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    import multiprocessing

    from dbwire import Database, DatabaseConfig

    db = Database(DatabaseConfig(name="forking", url=pg_url, leak_warning_s=30))
    held = hold_one_connection_for_the_test(db.engine)
    try:
        assert len(db.get_pool_status().holders) == 1
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=_child_report, args=(db, results))
        child.start()
        parent_holders, waiting, child_holders = results.get(timeout=60)
        child.join(30)
        assert child.exitcode == 0
        assert parent_holders == 0 and waiting == 0, "the parent's checkout is not the child's"
        assert len(child_holders) == 1 and "_child_report" in child_holders[0]
        assert len(db.get_pool_status().holders) == 1, "the parent still holds its own"
    finally:
        held.close()
        db.close()


# Checkouts from many call shapes, each held alone and read back: the tracker remembers
# recent stack shapes to avoid walking every frame, and must still name each one's caller
# and line, however the shapes alternate (more shapes than it keeps, the same function
# at other depths, the same code reached through a different library path).
def _line() -> int:
    return sys._getframe(1).f_lineno


Held = tuple[Callable[[], object], int, str]


def _by_connect(engine: Engine) -> Held:
    conn, line = engine.connect(), _line()
    return conn.close, line, "_by_connect"


def _by_raw_connection(engine: Engine) -> Held:
    conn, line = engine.raw_connection(), _line()
    return conn.close, line, "_by_raw_connection"


def _by_pool(engine: Engine) -> Held:
    conn, line = engine.pool.connect(), _line()
    return conn.close, line, "_by_pool"


def _by_session(engine: Engine) -> Held:
    session = Session(engine)
    _, line = session.execute(text("SELECT 1")), _line()
    return session.close, line, "_by_session"


def _nested(engine: Engine, levels: int) -> Held:
    if levels:
        return _nested(engine, levels - 1)
    conn, line = engine.connect(), _line()
    return conn.close, line, "_nested"


def _through_contextlib(engine: Engine) -> Held:
    lines: list[int] = []

    @contextlib.contextmanager
    def opened() -> Iterator[Connection]:
        conn, line = engine.connect(), _line()
        lines.append(line)
        with conn:
            yield conn

    manager = opened()
    manager.__enter__()
    return lambda: manager.__exit__(None, None, None), lines[0], "opened"


def test_every_call_shape_names_its_own_caller_and_line(
    five: tuple[Engine, PoolTracker],
) -> None:
    engine, tracker = five
    shapes: list[Callable[[Engine], Held]] = [
        _by_connect,
        _by_raw_connection,
        _by_pool,
        _by_session,
        _through_contextlib,
        lambda e: _nested(e, 3),
        lambda e: _nested(e, 0),
    ]
    for _ in range(3):
        for shape in shapes + shapes[::-1]:
            release, line, function = shape(engine)
            try:
                (holder,) = tracker.holders()
                assert holder.where.endswith(f"{HERE}:{line} in {function}"), holder.where
            finally:
                release()
            assert tracker.holders() == ()
