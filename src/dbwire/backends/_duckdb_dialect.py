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
from sqlalchemy import pool, sql
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.postgresql.base import PGDialect
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

    def _columns_query(  # type: ignore[override]
        self, schema: Any, has_filter_names: Any, scope: Any, kind: Any
    ) -> Any:
        # SQLAlchemy 2.1's PostgreSQL reflection reads column collations from
        # pg_catalog.pg_collation, which DuckDB does not have; duckdb-engine reuses that
        # query, so reflection (db.metadata, inspect()) fails. DuckDB has no per-column
        # collations to report: select NULL in that column instead.
        query = super()._columns_query(schema, has_filter_names, scope, kind)
        columns = [
            sql.null().label("collation") if column.name == "collation" else column
            for column in query.selected_columns
        ]
        return query.with_only_columns(*columns, maintain_column_froms=False)

    def get_multi_columns(self, connection: Any, *args: Any, **kw: Any) -> Any:
        # duckdb-engine 0.17's copy of this method calls a private PGDialect helper with
        # SQLAlchemy 2.0's signature; SQLAlchemy 2.1's own method works once the two
        # catalog queries DuckDB cannot answer are avoided (_columns_query, _load_domains).
        return PGDialect.get_multi_columns(self, connection, *args, **kw)  # type: ignore[no-untyped-call]

    def _load_domains(self, connection: Any, schema: Any = None, **kw: Any) -> list[Any]:
        return []  # DuckDB has no domains, and the query needs pg_collation

    # Constraints: PostgreSQL's catalog queries need REGCLASS and pg_constraint details
    # DuckDB lacks; duckdb_constraints() has the same facts.
    def _duckdb_constraints(
        self, connection: Any, schema: str | None, filter_names: Any, kind: str
    ) -> dict[tuple[str | None, str], list[Any]]:
        query = (
            "SELECT t.table_name, c.constraint_name, c.constraint_column_names, "
            "c.referenced_table, c.referenced_column_names, c.expression "
            "FROM duckdb_tables() t LEFT JOIN duckdb_constraints() c "
            "ON c.database_oid = t.database_oid AND c.schema_oid = t.schema_oid "
            "AND c.table_oid = t.table_oid AND c.constraint_type = $1 "
            "WHERE t.database_name = current_database() AND t.schema_name = $2 "
            "ORDER BY t.table_name, c.constraint_index"
        )
        rows = connection.exec_driver_sql(query, (kind, schema or "main")).all()
        wanted = set(filter_names) if filter_names else None
        found: dict[tuple[str | None, str], list[Any]] = {}
        for table, name, columns, ref_table, ref_columns, expression in rows:
            if wanted is not None and table not in wanted:
                continue
            entries = found.setdefault((schema, table), [])
            if name is not None:
                entries.append((name, list(columns), ref_table, list(ref_columns), expression))
        return found

    def get_multi_pk_constraint(self, connection: Any, *args: Any, **kw: Any) -> Any:
        schema = kw.get("schema")
        found = self._duckdb_constraints(connection, schema, kw.get("filter_names"), "PRIMARY KEY")
        return [
            (
                key,
                {"constrained_columns": e[0][1], "name": e[0][0]}
                if e
                else {"constrained_columns": [], "name": None},
            )
            for key, e in found.items()
        ]

    def get_multi_foreign_keys(self, connection: Any, *args: Any, **kw: Any) -> Any:
        schema = kw.get("schema")
        found = self._duckdb_constraints(connection, schema, kw.get("filter_names"), "FOREIGN KEY")
        return [
            (
                key,
                [
                    {
                        "name": name,
                        "constrained_columns": columns,
                        "referred_schema": schema,
                        "referred_table": ref_table,
                        "referred_columns": ref_columns,
                        "options": {},
                    }
                    for name, columns, ref_table, ref_columns, _ in entries
                ],
            )
            for key, entries in found.items()
        ]

    def get_multi_unique_constraints(self, connection: Any, *args: Any, **kw: Any) -> Any:
        schema = kw.get("schema")
        found = self._duckdb_constraints(connection, schema, kw.get("filter_names"), "UNIQUE")
        return [
            (key, [{"name": e[0], "column_names": e[1]} for e in entries])
            for key, entries in found.items()
        ]

    def get_multi_check_constraints(self, connection: Any, *args: Any, **kw: Any) -> Any:
        schema = kw.get("schema")
        found = self._duckdb_constraints(connection, schema, kw.get("filter_names"), "CHECK")
        return [
            (key, [{"name": e[0], "sqltext": e[4]} for e in entries])
            for key, entries in found.items()
        ]

    def get_multi_indexes(self, connection: Any, *args: Any, **kw: Any) -> Any:
        return []  # DuckDB's ART indexes are not reflected (duckdb-engine does the same)

    def get_multi_table_options(self, connection: Any, *args: Any, **kw: Any) -> Any:
        return []  # no storage options, tablespaces or inheritance in DuckDB

    def get_multi_table_comment(self, connection: Any, *args: Any, **kw: Any) -> Any:
        return []


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

    def _terminate_force_close(self) -> None:
        # DuckDB needs no event loop to close: Database.close() uses this from sync code,
        # so the file is released even after the loop that used it is gone.
        self._connection.sync.close()

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
