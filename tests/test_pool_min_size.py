"""pool_min_size: that many connections open in the background at setup and stay pooled."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

import dbwire
from dbwire import ConfigError, ConnectError, Database, DatabaseConfig, Manager


def _app_url(pg_url: str, app: str) -> str:
    return f"{pg_url}{'&' if '?' in pg_url else '?'}application_name={app}"


def _connections_of(observer: Database, app: str) -> int:
    rows = observer.execute_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = :app", {"app": app}
    )[1]
    return int(rows[0]["n"])


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def observer(pg_url: str) -> Iterator[Database]:
    """A second Database that reads pg_stat_activity."""
    db = Database(DatabaseConfig(name="min_observer", url=pg_url))
    yield db
    db.close()


def test_sync_pool_opens_min_size_at_setup_without_a_session(
    pg_url: str, observer: Database
) -> None:
    app = "dbwire_min_sync"
    db = Database(
        DatabaseConfig(name="min_sync", url=_app_url(pg_url, app), pool_min_size=3, pool_size=5)
    )
    try:
        started = time.monotonic()
        engine = db.engine  # setup: the first engine
        assert time.monotonic() - started < 1.0  # the opens run in the background
        assert _eventually(lambda: _connections_of(observer, app) == 3)
        assert _eventually(lambda: engine.pool.checkedin() == 3)  # type: ignore[attr-defined]
        assert db.get_stats().queries == 0  # nothing of the application's ran
        # They stay: still three a moment later, and a query reuses one of them.
        time.sleep(0.3)
        assert _connections_of(observer, app) == 3
        assert db.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
        assert _connections_of(observer, app) == 3
    finally:
        db.close()
    assert _eventually(lambda: _connections_of(observer, app) == 0)


async def test_async_pool_opens_min_size_at_setup(pg_url: str, observer: Database) -> None:
    app = "dbwire_min_async"
    db = Database(
        DatabaseConfig(name="min_async", url=_app_url(pg_url, app), pool_min_size=2, pool_size=4)
    )
    try:
        engine = db.async_engine
        deadline = time.monotonic() + 15.0
        pool = engine.sync_engine.pool
        while time.monotonic() < deadline and pool.checkedin() < 2:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
        assert _connections_of(observer, app) == 2
        assert db.get_stats().queries == 0
    finally:
        await db.aclose()


def test_manager_setup_fills_the_pool(pg_url: str, observer: Database) -> None:
    app = "dbwire_min_manager"
    manager = Manager.from_config(
        {"databases": {"m": {"url": _app_url(pg_url, app), "pool_min_size": 3}}}
    )
    try:
        manager.setup()
        assert _eventually(lambda: _connections_of(observer, app) >= 3)
    finally:
        manager.close_all()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failing_server_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://app:min-secret-pw@127.0.0.1:{_closed_port()}/app"
    db = Database(DatabaseConfig(name="min_down", url=url, pool_min_size=2, connect_timeout=2))
    try:
        with caplog.at_level(logging.WARNING, logger="dbwire"):
            started = time.monotonic()
            db.engine  # noqa: B018 - setup must not raise or block
            assert time.monotonic() - started < 1.0
            assert _eventually(lambda: "could not open pool_min_size" in caplog.text, 10.0)
        assert "min_down" in caplog.text
        assert "min-secret-pw" not in caplog.text
        with pytest.raises(ConnectError) as raised:
            db.execute_query("SELECT 1")
        assert "min-secret-pw" not in str(raised.value)
    finally:
        db.close()


@pytest.mark.parametrize(
    ("settings", "limit"),
    [
        ({"pool_min_size": 16}, "5 + max_overflow 10 = 15"),
        ({"pool_min_size": 3, "pool_size": 1, "max_overflow": 1}, "= 2"),
    ],
)
def test_min_size_beyond_the_pool_is_a_config_error(
    pg_url: str, settings: dict[str, int], limit: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Database(DatabaseConfig(name="min_big", url=pg_url, **settings))
    text = str(raised.value)
    assert "'min_big'" in text and "pool_min_size" in text and limit in text
    assert "lower pool_min_size or raise pool_size" in text


def test_negative_min_size_is_a_config_error(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="pool_min_size"):
        dbwire.connect(pg_url, name="min_negative", pool_min_size=-1)


def test_unbounded_overflow_takes_any_min_size(pg_url: str) -> None:
    db = Database(
        DatabaseConfig(name="min_unbounded", url=pg_url, pool_min_size=30, max_overflow=-1)
    )
    db.close()


def test_min_size_from_the_environment_is_checked_like_any_field() -> None:
    config = {"databases": {"main": {"url": "sqlite://"}}}
    with pytest.raises(ConfigError, match="DBWIRE_MAIN__POOL_MIN_SIZE='ten' is not a valid int"):
        dbwire.load_config(config, environ={"DBWIRE_MAIN__POOL_MIN_SIZE": "ten"})
    loaded = dbwire.load_config(config, environ={"DBWIRE_MAIN__POOL_MIN_SIZE": "2"})
    assert loaded.database("main").pool_min_size == 2
    assert loaded.database("main").field_source("pool_min_size") == "env DBWIRE_MAIN__POOL_MIN_SIZE"
