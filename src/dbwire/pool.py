"""Pool classes whose checkout timeout raises PoolTimeoutError saying what to raise."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
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


def adopt_pool(engine: Engine, database: str) -> None:
    """Give an engine's pool dbwire's timeout error, if the dialect chose a queue pool.

    The class is swapped in place (the subclasses add no state), so every pool argument
    the dialect and config chose stays as it was; recreate() keeps the subclass because
    it builds the new pool from `self.__class__`. Other pool kinds are left alone.
    """
    pool = engine.pool
    replacement = _REPLACEMENTS.get(type(pool))
    if replacement is not None:
        pool.__class__ = replacement
    if isinstance(pool, DbwireQueuePool | DbwireAsyncQueuePool):
        pool.dbwire_database = database
