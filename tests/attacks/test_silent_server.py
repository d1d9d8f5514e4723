"""A server that accepts and never answers: every connect path ends in time, and leaves no thread.

The silent server (tests/servers/silent.py) completes TCP handshakes and then sends nothing and
closes nothing, like a hung database or a stopped VM behind a live port. Each test times
one connect path against it, checks the error names the database, the host and the
timeout, and checks with threading.enumerate() that nothing is left blocked behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import dbwire
from dbwire import ConnectError, Database, Manager
from dbwire.pool import PingWatchdog, hooks_of
from servers import DatabaseServer
from servers.silent import MutingProxy, SilentServer

CONNECT_TIMEOUT = 2.0
# libpq rounds to whole seconds (min 2); scheduling on a shared 2-CPU machine adds some.
MARGIN = 1.5
BOUND = CONNECT_TIMEOUT + MARGIN
HEALTH_TIMEOUT = 1.0

SCHEMES = ["postgresql", "mysql", "mariadb"]


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    """A loopback port that accepts every connection and never answers; stopped afterwards."""
    with SilentServer() as server:
        yield server


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    """The threads alive before the test body (the silent server's own among them)."""
    return set(threading.enumerate())


@contextmanager
def _silent_db(
    server: SilentServer, scheme: str, name: str, **overrides: Any
) -> Iterator[Database]:
    overrides.setdefault("connect_timeout", CONNECT_TIMEOUT)
    db = dbwire.connect(
        f"{scheme}://app:pw@{server.host}:{server.port}/app", name=name, **overrides
    )
    try:
        yield db
    finally:
        db.close()


def assert_no_thread_left(before: set[threading.Thread], within: float) -> None:
    """Every thread started since `before` ends within `within` seconds from now."""
    deadline = time.monotonic() + within
    extra: list[threading.Thread] = []
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        time.sleep(0.05)
    raise AssertionError(f"threads still running after {within:.1f}s: {extra}")


def assert_timeout_message(
    error: BaseException, name: str, server: SilentServer | MutingProxy
) -> None:
    text = str(error)
    assert f"database {name!r}" in text, text
    assert f"(host 127.0.0.1:{server.port})" in text, text
    assert f"no answer within {CONNECT_TIMEOUT:.1f} s (connect_timeout)" in text, text
    assert "Fix:" in text, text
    assert ":pw@" not in text, text  # the password never shows


def timed(fn: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


# -- direct connects, sync and async, every server driver --------------------------------
def _session(db: Database) -> None:
    with db.session() as session:
        session.connection()


SYNC_WAYS: dict[str, Callable[[Database], object]] = {
    "connect": lambda db: db.connect().close(),
    "execute_query": lambda db: db.execute_query("SELECT 1"),
    "session": _session,
}


@pytest.mark.parametrize("way", list(SYNC_WAYS))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_sync_connect_ends_within_connect_timeout(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str, way: str
) -> None:
    name = f"silent_{scheme}_{way}"
    with _silent_db(silent, scheme, name) as db:
        took, error = timed(lambda: SYNC_WAYS[way](db))
        assert isinstance(error, ConnectError), repr(error)
        assert took < BOUND, f"{scheme} {way} took {took:.1f}s"
        assert took >= CONNECT_TIMEOUT * 0.9, "gave up before the timeout: not a real wait"
        assert_timeout_message(error, name, silent)
        assert silent.accepted >= 1  # it really reached the silent server
    assert_no_thread_left(threads_before, within=0.5)


async def _async_connect(db: Database) -> None:
    async with db.async_connect() as conn:
        await conn.close()


async def _async_query(db: Database) -> None:
    await db.async_execute_query("SELECT 1")


async def _async_session(db: Database) -> None:
    async with db.async_session() as session:
        await session.connection()


ASYNC_WAYS = {
    "async_connect": _async_connect,
    "async_execute_query": _async_query,
    "async_session": _async_session,
}


@pytest.mark.parametrize("way", list(ASYNC_WAYS))
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_async_connect_ends_within_connect_timeout(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str, way: str
) -> None:
    name = f"silent_async_{scheme}_{way}"
    with _silent_db(silent, scheme, name) as db:
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await ASYNC_WAYS[way](db)
        took = time.monotonic() - started
        assert took < BOUND, f"{scheme} {way} took {took:.1f}s"
        assert took >= CONNECT_TIMEOUT * 0.9
        assert_timeout_message(caught.value, name, silent)
        # Not a bare TimeoutError underneath either: nothing chained to leak or confuse.
        assert caught.value.__cause__ is None
        assert silent.accepted >= 1
    assert_no_thread_left(threads_before, within=0.5)


def test_mysql_default_connect_timeout_is_ten_seconds(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    """Without connect_timeout, PyMySQL's handshake used to wait forever."""
    db = dbwire.connect(f"mysql://app:pw@127.0.0.1:{silent.port}/app", name="silent_default")
    try:
        took, error = timed(lambda: db.execute_query("SELECT 1"))
    finally:
        db.close()
    assert isinstance(error, ConnectError)
    assert "no answer within 10.0 s (connect_timeout)" in str(error)
    assert 9.0 <= took < 10.0 + MARGIN, f"took {took:.1f}s"
    assert_no_thread_left(threads_before, within=0.5)


async def test_asyncpg_default_connect_timeout_is_ten_seconds(silent: SilentServer) -> None:
    db = dbwire.connect(f"postgresql://app:pw@127.0.0.1:{silent.port}/app", name="silent_apg")
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError, match=r"no answer within 10\.0 s"):
            await db.async_execute_query("SELECT 1")
        assert time.monotonic() - started < 10.0 + MARGIN
    finally:
        await db.aclose()


# -- the DuckDB store ------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
@pytest.mark.parametrize("configured", [True, False], ids=["connect_timeout=2", "default"])
def test_store_attach_ends_within_connect_timeout(
    silent: SilentServer,
    threads_before: set[threading.Thread],
    scheme: str,
    configured: bool,
) -> None:
    name = f"silent_attach_{scheme}_{configured}"
    overrides = {} if configured else {"connect_timeout": None}
    limit = CONNECT_TIMEOUT if configured else 10.0
    with (
        _silent_db(silent, scheme, name, **overrides) as db,
        dbwire.get_duckdb_connection() as store,
    ):
        took, error = timed(lambda: store.attach(db))
        assert isinstance(error, ConnectError), repr(error)
        assert took < limit + MARGIN, f"attach took {took:.1f}s"
        text = str(error)
        assert f"database {name!r}" in text and f"127.0.0.1:{silent.port}" in text, text
        assert f"no answer within {limit:.1f} s (connect_timeout)" in text, text
        # The store is not wedged behind a hung ATTACH, and kept nothing half-attached.
        assert store.execute("SELECT 42").fetchone() == (42,)
        assert store.attached == {}
    assert_no_thread_left(threads_before, within=0.5)


# -- health, wait, setup: return on time, and their threads end too ------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_health_check_is_unhealthy_on_time_and_its_thread_ends(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str
) -> None:
    name = f"silent_health_{scheme}"
    with _silent_db(silent, scheme, name, health_timeout=HEALTH_TIMEOUT) as db:
        started = time.monotonic()
        result = db.health_check()
        took = time.monotonic() - started
        assert result.status == "unhealthy"
        assert took < HEALTH_TIMEOUT + MARGIN, f"health_check took {took:.1f}s"
        assert result.error is not None and f"database {name!r}" in result.error
        assert f"127.0.0.1:{silent.port}" in result.error
        # The probe thread is still connecting; the connect timeout ends it.
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT - took + MARGIN)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_health_check_longer_than_connect_timeout_reports_the_timeout(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str
) -> None:
    name = f"silent_health_long_{scheme}"
    with _silent_db(silent, scheme, name, health_timeout=CONNECT_TIMEOUT + 3) as db:
        started = time.monotonic()
        result = db.health_check()
        took = time.monotonic() - started
        assert result.status == "unhealthy"
        assert took < BOUND, f"health_check took {took:.1f}s"
        assert result.error is not None
        assert_timeout_message(ConnectError(result.error), name, silent)
    assert_no_thread_left(threads_before, within=0.5)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_async_health_check_is_unhealthy_on_time(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str
) -> None:
    name = f"silent_ahealth_{scheme}"
    with _silent_db(silent, scheme, name, health_timeout=HEALTH_TIMEOUT) as db:
        started = time.monotonic()
        result = await db.async_health_check()
        took = time.monotonic() - started
        assert result.status == "unhealthy"
        assert took < HEALTH_TIMEOUT + MARGIN, f"async_health_check took {took:.1f}s"
        assert result.error is not None and f"database {name!r}" in result.error
        assert f"127.0.0.1:{silent.port}" in result.error
    assert_no_thread_left(threads_before, within=0.5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_wait_gives_up_on_time_and_leaves_no_thread(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str
) -> None:
    name = f"silent_wait_{scheme}"
    with _silent_db(silent, scheme, name, health_timeout=HEALTH_TIMEOUT) as db:
        took, error = timed(lambda: db.wait(timeout=3.0))
        assert isinstance(error, ConnectError), repr(error)
        assert took < 3.0 + MARGIN, f"wait took {took:.1f}s"
        assert f"database {name!r}" in str(error) and str(silent.port) in str(error)
        assert "within 3s" in str(error)
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_async_wait_gives_up_on_time(
    silent: SilentServer, threads_before: set[threading.Thread], scheme: str
) -> None:
    name = f"silent_await_{scheme}"
    with _silent_db(silent, scheme, name, health_timeout=HEALTH_TIMEOUT) as db:
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await db.async_wait(timeout=3.0)
        took = time.monotonic() - started
        assert took < 3.0 + MARGIN, f"async_wait took {took:.1f}s"
        assert f"database {name!r}" in str(caught.value)
        assert str(silent.port) in str(caught.value)
    assert_no_thread_left(threads_before, within=0.5)


def _silent_manager(silent: SilentServer, health_timeout: float) -> Manager:
    common = {"connect_timeout": CONNECT_TIMEOUT, "health_timeout": health_timeout}
    return Manager.from_config(
        {
            "databases": {
                f"m_{scheme}": {"url": f"{scheme}://app:pw@127.0.0.1:{silent.port}/app", **common}
                for scheme in SCHEMES
            }
        }
    )


def test_manager_setup_records_every_silent_database_on_time(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    manager = _silent_manager(silent, health_timeout=HEALTH_TIMEOUT)
    try:
        took, error = timed(manager.setup)
        assert error is None  # a failing database is recorded, not raised
        assert took < HEALTH_TIMEOUT + MARGIN, f"setup took {took:.1f}s"
        assert set(manager.errors) == {f"m_{scheme}" for scheme in SCHEMES}
        for name, err in manager.errors.items():
            assert isinstance(err, ConnectError)
            assert f"database {name!r}" in str(err) and str(silent.port) in str(err)
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)
    finally:
        manager.close_all()


def test_manager_setup_with_retries_reports_the_connect_timeout(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    manager = _silent_manager(silent, health_timeout=CONNECT_TIMEOUT + 3)
    try:
        took, _ = timed(manager.setup)
        assert took < BOUND, f"setup took {took:.1f}s"
        for name, err in manager.errors.items():
            assert_timeout_message(err, name, silent)
    finally:
        manager.close_all()
    assert_no_thread_left(threads_before, within=0.5)


def test_manager_health_check_answers_in_one_timeout(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    manager = _silent_manager(silent, health_timeout=HEALTH_TIMEOUT)
    try:
        started = time.monotonic()
        results = manager.health_check()
        took = time.monotonic() - started
        assert took < HEALTH_TIMEOUT + MARGIN, f"health_check took {took:.1f}s"
        assert {name: r.status for name, r in results.items()} == {
            f"m_{scheme}": "unhealthy" for scheme in SCHEMES
        }
        for name, result in results.items():
            assert result.error is not None and f"database {name!r}" in result.error
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)
    finally:
        manager.close_all()


# -- a server that falls silent after the login ----------------------------------------
@pytest.fixture(params=["postgresql", "mysql"])
def muting(request: pytest.FixtureRequest) -> Iterator[tuple[str, MutingProxy]]:
    """A proxy to the real server (PostgreSQL or MariaDB) that can fall silent."""
    fixture = "pg_url" if request.param == "postgresql" else "mysql_url"
    url = make_url(request.getfixturevalue(fixture))
    assert url.host is not None and url.port is not None
    with MutingProxy(url.host, url.port) as proxy:
        through = url.set(host=proxy.host, port=proxy.port)
        yield through.render_as_string(hide_password=False), proxy


@pytest.mark.parametrize("idle", [0.0, 1.5], ids=["fresh", "idle-pinged"])
def test_health_check_of_a_server_hung_after_login_ends_its_thread(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread], idle: float
) -> None:
    """The health query (or the idle pre-ping before it) blocks on an established
    connection; at the deadline the probe's socket is shut down, so its thread ends."""
    url, proxy = muting
    db = dbwire.connect(
        url, name="hung_after_login", health_timeout=HEALTH_TIMEOUT, connect_timeout=2
    )
    try:
        assert db.health_check().healthy
        time.sleep(idle)  # past pre_ping_idle (1 s): the checkout pings first
        proxy.mute()
        started = time.monotonic()
        result = db.health_check()
        took = time.monotonic() - started
        assert result.status == "unhealthy"
        assert took < HEALTH_TIMEOUT + MARGIN, f"health_check took {took:.1f}s"
        assert result.error is not None and "did not answer the health query" in result.error
        # A retry after the dropped connection dials again; the connect timeout ends it.
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)
    finally:
        db.close()


def test_manager_wait_gives_up_on_time_naming_every_database(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    manager = _silent_manager(silent, health_timeout=HEALTH_TIMEOUT)
    try:
        took, error = timed(lambda: manager.wait(timeout=2.0))
        assert isinstance(error, ConnectError), repr(error)
        assert took < 2.0 + MARGIN, f"manager.wait took {took:.1f}s"
        for scheme in SCHEMES:
            assert f"m_{scheme}" in str(error)
        assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)
    finally:
        manager.close_all()


async def test_manager_async_health_check_answers_in_one_timeout(
    silent: SilentServer, threads_before: set[threading.Thread]
) -> None:
    manager = _silent_manager(silent, health_timeout=HEALTH_TIMEOUT)
    try:
        started = time.monotonic()
        results = await manager.async_health_check()
        took = time.monotonic() - started
        assert took < HEALTH_TIMEOUT + MARGIN, f"async_health_check took {took:.1f}s"
        assert {r.status for r in results.values()} == {"unhealthy"}
        assert set(results) == {f"m_{scheme}" for scheme in SCHEMES}
    finally:
        await manager.aclose_all()
    assert_no_thread_left(threads_before, within=0.5)


async def test_async_health_and_aclose_of_a_server_hung_after_login_end_on_time(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread]
) -> None:
    url, proxy = muting
    db = dbwire.connect(
        url, name="hung_after_login_async", health_timeout=HEALTH_TIMEOUT, connect_timeout=2
    )
    try:
        assert (await db.async_health_check()).healthy
        async with db.async_connect() as a, db.async_connect() as b:  # two pooled
            await a.exec_driver_sql("SELECT 1")
            await b.exec_driver_sql("SELECT 1")
        proxy.mute()
        started = time.monotonic()
        result = await db.async_health_check()
        took = time.monotonic() - started
        assert result.status == "unhealthy"
        assert took < HEALTH_TIMEOUT + MARGIN, f"async_health_check took {took:.1f}s"
    finally:
        started = time.monotonic()
        await db.aclose()  # closing politely must not wait on a server that never answers
        took = time.monotonic() - started
    assert took < CONNECT_TIMEOUT + MARGIN, f"aclose took {took:.1f}s"
    assert_no_thread_left(threads_before, within=0.5)


def test_close_of_a_server_hung_after_login_ends_on_time(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread]
) -> None:
    url, proxy = muting
    db = dbwire.connect(url, name="hung_after_login_close", connect_timeout=2)
    with db.connect() as a, db.connect() as b:
        a.exec_driver_sql("SELECT 1")
        b.exec_driver_sql("SELECT 1")
    proxy.mute()
    took, error = timed(db.close)
    assert error is None
    assert took < CONNECT_TIMEOUT + MARGIN, f"close took {took:.1f}s"
    assert_no_thread_left(threads_before, within=0.5)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"])
@pytest.mark.parametrize("scheme", SCHEMES)
async def test_refused_or_unresolvable_connect_is_a_connect_error_on_both_drivers(
    scheme: str, host: str
) -> None:
    """Nothing listening, or a name that does not resolve: ConnectError, sync and async.

    asyncpg raises the socket's own OSError, which SQLAlchemy does not wrap; it must not
    reach the caller raw.
    """
    name = f"refused_{scheme}_{host.split('.')[0]}"
    db = dbwire.connect(
        f"{scheme}://app:pw@{host}:{_closed_port()}/app", name=name, connect_timeout=2
    )
    try:
        with pytest.raises(ConnectError) as sync_caught:
            db.execute_query("SELECT 1")
        with pytest.raises(ConnectError) as async_caught:
            await db.async_execute_query("SELECT 1")
    finally:
        await db.aclose()
    for caught in (sync_caught, async_caught):
        message = str(caught.value)
        assert name in message and "Fix:" in message, message
        assert "pw@" not in message


# -- the checkout pre-ping of a server that fell silent after the login --------------------
# Both ping kinds: dbwire's idle-window ping (a connection idle past pre_ping_idle) and
# SQLAlchemy's pool_pre_ping on every checkout (pre_ping_idle = 0 hands it back).
PING_KINDS: dict[str, dict[str, Any]] = {
    "idle_ping": {"pre_ping_idle": 0.2},
    "pool_pre_ping": {"pre_ping_idle": 0},
}
IDLE_PAST_WINDOW = 0.4
# The ping gives up at the connect timeout, then the checkout dials a new connection,
# which the muted proxy accepts and never answers: a second connect timeout.
PING_BOUND = 2 * CONNECT_TIMEOUT + MARGIN


def _hung_ping_db(url: str, name: str, kind: str) -> Database:
    return dbwire.connect(url, name=name, connect_timeout=CONNECT_TIMEOUT, **PING_KINDS[kind])


def _assert_pings_as_configured(db: Database, kind: str) -> None:
    """The test attacks the ping it names: dbwire's, or SQLAlchemy's on every checkout."""
    pool = db.engine.pool
    assert pool._pre_ping is (kind == "pool_pre_ping")
    assert (hooks_of(pool).idle_s is not None) is (kind == "idle_ping")


@pytest.mark.parametrize("kind", list(PING_KINDS))
@pytest.mark.parametrize("way", list(SYNC_WAYS))
def test_sync_pre_ping_of_a_server_hung_after_login_ends_on_time(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread], way: str, kind: str
) -> None:
    url, proxy = muting
    name = f"hung_ping_{way}_{kind}"
    db = _hung_ping_db(url, name, kind)
    try:
        SYNC_WAYS[way](db)  # one pooled connection, logged in through the proxy
        _assert_pings_as_configured(db, kind)
        time.sleep(IDLE_PAST_WINDOW)
        proxy.mute()
        took, error = timed(lambda: SYNC_WAYS[way](db))
        assert isinstance(error, ConnectError), repr(error)
        assert took < PING_BOUND, f"{way} took {took:.1f}s"
        # Both waits were real: the ping's, then the new connection's.
        assert took >= 2 * CONNECT_TIMEOUT * 0.9, f"{way} gave up after {took:.1f}s"
        assert_timeout_message(error, name, proxy)
    finally:
        db.close()
    assert_no_thread_left(threads_before, within=0.5 + PingWatchdog.LINGER)


@pytest.mark.parametrize("kind", list(PING_KINDS))
def test_sync_pre_ping_waits_for_a_server_that_answers_late(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread], kind: str
) -> None:
    """A slow answer within the timeout is an answer: the pooled connection is kept."""
    url, proxy = muting
    db = _hung_ping_db(url, f"late_ping_{kind}", kind)
    try:
        db.execute_query("SELECT 1")
        time.sleep(IDLE_PAST_WINDOW)
        proxy.mute()
        threading.Timer(CONNECT_TIMEOUT / 2, proxy.unmute).start()
        took, error = timed(lambda: db.execute_query("SELECT 1"))
        assert error is None, repr(error)
        assert CONNECT_TIMEOUT / 2 * 0.9 <= took < CONNECT_TIMEOUT, f"took {took:.1f}s"
        assert db.engine.pool.checkedin() == 1  # the same connection, not a new one
    finally:
        db.close()
    assert_no_thread_left(threads_before, within=0.5 + PingWatchdog.LINGER)


@pytest.mark.parametrize("kind", list(PING_KINDS))
@pytest.mark.parametrize("way", list(ASYNC_WAYS))
async def test_async_pre_ping_of_a_server_hung_after_login_ends_on_time(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread], way: str, kind: str
) -> None:
    url, proxy = muting
    name = f"hung_aping_{way}_{kind}"
    db = _hung_ping_db(url, name, kind)
    try:
        await ASYNC_WAYS[way](db)
        await asyncio.sleep(IDLE_PAST_WINDOW)
        proxy.mute()
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await ASYNC_WAYS[way](db)
        took = time.monotonic() - started
        assert took < PING_BOUND, f"{way} took {took:.1f}s"
        assert took >= 2 * CONNECT_TIMEOUT * 0.9, f"{way} gave up after {took:.1f}s"
        assert_timeout_message(caught.value, name, proxy)
    finally:
        await db.aclose()
    assert_no_thread_left(threads_before, within=0.5)


@pytest.mark.parametrize("kind", list(PING_KINDS))
async def test_async_pre_ping_waits_for_a_server_that_answers_late(
    muting: tuple[str, MutingProxy], kind: str
) -> None:
    url, proxy = muting
    db = _hung_ping_db(url, f"late_aping_{kind}", kind)
    try:
        await db.async_execute_query("SELECT 1")
        await asyncio.sleep(IDLE_PAST_WINDOW)
        proxy.mute()
        asyncio.get_running_loop().call_later(CONNECT_TIMEOUT / 2, proxy.unmute)
        started = time.monotonic()
        await db.async_execute_query("SELECT 1")
        took = time.monotonic() - started
        assert CONNECT_TIMEOUT / 2 * 0.9 <= took < CONNECT_TIMEOUT, f"took {took:.1f}s"
    finally:
        await db.aclose()


def test_sigstopped_postgres_ends_the_pre_ping_on_time(
    pg_server: DatabaseServer, pg_url: str, threads_before: set[threading.Thread]
) -> None:
    """A real server process stopped (SIGSTOP): its backend never answers the ping, and
    the postmaster, stopped too, never answers the new connect. Only this test's own
    backend and the postmaster are stopped, and both go on (SIGCONT) before it ends."""
    postmaster = pg_server.pid
    if postmaster is None:
        pytest.skip("the PostgreSQL server's pid is unknown (an external server)")
    name = "sigstopped_pg"
    db = dbwire.connect(pg_url, name=name, connect_timeout=CONNECT_TIMEOUT, pre_ping_idle=0.2)
    stopped: list[int] = []
    try:
        backend = db.execute_query("SELECT pg_backend_pid() AS pid")[1][0]["pid"]
        time.sleep(IDLE_PAST_WINDOW)
        for pid in (backend, postmaster):
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        took, error = timed(lambda: db.execute_query("SELECT 1"))
        assert isinstance(error, ConnectError), repr(error)
        assert took < PING_BOUND, f"took {took:.1f}s"
        assert f"database {name!r}" in str(error) and "connect_timeout" in str(error)
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        db.close()
    assert_no_thread_left(threads_before, within=0.5 + PingWatchdog.LINGER)
    with dbwire.connect(pg_url, name="after_sigcont") as again:  # the server is back
        assert again.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]


# -- the shared ping watchdog ------------------------------------------------------------
class _SocketHolder:
    """What the watchdog shuts down: an object exposing its socket as PyMySQL does."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock


def test_watchdog_shuts_a_blocked_read_down_at_its_deadline_and_then_ends() -> None:
    watchdog = PingWatchdog()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        started = time.monotonic()
        ticket = watchdog.arm(0.3, _SocketHolder(ours))
        assert ours.recv(1) == b""  # blocks until the shutdown: end-of-file
        took = time.monotonic() - started
        assert watchdog.disarm(ticket) is True  # the ping learns it was cut short
        assert 0.3 * 0.9 <= took < 0.3 + MARGIN
    _until_no_watchdog(watchdog)


def test_watchdog_is_one_thread_and_keeps_no_disarmed_ping() -> None:
    watchdog = PingWatchdog()
    ours, theirs = socket.socketpair()
    with ours, theirs:
        holder = _SocketHolder(ours)
        for _ in range(2000):
            assert watchdog.disarm(watchdog.arm(10.0, holder)) is False
        tickets = [watchdog.arm(10.0 + i / 1000, holder) for i in range(100)]
        for ticket in tickets:
            assert watchdog.disarm(ticket) is False
        assert watchdog._heap == []
        assert [t.name for t in threading.enumerate()].count("dbwire-ping-watchdog") <= 1
        theirs.sendall(b"x")
        assert ours.recv(1) == b"x"  # a disarmed ping's socket was left alone
    _until_no_watchdog(watchdog)


def _until_no_watchdog(watchdog: PingWatchdog) -> None:
    deadline = time.monotonic() + PingWatchdog.LINGER + MARGIN
    while watchdog._thread is not None:
        assert time.monotonic() < deadline, "the idle watchdog thread did not end"
        time.sleep(0.02)


async def test_cancelled_async_query_on_a_server_hung_mid_statement_ends_on_time(
    muting: tuple[str, MutingProxy], threads_before: set[threading.Thread]
) -> None:
    """A task cancelled while its statement waits on a server that fell silent: stopping
    the statement on the server (MySQL's KILL QUERY from a second session) must not make
    the cancellation itself wait forever on that server."""
    url, proxy = muting
    db = dbwire.connect(url, name="hung_mid_statement", connect_timeout=CONNECT_TIMEOUT)
    sleep = "SELECT pg_sleep(30)" if url.startswith("postgresql") else "SELECT SLEEP(30)"
    try:
        db.execute_query("SELECT 1")  # the sync pool holds a connection for the KILL
        await db.async_execute_query("SELECT 1")
        task = asyncio.ensure_future(db.async_execute_query(sleep))
        await asyncio.sleep(0.3)
        proxy.mute()
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        took = time.monotonic() - started
        assert took < 2 * CONNECT_TIMEOUT + MARGIN, f"the cancellation took {took:.1f}s"
    finally:
        started = time.monotonic()
        await db.aclose()
        took = time.monotonic() - started
    assert took < CONNECT_TIMEOUT + MARGIN, f"aclose took {took:.1f}s"
    assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)


def test_session_after_execute_query_on_a_server_hung_after_login_ends_on_time(
    mysql_url: str, threads_before: set[threading.Thread]
) -> None:
    """execute_query leaves autocommit on (MySQL), and the next session's checkout switches
    it off with a round trip: on a server that fell silent that round trip is bounded too."""
    url = make_url(mysql_url)
    assert url.host is not None and url.port is not None
    with MutingProxy(url.host, url.port) as proxy:
        through = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
        db = dbwire.connect(through, name="hung_autocommit", connect_timeout=CONNECT_TIMEOUT)
        try:
            assert db.execute_query("SELECT 1 AS one") == (["one"], [{"one": 1}])
            proxy.mute()
            started = time.monotonic()
            with pytest.raises(ConnectError) as caught, db.session() as session:
                session.execute(text("SELECT 1"))
            took = time.monotonic() - started
            assert took < 2 * CONNECT_TIMEOUT + MARGIN, f"the checkout took {took:.1f}s"
            assert "hung_autocommit" in str(caught.value)
        finally:
            db.close()
    assert_no_thread_left(threads_before, within=CONNECT_TIMEOUT + MARGIN)


def test_cancelling_a_statement_on_a_server_that_fell_silent_gives_up_on_time(
    pg_url: str, threads_before: set[threading.Thread]
) -> None:
    """Stopping a running statement (what `dbwire serve`'s cancel does) opens a cancel
    connection to the server: on a silent server it gives up at the connect timeout, not
    at libpq's own 30 s."""
    url = make_url(pg_url)
    assert url.host is not None and url.port is not None
    with MutingProxy(url.host, url.port) as proxy:
        through = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
        db = dbwire.connect(through, name="hung_cancel", connect_timeout=CONNECT_TIMEOUT)
        raw = db.engine.raw_connection()
        ended = threading.Event()

        def run() -> None:
            with contextlib.suppress(Exception):  # the connection is closed under it
                raw.cursor().execute("SELECT pg_sleep(30)")
            ended.set()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            time.sleep(0.3)
            proxy.mute()
            took, error = timed(lambda: db.backend.cancel(raw.driver_connection, db.engine))
            assert error is not None, "a cancel through a silent server cannot succeed"
            assert took < CONNECT_TIMEOUT + MARGIN, f"the cancel took {took:.1f}s"
        finally:
            raw.invalidate()
            db.close()
    assert ended.wait(CONNECT_TIMEOUT + MARGIN)


def test_a_mysql_cancel_after_a_slow_login_waits_one_connect_timeout_in_all(
    mysql_url: str, threads_before: set[threading.Thread]
) -> None:
    """MySQL's cancel logs in a second session for KILL QUERY: when that login is slow and
    the KILL's reply never comes, the two share one connect timeout."""
    timeout = 3.0
    url = make_url(mysql_url)
    assert url.host is not None and url.port is not None
    with MutingProxy(url.host, url.port) as proxy:
        through = url.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
        db = dbwire.connect(through, name="kill_bound", connect_timeout=timeout)
        raw = db.engine.raw_connection()  # the statement's connection, logged in promptly
        ended = threading.Event()

        def run() -> None:
            # The KILL is swallowed, so the statement runs its course: a short one. (Closing
            # the connection under a running PyMySQL read waits for that read anyway.)
            with contextlib.suppress(Exception):
                raw.cursor().execute(f"SELECT SLEEP({2 * timeout:g})")
            ended.set()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            time.sleep(0.3)
            proxy.delay_new_logins(0.6 * timeout)
            proxy.swallow_statements(b"KILL QUERY")
            took, error = timed(lambda: db.backend.cancel(raw.driver_connection, db.engine))
            assert error is not None, "a KILL whose reply never comes cannot succeed"
            assert took >= 0.6 * timeout * 0.9, f"the login was not slow ({took:.1f}s)"
            assert took < timeout + 0.8, f"the cancel took {took:.1f}s"
        finally:
            raw.invalidate()
            db.close()
    assert ended.wait(2 * timeout + MARGIN)
