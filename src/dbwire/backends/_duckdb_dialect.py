"""dbwire's DuckDB dialects: read-only transactions, and an async twin of duckdb-engine.

DuckDB has no asyncio driver, so the async dialect runs each DuckDB call in a worker
thread (as aiosqlite does for sqlite3) behind SQLAlchemy's standard async adaptation.
DuckDB releases the GIL while it works, so the event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from duckdb_engine import DBAPI, ConnectionWrapper
from duckdb_engine import Dialect as DuckDBEngineDialect
from sqlalchemy import pool
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.engine import URL
from sqlalchemy.util.concurrency import await_

from dbwire.backends.duckdb import MEMORY_PREFIX, READONLY_TXN_FLAG, shared_memory

_shared_lock = threading.Lock()


class DbwireDuckDBDialect(DuckDBEngineDialect):
    """duckdb-engine, starting `BEGIN TRANSACTION READ ONLY` when dbwire asks for it."""

    driver = "dbwire"
    supports_statement_cache = False  # as duckdb-engine; SQLAlchemy asks each subclass

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        database = cparams.get("database", cargs[0] if cargs else None)
        if not (isinstance(database, str) and database.startswith(MEMORY_PREFIX)):
            return super().connect(*cargs, **cparams)
        with _shared_lock:
            anchor = shared_memory.get(database)
            if anchor is None:
                anchor = shared_memory[database] = super().connect(*cargs, **cparams)
        # A cursor of a DuckDB connection is a new connection to the same database.
        return ConnectionWrapper(anchor._ConnectionWrapper__c.cursor())

    def do_begin(self, connection: Any) -> None:
        if connection.info.pop(READONLY_TXN_FLAG, False):
            connection.execute("BEGIN TRANSACTION READ ONLY")
        else:
            connection.begin()


class _AsyncCursor:
    """An awaitable face over duckdb-engine's cursor; each call runs in a worker thread."""

    def __init__(self, connection: _AsyncConnection) -> None:
        self._connection = connection
        self._cursor = connection.sync.cursor()

    async def __aenter__(self) -> _AsyncCursor:
        return self

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return -1  # DuckDB does not report it (duckdb-engine: supports_sane_rowcount = False)

    arraysize = 1
    lastrowid = None

    async def execute(self, operation: str, parameters: Any = None) -> None:
        await self._connection.run(self._cursor.execute, operation, parameters)

    async def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> None:
        await self._connection.run(self._cursor.executemany, operation, seq_of_parameters)

    async def fetchall(self) -> list[Any]:
        rows: list[Any] = await self._connection.run(self._cursor.fetchall)
        return rows

    async def fetchone(self) -> Any:
        return await self._connection.run(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        rows: list[Any] = await self._connection.run(self._cursor.fetchmany, size)
        return rows

    async def close(self) -> None:
        pass  # closing a duckdb-engine cursor is a no-op

    async def nextset(self) -> None:
        return None


class _AsyncConnection:
    """An awaitable face over duckdb-engine's ConnectionWrapper."""

    def __init__(self, sync: ConnectionWrapper) -> None:
        self.sync = sync

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    def cursor(self) -> _AsyncCursor:
        return _AsyncCursor(self)

    async def commit(self) -> None:
        await self.run(self.sync.commit)

    async def rollback(self) -> None:
        await self.run(self.sync.rollback)

    async def close(self) -> None:
        await self.run(self.sync.close)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sync, name)


class _AdaptedConnection(AsyncAdapt_dbapi_connection):
    __slots__ = ()

    def begin(self) -> None:
        await_(self._connection.run(self._connection.sync.begin))

    def rollback(self) -> None:
        try:
            await_(self._connection.rollback())
        except DBAPI.TransactionException as exc:
            if "no transaction is active" not in str(exc):
                raise


_BaseExecutionContext: Any = DuckDBEngineDialect.execution_ctx_cls


class _AsyncExecutionContext(_BaseExecutionContext):  # type: ignore[misc]
    def post_exec(self) -> None:
        pass  # psycopg2's notice logging reads cursor.connection, which adapted cursors lack


class DbwireAsyncDuckDBDialect(DbwireDuckDBDialect):
    """The async twin: the same SQL behaviour, DuckDB calls run off the event loop."""

    driver = "dbwire_async"
    supports_statement_cache = False
    execution_ctx_cls = _AsyncExecutionContext
    is_async = True
    has_terminate = False

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        parent_connect = super().connect

        async def open_connection() -> _AsyncConnection:
            sync = await asyncio.to_thread(parent_connect, *cargs, **cparams)
            return _AsyncConnection(sync)

        awaitable: Any = open_connection()
        return await_(_AdaptedConnection.create(DBAPI, awaitable))

    def do_begin(self, connection: Any) -> None:
        if connection.info.pop(READONLY_TXN_FLAG, False):
            connection.execute("BEGIN TRANSACTION READ ONLY")
        else:
            connection.dbapi_connection.begin()

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._connection
