"""execute_query's one-round-trip path: the statement alone, on the pooled driver connection.

SQLAlchemy Core spends four round trips on a one-statement query (pre-ping, BEGIN, the
statement, COMMIT) plus its execution machinery; a one-statement query needs none of it
(bench/RESULTS.md). The SQL is compiled by SQLAlchemy exactly as text() would be (`:name`,
`\\:` and `%`), errors come out as the same SQLAlchemy/dbwire classes, and the statement
is counted by the observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool
from sqlalchemy.util import greenlet_spawn

from dbwire import translate
from dbwire.backends import readonly_guard
from dbwire.backends.base import read_cursor
from dbwire.pool import (
    AUTOCOMMIT_LEFT_ON,
    DIRECT_CHECKOUT,
    DbwireAsyncQueuePool,
    DbwireQueuePool,
)

if TYPE_CHECKING:
    from dbwire.backends.base import DirectFetch
    from dbwire.target import Target

QueryResult = tuple[list[str], list[dict[str, Any]]]
_log = logging.getLogger("dbwire")
_PERCENT_STYLES = frozenset({"format", "pyformat"})


class FastPath:
    """The direct execute_query path of one Database, sync and async."""

    def __init__(
        self,
        db: Target,
        record: Callable[[str, float, bool], None],
        enabled: dict[bool, bool] | None = None,
    ) -> None:
        self.db = db
        self._record = record
        # Where the driver cannot switch autocommit locally, Core's path is used; by is_async.
        self.enabled = enabled if enabled is not None else {False: True, True: True}
        self._may_go_direct: bool | None = None  # the config is frozen: decided once
        self._fetch: object = _UNSET  # the backend's direct async fetch, asked once

    def may_go_direct(self) -> bool:
        """The one-round-trip path runs in autocommit: on a read-only database only where
        the backend keeps autocommit statements read-only too. With `echo` on, SQLAlchemy
        logs what it runs, so the statement goes through it to be echoed like any other."""
        db = self.db
        if db.config.echo:
            return False
        if db.config.readonly and db.config.pooler is not None:
            return False  # no login default behind a pooler: read-only needs a transaction
        return not db.config.readonly or db.backend.readonly_in_autocommit

    def execute(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        """execute_query() on the sync engine: the direct path where it can, else Core's."""
        return self.query(self.db.engine, sql, params, is_async=False)

    def async_execute(self, sql: str, params: Mapping[str, Any] | None) -> Awaitable[QueryResult]:
        """execute() on the running loop's async engine.

        Where the backend has a direct fetch (Backend.direct_fetcher), one awaited driver
        call in the event loop: the pooled entry is taken and returned without a greenlet
        when one is idle. Else the sync code runs inside SQLAlchemy's greenlet_spawn (its
        adapters run the async drivers under the sync API): the same code, one hop.
        A plain function returning the awaitable, so the await costs no coroutine of its
        own; what it raises (the read-only guard's refusal) is raised at the call.
        """
        engine = self.db.async_engine.sync_engine
        fetch = self._async_fetch(engine)
        if fetch is not None:
            planned = self.plan(sql, params, engine.dialect)
            if planned is not None:
                return self.async_direct(engine, fetch, *planned)
        result: Awaitable[QueryResult] = greenlet_spawn(
            self.query, engine, sql, params, is_async=True
        )
        return result

    def _async_fetch(self, engine: Engine) -> DirectFetch | None:
        """The backend's direct fetch if async_execute may use it on engine, else None."""
        may = self._may_go_direct
        if may is None:
            may = self._may_go_direct = self.may_go_direct()
        if not may or not self.enabled[True]:
            return None
        fetch = self._fetch
        if fetch is _UNSET:
            fetch = self._fetch = self.db.backend.direct_fetcher()
        pool = engine.pool
        if fetch is None or type(pool) is not DbwireAsyncQueuePool:
            return None
        if pool._pre_ping or pool.dispatch.checkout:
            return None  # SQLAlchemy's checkout runs what such a pool is configured to run
        return fetch  # type: ignore[return-value]

    async def async_direct(
        self, engine: Engine, fetch: DirectFetch, statement: str, args: Any
    ) -> QueryResult:
        """A planned statement as one awaited driver call on a pooled entry, timed and
        counted, errors translated as run() translates them. An entry whose statement was
        cut short (a cancelled task, an unknown error, a disconnect) is dropped, never
        pooled half-read; the greenlet is used only where the pool must do IO."""
        pool: Any = engine.pool
        dialect = engine.dialect
        dbapi_error = dialect.loaded_dbapi.Error
        idle = pool.dbwire_take_idle()  # no IO: nothing to translate
        if idle is not None and not idle[1]:
            entry = idle[0]
        else:
            entry = await self._async_take(pool, dialect, None if idle is None else idle[0])
        connection = entry.dbapi_connection
        started = perf_counter()
        failed = True
        drop: BaseException | None = None
        try:
            try:
                columns, rows = await fetch(connection, statement, args)
            except dbapi_error:
                raise
            except Exception as exc:
                # The driver's own error class: the adapter's translation, as its cursor
                # would raise it (asyncpg's errors become the adapted DBAPI module's).
                handle = getattr(connection, "_handle_exception", None)
                if handle is None:
                    raise
                handle(exc)
                raise
            failed = False
        except dbapi_error as exc:
            if dialect.is_disconnect(exc, connection, None):
                drop = exc
            self._raise_translated(exc, dialect, statement, args)
        except BaseException as exc:  # cancelled, or an error the adapter does not know
            drop = exc
            raise
        finally:
            self._record(statement, perf_counter() - started, failed)
            if self.db.backend.autocommit_sticks:
                entry.info[AUTOCOMMIT_LEFT_ON] = True  # the fetch may have switched it on
            if not failed and pool.dbwire_checkin_is_local(entry):
                entry.checkin(_fairy_was_created=False)
            else:
                # Shielded: cancelled again meanwhile, the entry is still given back.
                await asyncio.shield(self._async_give_back(entry, not failed, drop))
        return columns, rows

    async def _async_give_back(self, entry: Any, ran: bool, drop: BaseException | None) -> None:
        """return_entry() under the greenlet; a statement given up on by a cancelled task
        is first stopped on the server where dropping the connection would not stop it."""
        backend = self.db.backend
        if isinstance(drop, asyncio.CancelledError) and not backend.async_cancel_stops_statement:
            driver = entry.dbapi_connection.driver_connection
            try:
                # The backend cancels from a second, sync session, bounded by the connect
                # timeout: in a thread of its own, which ends with it (the loop's executor
                # would keep an idle worker alive for the rest of the loop).
                await _in_own_thread(
                    f"dbwire-cancel-{self.db.name}", backend.cancel, driver, self.db.engine
                )
            except Exception as exc:  # the connection is dropped either way
                _log.debug(
                    "database %r: could not stop a cancelled statement: %s",
                    self.db.name,
                    type(exc).__name__,
                )
        await greenlet_spawn(return_entry, entry, ran, drop)

    async def _async_take(self, pool: Any, dialect: Any, popped: Any) -> Any:
        """A pool entry for async_direct through take_entry under greenlet_spawn, where
        the pool must connect, wait, ping or reconnect (popped: the entry it took idle)."""
        token = DIRECT_CHECKOUT.set(True)
        try:
            return await greenlet_spawn(take_entry, pool, popped)
        except dialect.loaded_dbapi.Error as exc:
            raise self._connect_failed(exc) from exc
        finally:
            DIRECT_CHECKOUT.reset(token)

    def query(
        self, engine: Engine, sql: str, params: Mapping[str, Any] | None, *, is_async: bool
    ) -> QueryResult:
        """One statement on engine: in autocommit on the driver connection where possible,
        else through a Core Connection (BEGIN, statement, COMMIT)."""
        may = self._may_go_direct
        if may is None:
            may = self._may_go_direct = self.may_go_direct()
        if may and self.enabled[is_async]:
            direct = self.on_engine(engine, sql, params, is_async=is_async)
            if direct is not None:
                return direct
        with engine.connect() as conn:
            result = conn.execute(text(sql), dict(params or {}))
            columns, rows = collect(result)
            conn.commit()
        return columns, rows

    def on_engine(
        self, engine: Engine, sql: str, params: Mapping[str, Any] | None, *, is_async: bool
    ) -> QueryResult | None:
        """Check a connection out of engine's pool, run the statement on it, check it in."""
        dialect = engine.dialect
        planned = self.plan(sql, params, dialect)
        if planned is None:
            return None
        pool = engine.pool
        # A queue pool with no checkout listener and no SQLAlchemy pre-ping: the entry is
        # taken and returned directly (see take_entry); anything else gets SQLAlchemy's
        # checkout, which runs what such a pool is configured to run.
        direct = type(pool) in _DIRECT_POOLS and not pool._pre_ping and not pool.dispatch.checkout
        token = DIRECT_CHECKOUT.set(True)
        try:
            connection: Any = take_entry(pool) if direct else engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:
            raise self._connect_failed(exc) from exc
        finally:
            DIRECT_CHECKOUT.reset(token)
        ran = False
        try:
            result = self.run(connection, dialect, *planned, is_async=is_async)
            ran = result is not None
            return result
        finally:
            if direct:
                return_entry(connection, ran)
            else:
                # Nothing was begun (autocommit): the pool's rollback-on-return, a round
                # trip on MySQL, has nothing to undo; SQLAlchemy's Connection.close() skips
                # it alike through this (private) method. Without it, close() is right.
                close_special = getattr(connection, "_close_special", None)
                if ran and close_special is not None:
                    close_special(transaction_reset=True)
                else:
                    connection.close()

    def plan(
        self, sql: str, params: Mapping[str, Any] | None, dialect: Any
    ) -> tuple[str, Any] | None:
        """The compiled statement and its driver arguments, guard checked; None: use Core."""
        statement, order, needed = compiled(sql, dialect)
        db = self.db
        if db.config.readonly:
            readonly_guard.check_statement(
                statement, database=db.name, dialect=db.backend.dialect_name
            )
        values = dict(params or {})
        if needed and not needed <= values.keys():
            return None  # let Core raise its usual "a value is required" error
        if order is None:
            args: Any = values
        else:
            args = tuple([values[name] for name in order]) if order else ()
        return statement, args

    def run(
        self, connection: Any, dialect: Any, statement: str, args: Any, *, is_async: bool
    ) -> QueryResult | None:
        """Run a planned statement on a checked-out connection in autocommit, timed and
        counted, with errors translated as Core translates them."""
        db = self.db
        backend = db.backend
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            driver: Any = connection.dbapi_connection
            info = connection.info
            sticks = backend.autocommit_sticks
            already_on = sticks and info.get(AUTOCOMMIT_LEFT_ON)
            if not already_on and not backend.set_autocommit(driver, True):
                self.enabled[is_async] = False  # this driver cannot: use Core
                return None
            started = perf_counter()
            failed = True
            try:
                columns, rows = read_cursor(
                    driver.cursor(),
                    statement,
                    args,
                    with_args=bool(args) or dialect.paramstyle in _PERCENT_STYLES,
                )
                failed = False
            finally:
                self._record(statement, perf_counter() - started, failed)
                if sticks:
                    info[AUTOCOMMIT_LEFT_ON] = True
                elif not getattr(driver, "closed", False):
                    backend.set_autocommit(driver, False)
        except dbapi_error as exc:
            if dialect.is_disconnect(exc, connection.dbapi_connection, None):
                connection.invalidate(exc)
            self._raise_translated(exc, dialect, statement, args)
        return columns, rows

    def _raise_translated(
        self, exc: BaseException, dialect: Any, statement: str, args: Any
    ) -> NoReturn:
        """Raise what Core raises for the driver error exc: SQLAlchemy's DBAPIError class
        for it, or ReadOnlyError for a write the database refused; secrets scrubbed."""
        db = self.db
        dbapi_error = dialect.loaded_dbapi.Error
        wrapped = sa_exc.DBAPIError.instance(statement, args, exc, dbapi_error, dialect=dialect)
        translate.scrub_chain(db, exc, wrapped)
        if db.backend.is_readonly_violation(exc):
            raise translate.readonly_error(db, translate.driver_detail(db, exc)) from wrapped
        raise wrapped from exc

    def _connect_failed(self, exc: BaseException) -> BaseException:
        """The dbwire error for a checkout that could not connect (raise it from exc)."""
        translate.scrub_chain(self.db, exc)
        return translate.connect_error(self.db, exc, translate.driver_detail(self.db, exc))


def _in_own_thread(name: str, call: Callable[..., object], *args: Any) -> asyncio.Future[object]:
    """call(*args) in a new daemon thread; the future, on the running loop, gets its result."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[object] = loop.create_future()

    def settle(result: object, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        result: object = None
        error: BaseException | None = None
        try:
            result = call(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return done


_DIRECT_POOLS = (DbwireQueuePool, DbwireAsyncQueuePool)
_UNSET = object()


def take_entry(pool: Pool, popped: Any = None) -> Any:
    """A pool entry with its connection open, taken without SQLAlchemy's checkout wrapper.

    Written by hand, over the pool's own entry API (_do_get, get_connection, checkin),
    because the wrapper (a _ConnectionFairy with its weakref finalizer, counter, events and
    reset-on-return) is most of what a one-statement query costs on an embedded database
    and a third of it on a server (bench/RESULTS.md, execute_query); a one-statement query
    in autocommit uses none of it. dbwire's own checkout work (PoolHooks: the idle ping,
    the holder, the autocommit reset) runs in _do_get as for every checkout; the caller
    returns the entry with return_entry() in a finally block, so no finalizer is needed.
    """
    entry: Any = pool._do_get() if popped is None else popped
    try:
        if popped is not None:  # taken by HookedPool.dbwire_take_idle: its ping is left
            pool.dbwire_finish_take(entry)  # type: ignore[attr-defined]
        entry.get_connection()  # reconnects an entry that was invalidated or recycled
    except BaseException as exc:
        entry._checkin_failed(exc, _fairy_was_created=False)
        raise
    return entry


def return_entry(entry: Any, ran: bool, drop: BaseException | None = None) -> None:
    """Give an entry from take_entry() back to its pool. After a statement that did not
    complete in autocommit, its connection is rolled back first, as the pool's reset on
    return would; one that cannot be, or is dropped (drop: why), is closed instead."""
    connection = entry.dbapi_connection
    if drop is not None and connection is not None:
        entry.invalidate(drop)
    elif not ran and connection is not None:
        try:
            connection.rollback()
        except Exception as exc:
            entry.invalidate(exc)
    entry.checkin(_fairy_was_created=False)


@functools.lru_cache(maxsize=512)
def compiled(sql: str, dialect: Any) -> tuple[str, tuple[str, ...] | None, frozenset[str]]:
    """SQL compiled for a dialect as text() compiles it, its positional parameter order
    (None for a named paramstyle) and the names of every parameter it needs."""
    compiled_sql = text(sql).compile(dialect=dialect)
    order = tuple(compiled_sql.positiontup or ()) if dialect.positional else None
    return compiled_sql.string, order, frozenset(compiled_sql.binds)


def collect(result: Any) -> QueryResult:
    """(columns, rows as dicts) of a Core Result."""
    if not result.returns_rows:
        return [], []
    columns = list(result.keys())
    return columns, [dict(zip(columns, row, strict=True)) for row in result]
