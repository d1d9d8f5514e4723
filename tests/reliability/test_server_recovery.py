"""A restarted server and terminated backends cost no failed checkout once the server is up."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dbwire import Database, DatabaseConfig
from servers import DatabaseServer

READERS = 8


class Readers:
    """A pool of reader threads; each checkout and each query is timed and its error kept."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stop = threading.Event()
        self.go = threading.Event()
        self.go.set()
        self.lock = threading.Lock()
        self.busy = 0
        self.checkout_failures: list[tuple[float, str]] = []
        self.query_failures: list[tuple[float, str]] = []
        self.ok = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.go.wait(0.05):
                continue
            with self.lock:
                self.busy += 1
            try:
                self._once()
            finally:
                with self.lock:
                    self.busy -= 1
            time.sleep(0.002)

    def _once(self) -> None:
        started = time.monotonic()
        try:
            conn = self.db.connect()  # the checkout: pre-ping happens here
        except Exception as exc:
            with self.lock:
                self.checkout_failures.append((started, repr(exc)))
            time.sleep(0.02)
            return
        try:
            conn.exec_driver_sql("SELECT 1").scalar_one()
            conn.close()  # ends the transaction: a rollback on the server
            with self.lock:
                self.ok += 1
        except Exception as exc:
            # Killed while checked out (mid-query, or before the rollback): the work
            # fails, not the checkout; SQLAlchemy invalidates the connection.
            with self.lock:
                self.query_failures.append((started, repr(exc)))
            with contextlib.suppress(Exception):
                conn.close()

    def pause(self) -> None:
        """Stop the readers between two checkouts: the pool's connections lie idle."""
        self.go.clear()
        _until(lambda: self.busy == 0, 10)

    def resume(self) -> float:
        """Let the readers go again; the moment they were let go."""
        moment = time.monotonic()
        self.go.set()
        return moment

    def failures_since(self, moment: float) -> list[str]:
        """Checkouts begun at or after moment that failed."""
        with self.lock:
            return [error for started, error in self.checkout_failures if started >= moment]

    def query_failures_since(self, moment: float) -> list[str]:
        """Work begun at or after moment that failed after a successful checkout."""
        with self.lock:
            return [error for started, error in self.query_failures if started >= moment]

    def more_ok(self, count: int, timeout: float = 15) -> None:
        """Wait until count more reads have succeeded."""
        with self.lock:
            target = self.ok + count
        _until(lambda: self.ok >= target, timeout)


def _terminate_backends(server: DatabaseServer) -> int:
    rows = server.query_admin(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE usename = '{server.user}' AND backend_type = 'client backend'"
    )
    return int(rows[0][0])


def _client_backends(server: DatabaseServer) -> int:
    rows = server.query_admin(
        "SELECT count(*) FROM pg_stat_activity "
        f"WHERE usename = '{server.user}' AND backend_type = 'client backend'"
    )
    return int(rows[0][0])


def _until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_readers_recover_from_terminated_backends_and_a_restart(
    pg_server: DatabaseServer, pg_url: str
) -> None:
    db = Database(
        DatabaseConfig(name="recovery", url=pg_url, pool_size=5, max_overflow=5, connect_timeout=2)
    )
    readers = Readers(db)
    executor = ThreadPoolExecutor(READERS)
    futures = [executor.submit(readers.run) for _ in range(READERS)]
    try:
        readers.more_ok(200)

        # 1. Backends killed under running readers: no checkout fails (a reader killed
        #    mid-query loses that query, which is not a checkout).
        terminate_phase = time.monotonic()
        for _ in range(3):
            assert _terminate_backends(pg_server) >= 1
            readers.more_ok(50)
        assert readers.failures_since(terminate_phase) == []

        # 2. Backends killed while every pooled connection lies idle: pre-ping replaces
        #    each at checkout, so nothing at all fails afterwards. Without pre-ping the
        #    first reads would get dead connections and fail here.
        readers.pause()
        assert db.get_pool_status().checked_in
        assert _terminate_backends(pg_server) >= 1
        # pg_terminate_backend only signals; wait until the backends are really gone, so
        # the pooled connections are dead (not dying) when the readers check them out.
        _until(lambda: _client_backends(pg_server) == 0, 10)
        resumed = readers.resume()
        readers.more_ok(100)
        assert readers.failures_since(resumed) == []
        assert readers.query_failures_since(resumed) == []

        # 3. The whole server restarted under running readers.
        pg_server.stop()
        time.sleep(0.3)  # readers meet a server that is down
        outage_failures = len(readers.failures_since(resumed))
        pg_server.start()
        back = time.monotonic()
        readers.more_ok(300)

        # 4. Restarted while the pool lies idle.
        readers.pause()
        pg_server.restart()
        idle_restart = readers.resume()
        readers.more_ok(100)
    finally:
        readers.stop.set()
        readers.go.set()
        for future in futures:
            future.result(timeout=30)
        executor.shutdown()
        if not pg_server.is_running():
            pg_server.start()
    try:
        assert outage_failures > 0, "the outage was not noticed: the test proved nothing"
        assert readers.failures_since(back) == [], "a checkout failed after the server was back"
        assert readers.query_failures_since(back) == []
        assert readers.failures_since(idle_restart) == []
        assert readers.query_failures_since(idle_restart) == []
        status = db.get_pool_status()
        assert status.checked_out == 0
        assert status.checked_in is not None and status.checked_in <= 5
        with db.connect() as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
    finally:
        db.close()


def test_wait_rides_out_a_server_restart(pg_server: DatabaseServer, pg_url: str) -> None:
    db = Database(DatabaseConfig(name="waiter", url=pg_url, connect_timeout=2))
    try:
        db.execute_query("SELECT 1")
        pg_server.stop()
        restarter = threading.Timer(0.8, pg_server.start)
        restarter.start()
        try:
            waited = db.wait(timeout=30)
        finally:
            restarter.join(60)
        assert waited >= 0.5
        # The pool's connection died with the old server; pre-ping replaces it.
        assert db.execute_query("SELECT 2 AS two")[1] == [{"two": 2}]
    finally:
        if not pg_server.is_running():
            pg_server.start()
        db.close()
