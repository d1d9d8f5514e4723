"""Health checks with an enforced deadline (HealthResult) and pool occupancy (PoolStatus)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.pool import Pool, QueuePool

from dbwire.errors import ConnectError, describe

if TYPE_CHECKING:
    from dbwire.database import Database

Status = Literal["healthy", "unhealthy"]
HEALTHY: Status = "healthy"
UNHEALTHY: Status = "unhealthy"
_MAX_ERROR = 500


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one health check.

    Reads as attributes (`result.status`) and, for seed 003's code, as a mapping
    (`result["status"]`).
    """

    name: str
    status: Status
    response_time_ms: float
    error: str | None = None
    backend: str | None = None

    @property
    def healthy(self) -> bool:
        """True when the database answered the health query in time."""
        return self.status == HEALTHY

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class PoolStatus:
    """How full a connection pool is right now.

    `overflow` counts connections open beyond pool_size at this moment (0 when the pool
    is within its size); None marks a number this kind of pool does not keep.
    """

    size: int | None
    checked_in: int | None
    checked_out: int | None
    overflow: int | None
    max_overflow: int | None = None
    timeout: float | None = None
    pool_class: str = ""

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def pool_status(pool: Pool) -> PoolStatus:
    """Read a pool's occupancy; queue pools report every field."""
    kind = type(pool).__name__
    if isinstance(pool, QueuePool):
        return PoolStatus(
            size=pool.size(),
            checked_in=pool.checkedin(),
            checked_out=pool.checkedout(),
            overflow=max(0, pool.overflow()),
            max_overflow=pool._max_overflow,
            timeout=pool.timeout(),
            pool_class=kind,
        )
    size = getattr(pool, "size", None)
    return PoolStatus(
        size=size() if callable(size) else None,
        checked_in=None,
        checked_out=None,
        overflow=None,
        pool_class=kind,
    )


# -- checks ------------------------------------------------------------------------
def describe_error(db: Database, exc: BaseException) -> str:
    """One line about exc, safe to show: known passwords and URL passwords masked."""
    try:
        secrets: Iterable[str | None] = db.known_secrets()
    except Exception:  # scrubbing must not fail because a password source is down
        secrets = db.config.secret_values()
    return describe(exc, secrets, limit=_MAX_ERROR, first_line=True)


def _timeout_error(db: Database, timeout: float) -> ConnectError:
    return ConnectError(
        f"database {db.name!r} ({db.url}) did not answer the health query within {timeout:g}s; "
        "check that the server is up and reachable (a firewall that drops packets looks "
        "like this), or raise health_timeout",
        database=db.name,
    )


class Probe:
    """One health check running in its own daemon thread, so a hung server cannot block.

    The thread itself ends when the driver gives up (connect_timeout); the caller
    stops waiting at the deadline either way.
    """

    def __init__(self, db: Database, timeout: float) -> None:
        self.db = db
        self.timeout = timeout
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._elapsed = 0.0
        self._started = perf_counter()
        self._deadline = self._started + timeout
        query = db.config.health_query or db.backend.health_statement()
        ping: Callable[[], object]
        if not getattr(db.backend, "has_engine", True):
            # A backend without a SQLAlchemy engine (s3) answers queries itself.
            def ping() -> object:
                return db.execute_query(query)
        else:
            try:
                # Built here, not in the thread: engine creation does no I/O, and several
                # threads importing the same SQLAlchemy dialect at once can fail
                # ("cannot access submodule ... most likely due to a circular import").
                _ = db.engine
            except Exception as exc:
                self._error = exc
                self._done.set()
                return

            def ping() -> object:
                # execute_query: one round trip on drivers that allow it (bench/RESULTS.md)
                return db.execute_query(query)

        threading.Thread(
            target=self._run, args=(ping,), name=f"dbwire-health-{db.name}", daemon=True
        ).start()

    def _run(self, ping: Callable[[], object]) -> None:
        try:
            ping()
        except Exception as exc:
            self._error = exc
        finally:
            self._elapsed = perf_counter() - self._started
            self._done.set()

    def outcome(self) -> tuple[HealthResult, BaseException | None]:
        """Wait until the check ends or its deadline passes; the result and the error."""
        finished = self._done.wait(max(0.0, self._deadline - perf_counter()))
        db = self.db
        if not finished:
            error: BaseException = _timeout_error(db, self.timeout)
            elapsed_ms = (perf_counter() - self._started) * 1000.0
            return _result(db, elapsed_ms, error), error
        return _result(db, self._elapsed * 1000.0, self._error), self._error

    def result(self) -> HealthResult:
        """Wait for the outcome and return only the HealthResult."""
        return self.outcome()[0]


def _result(db: Database, elapsed_ms: float, error: BaseException | None) -> HealthResult:
    if error is None:
        return HealthResult(db.name, HEALTHY, round(elapsed_ms, 3), None, db.backend.name)
    return HealthResult(
        db.name, UNHEALTHY, round(elapsed_ms, 3), describe_error(db, error), db.backend.name
    )


def check(db: Database, timeout: float | None = None) -> HealthResult:
    """Run the backend's health query through the pool, answering within timeout seconds."""
    return Probe(db, timeout or db.config.health_timeout).result()


def check_many(
    dbs: Mapping[str, Database | BaseException], timeout: float | None = None
) -> dict[str, HealthResult]:
    """Check every database at once: the answer takes about one timeout, not one per database.

    A name mapped to an exception (a database that could not even be built) is reported
    unhealthy with that error.
    """
    probes: dict[str, Probe | HealthResult] = {}
    for name, db in dbs.items():
        if isinstance(db, BaseException):
            text = describe(db, limit=_MAX_ERROR)
            probes[name] = HealthResult(name, UNHEALTHY, 0.0, text, None)
        else:
            probes[name] = Probe(db, timeout or db.config.health_timeout)
    return {
        name: probe if isinstance(probe, HealthResult) else probe.result()
        for name, probe in probes.items()
    }


async def async_outcome(
    db: Database, timeout: float | None = None
) -> tuple[HealthResult, BaseException | None]:
    """The async check through the async engine; the result and the error."""
    limit = timeout or db.config.health_timeout
    started = perf_counter()
    error: BaseException | None = None
    deadline = asyncio.timeout(limit)
    try:
        async with deadline:
            if getattr(db.backend, "has_engine", True):
                async with db.async_engine.connect() as conn:
                    result = await conn.exec_driver_sql(
                        db.config.health_query or db.backend.health_statement()
                    )
                    result.all()
            else:
                await db.async_execute_query(
                    db.config.health_query or db.backend.health_statement()
                )
    except Exception as exc:
        # asyncio.timeout raises TimeoutError; so may a driver, and PoolTimeoutError is one
        # too: only an expired deadline means "no answer in time".
        error = _timeout_error(db, limit) if deadline.expired() else exc
    return _result(db, (perf_counter() - started) * 1000.0, error), error


async def async_check(db: Database, timeout: float | None = None) -> HealthResult:
    """The async twin of check()."""
    return (await async_outcome(db, timeout))[0]
