"""Pool behaviour: a checkout timeout that says what to raise, and the idle-window pre-ping."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool, QueuePool

from dbwire.errors import PoolTimeoutError


def pool_timeout_error(pool: QueuePool, database: str) -> PoolTimeoutError:
    """The error for a pool that ran dry: its size, overflow, use, and the settings to raise."""
    size = pool.size()
    max_overflow = pool._max_overflow
    overflow = "unlimited" if max_overflow < 0 else str(max_overflow)
    return PoolTimeoutError(
        f"database {database!r}: no pooled connection came free within "
        f"pool_timeout={pool.timeout():g}s; {pool.checkedout()} connections are checked out "
        f"(pool_size={size}, max_overflow={overflow}). Fix: raise pool_size or max_overflow "
        f"for {database!r} (or pool_timeout to wait longer), or return connections sooner: "
        "a session or connection held open across slow work keeps one checked out",
        database=database,
    )


class DbwireQueuePool(QueuePool):
    """QueuePool raising PoolTimeoutError (also a sqlalchemy.exc.TimeoutError)."""

    dbwire_database: str = "default"

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return super()._do_get()
        except PoolTimeoutError:
            raise  # QueuePool._do_get retries by calling _do_get again
        except sa_exc.TimeoutError:
            raise pool_timeout_error(self, self.dbwire_database) from None

    def recreate(self) -> QueuePool:
        # Engine.dispose() replaces the pool with recreate(); keep the name with it.
        new = super().recreate()
        new.dbwire_database = self.dbwire_database  # type: ignore[attr-defined]
        return new


class DbwireAsyncQueuePool(AsyncAdaptedQueuePool):
    """AsyncAdaptedQueuePool raising PoolTimeoutError (also a sqlalchemy.exc.TimeoutError)."""

    dbwire_database: str = "default"

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            return super()._do_get()
        except PoolTimeoutError:
            raise
        except sa_exc.TimeoutError:
            raise pool_timeout_error(self, self.dbwire_database) from None

    def recreate(self) -> QueuePool:
        new = super().recreate()
        new.dbwire_database = self.dbwire_database  # type: ignore[attr-defined]
        return new


_REPLACEMENTS: dict[type[Pool], type[QueuePool]] = {
    QueuePool: DbwireQueuePool,
    AsyncAdaptedQueuePool: DbwireAsyncQueuePool,
}


def pool_class_for(url: URL, *, is_async: bool) -> type[QueuePool] | None:
    """dbwire's queue pool for the one the dialect would choose, to pass as `poolclass=`.

    None when the dialect picks another kind (SQLite in memory: SingletonThreadPool),
    which is then left to the dialect. The subclasses add no state, so every pool
    argument the dialect and config chose means what it meant.
    """
    # DefaultDialect's classmethod, as create_engine() asks it; a dialect without it
    # gets the pool create_engine() gives it.
    choose = getattr(url.get_dialect(_is_async=is_async), "get_pool_class", None)
    if choose is None:
        return None
    return _REPLACEMENTS.get(choose(url))


def name_pool(engine: Engine, database: str) -> None:
    """Tell a dbwire pool the database it serves, for its timeout error (kept by recreate())."""
    pool = engine.pool
    if isinstance(pool, DbwireQueuePool | DbwireAsyncQueuePool):
        pool.dbwire_database = database


_CHECKED_IN_AT = "dbwire_checked_in_at"


def install_idle_ping(
    engine: Engine, idle_seconds: float, looks_dead: Callable[[Any], bool]
) -> None:
    """Pre-ping a pooled connection only when it may be stale; used instead of pool_pre_ping.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout (+20-25% on a short
    statement, bench/RESULTS.md). A connection is pinged here only if it sat idle longer
    than `idle_seconds`, or if `looks_dead` sees its socket closed or readable (a
    restarted server, or a backend killed with pg_terminate_backend, has sent its FIN).
    A failed ping raises InvalidatePoolError: the pool drops every connection older than
    now and checks out a fresh one, which is what pool_pre_ping does on a disconnect.
    What the window gives up is a connection black-holed without a FIN within
    `idle_seconds` of its last use (HikariCP's aliveBypassWindowMs makes the same trade).
    """
    dialect = engine.dialect

    @event.listens_for(engine.pool, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _maybe_ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None:
            return  # a brand-new connection: it just logged in
        if monotonic() - checked_in_at <= idle_seconds and not looks_dead(dbapi_connection):
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):  # type: ignore[arg-type]
                raise
            alive = False
        if not alive:
            raise sa_exc.InvalidatePoolError("dbwire pre-ping: the server closed the connection")
