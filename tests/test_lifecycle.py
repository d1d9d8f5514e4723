"""Waiting for a server with backoff and jitter; fork-safety bookkeeping."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbwire import ConnectError, Database, DatabaseConfig, lifecycle
from dbwire.lifecycle import backoff_delays
from servers import DatabaseServer, free_port


class LateListener:
    """A loopback port that refuses connections until `opens_after`, then forwards each
    connection to a real server, so a client sees a server that comes up late.
    """

    def __init__(self, target_port: int, opens_after: float) -> None:
        self.target_port = target_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connect() is refused
        self.port: int = self.sock.getsockname()[1]
        self.opened_at: float | None = None
        self._stop = threading.Event()
        self._timer = threading.Timer(opens_after, self._open)
        self._timer.start()

    def _open(self) -> None:
        self.sock.listen(64)
        self.opened_at = time.monotonic()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._timer.cancel()
        self._stop.set()
        self.sock.close()


@pytest.fixture
def late_pg(pg_server: DatabaseServer, pg_url: str) -> Iterator[tuple[LateListener, str]]:
    """A PostgreSQL URL whose server starts accepting connections after 1.2 s."""
    late = LateListener(pg_server.port, opens_after=1.2)
    url = pg_url.replace(f":{pg_server.port}/", f":{late.port}/")
    yield late, url
    late.close()


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    delays = backoff_delays(base=0.1, cap=1.0, rng=random.Random(7))
    taken = [next(delays) for _ in range(10)]
    ceilings = [min(1.0, 0.1 * 2**n) for n in range(10)]
    for delay, ceiling in zip(taken, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert max(taken) <= 1.0
    assert taken[4] > taken[0] * 2  # it grows ...
    other = backoff_delays(base=0.1, cap=1.0, rng=random.Random(8))
    assert taken != [next(other) for _ in range(10)]  # ... and clients do not retry in step


def test_wait_returns_once_the_server_accepts(late_pg: tuple[LateListener, str]) -> None:
    late, url = late_pg
    db = Database(DatabaseConfig(name="late", url=url))
    try:
        waited = db.wait(timeout=20)
        assert late.opened_at is not None
        assert 1.0 <= waited < 6.0
        with db.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        db.close()


async def test_async_wait_returns_once_the_server_accepts(
    late_pg: tuple[LateListener, str],
) -> None:
    late, url = late_pg
    db = Database(DatabaseConfig(name="alate", url=url))
    try:
        waited = await db.async_wait(timeout=20)
        assert late.opened_at is not None and waited >= 1.0
        _, rows = await db.async_execute_query("SELECT 1 AS one")
        assert rows == [{"one": 1}]
    finally:
        await db.aclose()


def test_wait_gives_up_after_the_timeout_with_a_clear_error() -> None:
    secret = "hunter2-wait"
    port = free_port()
    db = Database(DatabaseConfig(name="never", url=f"postgresql://a:{secret}@127.0.0.1:{port}/x"))
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            db.wait(timeout=1.0)
        elapsed = time.monotonic() - started
        assert 0.95 <= elapsed < 2.5, "tries until the deadline, and not much longer"
        message = str(caught.value)
        assert "database 'never'" in message
        assert "did not accept connections within 1s" in message
        assert "attempts" in message and "Fix:" in message
        assert secret not in message
    finally:
        db.close()


def test_wait_stops_at_once_on_a_rejected_password(pg_server: DatabaseServer, pg_url: str) -> None:
    url = f"postgresql://{pg_server.user}:wrong@127.0.0.1:{pg_server.port}/{pg_server.database}"
    db = Database(DatabaseConfig(name="denied", url=url))
    try:
        started = time.monotonic()
        with pytest.raises(ConnectError, match="check the password"):
            db.wait(timeout=30)
        assert time.monotonic() - started < 5, "a wrong password must not be retried for 30 s"
    finally:
        db.close()


def test_every_database_is_tracked_for_fork_safety(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="tracked", url=f"sqlite:///{tmp_path / 't.db'}"))
    assert db in set(lifecycle._live)
    assert lifecycle.fork_safety_enabled()
    db.close()
    del db
    import gc

    gc.collect()
    assert not [d for d in lifecycle._live if getattr(d, "name", None) == "tracked"]


def test_reset_after_fork_gives_fresh_pools_and_counters(pg_url: str) -> None:
    db = Database(DatabaseConfig(name="reset", url=pg_url))
    try:
        db.execute_query("SELECT 1")
        pool_before = db.engine.pool
        lock_before = db._lock
        lifecycle.reset_after_fork()  # what the after-fork hook runs in a child
        assert db.engine.pool is not pool_before
        assert db._lock is not lock_before
        assert db.get_stats().queries == 0
        assert pool_before.checkedin() == 1, "the old pool's connection was left untouched"
        db.execute_query("SELECT 1")
    finally:
        pool_before.dispose()
        db.close()
