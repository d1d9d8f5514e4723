"""Health checks with an enforced deadline (HealthResult) and pool occupancy (PoolStatus)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from dbwire.errors import ConnectError, describe
from dbwire.types import HEALTHY, UNHEALTHY, HealthResult, PoolHolder, PoolStatus, Status

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.pool import Pool

    from dbwire.target import Target

_MAX_ERROR = 500

__all__ = ["HEALTHY", "UNHEALTHY", "HealthResult", "PoolStatus", "Status"]


def pool_status(
    pool: Pool, *, holders: tuple[PoolHolder, ...] = (), waiting: int | None = None
) -> PoolStatus:
    """Read a pool's occupancy; queue pools report every field. `holders` and `waiting`
    come from the pool's tracker (dbwire.observe), when there is one."""
    kind = type(pool).__name__
    from sqlalchemy.pool import QueuePool  # a pool exists: SQLAlchemy is loaded

    if isinstance(pool, QueuePool):
        return PoolStatus(
            size=pool.size(),
            checked_in=pool.checkedin(),
            checked_out=pool.checkedout(),
            overflow=max(0, pool.overflow()),
            max_overflow=pool._max_overflow,
            timeout=pool.timeout(),
            pool_class=kind,
            waiting=waiting,
            holders=holders,
        )
    size = getattr(pool, "size", None)
    return PoolStatus(
        size=size() if callable(size) else None,
        checked_in=None,
        checked_out=None,
        overflow=None,
        pool_class=kind,
        waiting=waiting,
        holders=holders,
    )


# -- checks ------------------------------------------------------------------------
def describe_error(db: Target, exc: BaseException) -> str:
    """One line about exc, safe to show: known passwords and URL passwords masked."""
    try:
        secrets: Iterable[str | None] = db.known_secrets()
    except Exception:  # scrubbing must not fail because a password source is down
        secrets = db.config.secret_values()
    return describe(exc, secrets, limit=_MAX_ERROR, first_line=True)


def _timeout_error(db: Target, timeout: float) -> ConnectError:
    return ConnectError(
        f"database {db.name!r} ({db.url}) did not answer the health query within {timeout:g}s; "
        "check that the server is up and reachable (a firewall that drops packets looks "
        "like this), or raise health_timeout",
        database=db.name,
    )


def health_statement(db: Target) -> str:
    """What a health check runs: the config's health_query, else the backend's (SELECT 1)."""
    return db.config.health_query or db.backend.health_statement()


class Probe:
    """One health check running in its own daemon thread, so a hung server cannot block.

    A connect ends within connect_timeout on its own; a health query on an established
    connection to a server that stopped answering would not, so at the deadline the
    caller shuts that connection's socket down and the thread ends with it.
    """

    def __init__(self, db: Target, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._elapsed = 0.0
        self._started = perf_counter()
        self._deadline = self._started + timeout
        self._connection: Any = None
        statement = health_statement(db)
        if db.backend.has_engine:
            try:
                # Built here, not in the thread: engine creation does no I/O, and several
                # threads importing the same SQLAlchemy dialect at once can fail
                # ("cannot access submodule ... most likely due to a circular import").
                db.engine  # noqa: B018 - the property builds the engine
            except Exception as exc:
                self._error = exc
                self._done.set()
                return

        def ping() -> object:
            # execute_query: one round trip on drivers that allow it (bench/RESULTS.md);
            # a backend without an engine (s3) answers it itself.
            return db.execute_query(statement)

        threading.Thread(
            target=self._run, args=(ping,), name=f"dbwire-health-{db.name}", daemon=True
        ).start()

    def _run(self, ping: Callable[[], object]) -> None:
        # The pool module loads with the engine, which this check has built by now.
        from dbwire.pool import CHECKOUT_WATCH

        CHECKOUT_WATCH.set(self._watch)
        try:
            ping()
        except Exception as exc:
            self._error = exc
        finally:
            self._elapsed = perf_counter() - self._started
            self._done.set()

    def _watch(self, dbapi_connection: Any) -> None:
        self._connection = dbapi_connection

    def outcome(self) -> tuple[HealthResult, BaseException | None]:
        """Wait until the check ends or its deadline passes; the result and the error."""
        finished = self._done.wait(max(0.0, self._deadline - perf_counter()))
        db = self.db
        if not finished:
            connection = self._connection
            if connection is not None and not self._done.is_set():
                from dbwire.pool import shutdown_socket

                # The query is stuck on an established connection: end the thread too.
                shutdown_socket(connection)
            error: BaseException = _timeout_error(db, self.timeout)
            elapsed_ms = (perf_counter() - self._started) * 1000.0
            return _result(db, elapsed_ms, error), error
        return _result(db, self._elapsed * 1000.0, self._error), self._error

    def result(self) -> HealthResult:
        """Wait for the outcome and return only the HealthResult."""
        return self.outcome()[0]


def _result(db: Target, elapsed_ms: float, error: BaseException | None) -> HealthResult:
    if error is None:
        return HealthResult(db.name, HEALTHY, round(elapsed_ms, 3), None, db.backend.name)
    return HealthResult(
        db.name, UNHEALTHY, round(elapsed_ms, 3), describe_error(db, error), db.backend.name
    )


def check(db: Target, timeout: float | None = None) -> HealthResult:
    """Run the backend's health query through the pool, answering within timeout seconds."""
    return Probe(db, timeout or db.config.health_timeout).result()


def unbuilt(name: str, error: BaseException) -> HealthResult:
    """The result for a database that could not even be built: unhealthy, with the error."""
    return HealthResult(name, UNHEALTHY, 0.0, describe(error, limit=_MAX_ERROR), None)


def check_many(
    dbs: Mapping[str, Target | BaseException], timeout: float | None = None
) -> dict[str, HealthResult]:
    """Check every database at once: the answer takes about one timeout, not one per database.

    A name mapped to an exception (a database that could not even be built) is reported
    unhealthy with that error.
    """
    probes: dict[str, Probe | HealthResult] = {}
    for name, db in dbs.items():
        if isinstance(db, BaseException):
            probes[name] = unbuilt(name, db)
        else:
            probes[name] = Probe(db, timeout or db.config.health_timeout)
    return {
        name: probe if isinstance(probe, HealthResult) else probe.result()
        for name, probe in probes.items()
    }


# Health checks given up at their deadline, still cleaning up (kept so they are not
# garbage-collected mid-way; each removes itself when done).
_ABANDONED: set[asyncio.Future[Any]] = set()


def _forget_abandoned(task: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: asyncio must not log it as never retrieved


async def async_outcome(
    db: Target, timeout: float | None = None
) -> tuple[HealthResult, BaseException | None]:
    """The async check through the async engine; the result and the error.

    The check runs as its own task and the answer comes at the deadline even when the
    cancelled check is still cleaning up: SQLAlchemy closes a connection interrupted
    mid-query politely, shielded from cancellation, which on a server that stopped
    answering takes seconds more.
    """
    import asyncio

    limit = timeout or db.config.health_timeout
    started = perf_counter()
    # The same statement through the same query path as Probe: only the IO is async.
    task = asyncio.ensure_future(db.async_execute_query(health_statement(db)))
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except asyncio.CancelledError:
        task.cancel()
        raise
    error: BaseException | None
    if task in done:
        error = None if task.cancelled() else task.exception()
    else:
        task.cancel()
        _ABANDONED.add(task)
        task.add_done_callback(_forget_abandoned)
        error = _timeout_error(db, limit)
    return _result(db, (perf_counter() - started) * 1000.0, error), error


async def async_check(db: Target, timeout: float | None = None) -> HealthResult:
    """The async twin of check()."""
    return (await async_outcome(db, timeout))[0]
