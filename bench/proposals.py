"""Prototypes of the fixes proposed for the OVER rows, measured beside the real code.

Nothing here is used by dbwire: these are the smallest working versions of the changes
proposed for `Database.execute_query()` and pre-ping, so RESULTS.md can show what the fix
would cost before it lands in `src/`.
"""

from __future__ import annotations

import select
import threading
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import Dialect, Engine

_IDLE_SINCE = "dbwire_idle_since"


@lru_cache(maxsize=512)
def _compile(sql: str, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """`:name` SQL in the driver's paramstyle, compiled once per statement and dialect.

    SQLAlchemy's own compiler does the conversion, so `::casts`, `\\:` escapes and `%`
    doubling for the pyformat drivers behave exactly as they do through text().
    """
    compiled = text(sql).compile(dialect=dialect)
    order = tuple(compiled.positiontup or ()) if dialect.positional else None
    return compiled.string, order


def fast_execute_query(
    engine: Engine, sql: str, params: dict[str, Any] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """execute_query() on the pooled driver connection: one round trip on PostgreSQL.

    The psycopg connection is switched to autocommit for the one statement (a client-side
    flag, no round trip), which gives execute_query's "a change is committed" without the
    BEGIN and COMMIT round trips; it is switched back before the connection is returned.
    """
    statement, order = _compile(sql, engine.dialect)
    values = params or {}
    args: Any = [values[name] for name in order] if order is not None else values
    fairy = engine.raw_connection()
    try:
        conn = fairy.driver_connection
        assert conn is not None
        conn.autocommit = True
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(statement, args)
                description = cursor.description
                if description is None:
                    return [], []
                columns = [column.name for column in description]
                return columns, [dict(zip(columns, row, strict=True)) for row in cursor]
            finally:
                cursor.close()
        finally:
            if not conn.closed:
                conn.autocommit = False
    except engine.dialect.loaded_dbapi.Error as error:
        if engine.dialect.is_disconnect(error, fairy.dbapi_connection, None):
            fairy.invalidate(error)
        raise
    finally:
        fairy.close()


class DialectLevelHooks:
    """dbwire's per-statement hooks without any Connection-level event.

    One Connection-level listener (`begin`, `before_cursor_execute`, ...) sets
    `engine._has_events`, and from then on every Connection builds a joined dispatcher and
    checks ~7 event hooks per checkout+statement. Dialect-level events do not: the statement
    is timed in a `do_execute` listener that calls the dialect itself and returns True, and
    error translation is already dialect-level (`handle_error`). The read-only `begin`
    listener goes on the read-only option engine only (`engine.execution_options(...)` keeps
    its own listeners), so writable sessions never pay for it.
    """

    def __init__(self, engine: Engine) -> None:
        self.queries = 0
        self.total_s = 0.0
        self._lock = threading.Lock()
        dialect = engine.dialect
        execute, no_params, many = (
            dialect.do_execute,
            dialect.do_execute_no_params,
            dialect.do_executemany,
        )

        def timed_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
            started = time.perf_counter()
            try:
                execute(cursor, statement, parameters, context)
            finally:
                self._count(time.perf_counter() - started)
            return True

        def timed_no_params(cursor: Any, statement: str, context: Any) -> bool:
            started = time.perf_counter()
            try:
                no_params(cursor, statement, context)
            finally:
                self._count(time.perf_counter() - started)
            return True

        def timed_many(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
            started = time.perf_counter()
            try:
                many(cursor, statement, parameters, context)
            finally:
                self._count(time.perf_counter() - started)
            return True

        event.listen(engine, "do_execute", timed_execute)
        event.listen(engine, "do_execute_no_params", timed_no_params)
        event.listen(engine, "do_executemany", timed_many)
        event.listen(engine, "handle_error", lambda _ctx: None)
        event.listen(engine.pool, "checkin", lambda _conn, record: record.info.pop("ro", None))

    def _count(self, elapsed: float) -> None:
        with self._lock:
            self.queries += 1
            self.total_s += elapsed


def _socket_readable(dbapi_connection: Any) -> bool:
    """True when an idle psycopg connection has bytes or EOF waiting: the server closed it
    (restart, pg_terminate_backend, idle timeout) or sent something unexpected."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return True  # unknown driver: always ping
    try:
        fd = pgconn.socket
    except Exception:
        return True
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


def install_idle_ping(engine: Engine, idle_seconds: float = 1.0) -> None:
    """Pre-ping only a connection idle longer than `idle_seconds`, or whose socket shows
    the server hung up; use with pool_pre_ping=False (HikariCP's aliveBypassWindow)."""
    dialect = engine.dialect

    @event.listens_for(engine.pool, "checkin")
    def _stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None:
            return  # a fresh connection was just opened: nothing to check
        if time.monotonic() - since < idle_seconds and not _socket_readable(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As pool_pre_ping does: drop every connection older than now and let the
                # pool retry the checkout on a new one.
                raise exc.InvalidatePoolError() from error
            raise
