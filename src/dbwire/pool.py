"""Pool behaviour: a checkout timeout that says what to raise, the idle-window pre-ping,
and pool_min_size connections opened in the background."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool, QueuePool

from dbwire.errors import ConfigError, PoolTimeoutError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


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


# -- pool_min_size: connections opened in the background and kept ---------------------
def check_min_size(database: str, min_size: int, options: dict[str, Any]) -> None:
    """Refuse a pool_min_size the pool could never hold open at once."""
    if min_size <= 0:
        return
    size = options.get("pool_size", 5)
    overflow = options.get("max_overflow", 10)
    if overflow is not None and overflow < 0:
        return  # max_overflow = -1: no upper bound
    limit = (size or 0) + (overflow or 0)
    if min_size > limit:
        raise ConfigError(
            f"database {database!r}: pool_min_size = {min_size} is more than the pool may "
            f"open (pool_size {size} + max_overflow {overflow} = {limit}); lower "
            "pool_min_size or raise pool_size",
            database=database,
        )


_WARMING: set[Any] = set()  # background opens in flight, kept from the garbage collector


def open_in_background(
    engine: Engine, count: int, on_error: Callable[[BaseException], None], *, name: str
) -> None:
    """Open `count` connections of a sync engine's pool in a daemon thread and pool them.

    Hand-written rather than psycopg_pool's min_size: that pool is psycopg's own, and
    dbwire's pools are SQLAlchemy's for every backend. All `count` are checked out at
    once, so the pool opens that many, then checked in, so it keeps them. A failure is
    handed to `on_error` (logged); the next checkout reports it the usual way.
    """
    if count <= 0 or not isinstance(engine.pool, QueuePool):
        return

    def _open() -> None:
        held: list[Any] = []
        try:
            for _ in range(count):
                held.append(engine.raw_connection())
        except Exception as exc:
            on_error(exc)
        finally:
            for connection in held:
                connection.close()

    thread = threading.Thread(target=_open, name=f"dbwire-min-size-{name}", daemon=True)
    thread.start()


def async_open_in_background(
    engine: AsyncEngine, count: int, on_error: Callable[[BaseException], None]
) -> None:
    """open_in_background() for an async engine: a task on the running event loop."""
    if count <= 0 or not isinstance(engine.sync_engine.pool, QueuePool):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop yet: the connections open on first use

    async def _open() -> None:
        held: list[Any] = []
        try:
            for _ in range(count):
                held.append(await engine.raw_connection())
        except Exception as exc:
            on_error(exc)
        finally:
            from sqlalchemy.util import greenlet_spawn

            for connection in held:
                await greenlet_spawn(connection.close)

    task = loop.create_task(_open())
    _WARMING.add(task)
    task.add_done_callback(_WARMING.discard)
