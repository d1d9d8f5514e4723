"""The DuckDB backend: duckdb-engine, file or shared in-memory, read-only enforced by DuckDB."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy.dialects import registry as dialect_registry
from sqlalchemy.engine import Connection

from dbwire.backends._accepts import DUCKDB_CONNECT_ARGS, duckdb_query_keys, refuse_url_parts
from dbwire.backends._query import QueryKey
from dbwire.backends.base import Backend, DirectFetch, DirectResult, read_cursor
from dbwire.url_type import URL

if TYPE_CHECKING:
    from dbwire.types import DuckDBAttach

_MEMORY_NAMES = {None, "", ":memory:"}
READONLY_TXN_FLAG = "dbwire_readonly_txn"
MEMORY_PREFIX = ":memory:dbwire_"
# Named in-memory database -> the first connection opened to it. Later pooled connections
# are cursors of it (same database, same config); it keeps the data alive until close().
shared_memory: dict[str, Any] = {}

# duckdb-engine begins transactions itself (do_begin -> connection.begin()), so a read-only
# transaction has to be started there too: dbwire's dialect subclass reads a per-transaction
# flag. Registered by name so nothing is imported until a DuckDB engine is created.
dialect_registry.register("duckdb.dbwire", "dbwire.backends._duckdb_dialect", "DbwireDuckDBDialect")
dialect_registry.register(
    "duckdb.dbwire_async", "dbwire.backends._duckdb_dialect", "DbwireAsyncDuckDBDialect"
)


async def _duckdb_fetch(connection: Any, statement: str, args: Any) -> DirectResult:
    """One statement on duckdb-engine's sync connection, in one worker thread (DuckDB is
    in-process; the async engine keeps its calls off the event loop alike)."""
    sync = connection.driver_connection.sync
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    lock = threading.Lock()
    began = abandoned = False

    def run() -> DirectResult | None:
        nonlocal began
        with lock:
            if abandoned:
                return None  # cancelled before the thread got to it
            began = True
        try:
            return _fetch_in_thread(sync, statement, args)
        finally:
            loop.call_soon_threadsafe(_set_done, finished)

    try:
        result = await loop.run_in_executor(None, run)
    except asyncio.CancelledError:
        with lock:
            abandoned = True
            running = began
        # The thread goes on with the statement: interrupt it, and wait until the thread
        # lets go of the connection, so closing it (the caller drops it) never races it.
        # An interrupt that lands before the statement starts is lost: repeat it.
        while running and not finished.done():
            sync.interrupt()
            await asyncio.wait([finished], timeout=0.05)
        raise
    assert result is not None  # only a cancelled call returns None
    return result


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fetch_in_thread(sync: Any, statement: str, args: Any) -> DirectResult:
    return read_cursor(sync.cursor(), statement, args, with_args=bool(args))


class DuckDBBackend(Backend):
    """DuckDB through duckdb-engine.

    Read-only: a `readonly = true` file database is opened with DuckDB's read_only
    access mode; read-only sessions run in `BEGIN TRANSACTION READ ONLY`. An in-memory
    database gets a unique name (`:memory:NAME`) so every pooled connection shares it,
    kept alive by an anchor connection until the Database closes.
    """

    name: ClassVar[str] = "duckdb"
    dialect_name: ClassVar[str] = "duckdb"
    label: ClassVar[str] = "DuckDB"
    schemes: ClassVar[tuple[str, ...]] = ("duckdb",)
    system_schemas: ClassVar[frozenset[str] | None] = frozenset(
        {"information_schema", "pg_catalog"}
    )
    # duckdb-engine's inspector queries PostgreSQL catalog tables (pg_collation) that
    # DuckDB lacks under SQLAlchemy 2.1: the schema reader uses DuckDB's own catalog.
    inspector_reflects: ClassVar[bool] = False
    duckdb_reads_file: ClassVar[bool] = True
    extra: ClassVar[str] = "duckdb"
    sync_driver: ClassVar[str] = "dbwire"
    async_driver: ClassVar[str | None] = "dbwire_async"
    sync_modules: ClassVar[tuple[str, ...]] = ("duckdb", "duckdb_engine")
    async_modules: ClassVar[tuple[str, ...]] = ("duckdb", "duckdb_engine")
    is_server: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._memory_name: str | None = None
        self._lock = threading.Lock()

    def validate(self) -> None:
        url = self.base_url()
        refuse_url_parts(self.config.name, "DuckDB", url, ("username", "password", "host", "port"))
        super().validate()

    def query_keys(self) -> Mapping[str, QueryKey] | None:
        return duckdb_query_keys()

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str]:
        return DUCKDB_CONNECT_ARGS

    @property
    def in_memory(self) -> bool:
        """True when the configured database is an in-memory one."""
        return self.base_url().database in _MEMORY_NAMES

    def engine_url(self, *, is_async: bool) -> URL:
        url = super().engine_url(is_async=is_async)
        if not self.in_memory:
            if url.database and not self.config.readonly:
                Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            return url
        return url.set(database=self._shared_memory_name())

    def _shared_memory_name(self) -> str:
        with self._lock:
            if self._memory_name is None:
                self._memory_name = f"{MEMORY_PREFIX}{uuid.uuid4().hex}"
            return self._memory_name

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        if self.config.readonly and not self.in_memory:
            return {"read_only": True}
        return {}

    def direct_fetcher(self) -> DirectFetch | None:
        return _duckdb_fetch

    def set_autocommit(self, driver_connection: Any, on: bool) -> bool:
        # DuckDB commits every statement run outside an explicit BEGIN (SQLAlchemy's
        # transactions begin one through the dialect's do_begin): nothing to switch.
        return True

    def begin_readonly(self, dbapi_connection: Any) -> None:
        dbapi_connection.info[READONLY_TXN_FLAG] = True

    def login_can_write(self, connection: Connection) -> bool | None:
        # read_only access mode is how DuckDB opened the file; nothing in SQL undoes it.
        mode = connection.exec_driver_sql("SELECT current_setting('access_mode')").scalar()
        return str(mode).lower() != "read_only"

    def is_readonly_violation(self, exc: BaseException) -> bool:
        return "read-only mode" in str(exc)

    def close(self) -> None:
        with self._lock:
            anchor = shared_memory.pop(self._memory_name or "", None)
            if anchor is not None:
                anchor.close()

    # -- the local DuckDB store (DuckDB store issue) ---
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """DuckDB attaches another DuckDB file natively."""
        from dbwire.types import DuckDBAttach

        return DuckDBAttach(target=self.attachable_file(), attach_type=None)
