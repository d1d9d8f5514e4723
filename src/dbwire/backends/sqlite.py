"""The SQLite backend: sqlite3 (sync) and aiosqlite (async), file or shared in-memory."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dbwire.backends._accepts import (
    SQLITE_CONNECT_ARGS,
    SQLITE_QUERY_KEYS,
    check_sqlite_uri_keys,
    refuse_url_parts,
)
from dbwire.backends._query import QueryKey
from dbwire.backends.base import Backend, DirectFetch, DirectResult, read_cursor
from dbwire.backends.readonly_guard import READ_PRAGMAS, READ_PRAGMAS_WITH_ARGUMENT
from dbwire.url_type import URL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from dbwire.types import DuckDBAttach

_MEMORY_NAMES = {None, "", ":memory:"}


def regexp(pattern: str | None, item: object) -> bool:
    """SQLite's REGEXP operator: `item REGEXP pattern`; NULL or a bad pattern never matches."""
    if pattern is None or item is None:
        return False
    try:
        return re.search(pattern, str(item)) is not None
    except re.error:
        return False


# Authorizer actions that only read (or bracket reads: BEGIN/COMMIT, savepoints); SQLite
# refuses everything else at prepare time, whatever the SQL text looks like.
_READ_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
    }
)


def _readonly_authorizer(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    if action in _READ_ACTIONS and not (
        action == sqlite3.SQLITE_FUNCTION and arg2 == "load_extension"
    ):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in READ_PRAGMAS_WITH_ARGUMENT or (name in READ_PRAGMAS and arg2 is None):
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _sqlite3_connection(dbapi_connection: Any) -> sqlite3.Connection:
    """The sqlite3 connection under a pool fairy, SQLAlchemy's aiosqlite adapter or both."""
    inner = getattr(dbapi_connection, "driver_connection", None) or dbapi_connection
    inner = getattr(inner, "_connection", inner)  # the aiosqlite adapter's aiosqlite.Connection
    conn = getattr(inner, "_conn", inner)  # aiosqlite's own sqlite3 connection
    assert isinstance(conn, sqlite3.Connection)
    return conn


def _switch_to_wal(cursor: Any, timeout_s: float) -> None:
    """Put the file in WAL mode, waiting up to `timeout_s` for other connections' locks.

    The switch needs the file to itself, and SQLite fails it at once, without calling the
    busy handler, while another connection holds a write lock (deadlock avoidance), so
    busy_timeout alone does not make it wait. If the lock outlives the wait, the connection
    goes on in the rollback journal: WAL is a concurrency gain, and the next connection tries
    again (the mode belongs to the file, so one success switches every connection)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() + delay > deadline:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


async def _aiosqlite_fetch(connection: Any, statement: str, args: Any) -> DirectResult:
    """One statement in aiosqlite's thread, one hop: execute, fetch and commit together.

    aiosqlite's public calls cost a hop each (execute, fetchall, close); its _execute runs
    one function in its thread, in order with every other call on that connection.
    """
    driver = connection.driver_connection
    sqlite_conn = driver._conn  # raises ValueError once closed: the adapter translates it
    try:
        result: DirectResult = await driver._execute(_fetch_in_thread, sqlite_conn, statement, args)
    except asyncio.CancelledError:
        sqlite_conn.interrupt()  # the thread goes on with the statement: stop it there
        raise
    return result


def _fetch_in_thread(conn: sqlite3.Connection, statement: str, args: Any) -> DirectResult:
    result = read_cursor(conn.cursor(), statement, args, with_args=True)
    if conn.in_transaction:  # sqlite3 began one before a write: autocommit ends it
        conn.commit()
    return result


class SQLiteBackend(Backend):
    """SQLite with foreign keys on, WAL and busy_timeout for files, and REGEXP.

    An in-memory database lives in SQLite's memdb VFS under a unique name, so every
    pooled connection, session and thread of one Database sees the same data, with
    ordinary locking (busy_timeout is honoured, unlike shared-cache mode). An anchor
    connection keeps it alive until the Database closes.
    """

    name: ClassVar[str] = "sqlite"
    dialect_name: ClassVar[str] = "sqlite"
    label: ClassVar[str] = "SQLite"
    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    extra: ClassVar[str] = "sqlite"
    sync_driver: ClassVar[str] = "pysqlite"
    async_driver: ClassVar[str | None] = "aiosqlite"
    sync_modules: ClassVar[tuple[str, ...]] = ("sqlite3",)
    async_modules: ClassVar[tuple[str, ...]] = ("aiosqlite",)
    is_server: ClassVar[bool] = False
    duckdb_reads_file: ClassVar[bool] = True
    busy_timeout_ms: ClassVar[int] = 5000

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._memdb_name: str | None = None
        self._anchor: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def validate(self) -> None:
        url = self.base_url()
        refuse_url_parts(self.config.name, "SQLite", url, ("username", "password", "host", "port"))
        super().validate()
        check_sqlite_uri_keys(self.config.name, url.database, url.query)

    def query_keys(self) -> Mapping[str, QueryKey]:
        return SQLITE_QUERY_KEYS

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str]:
        return (
            SQLITE_CONNECT_ARGS | {"iter_chunk_size", "loop"} if is_async else SQLITE_CONNECT_ARGS
        )

    @property
    def in_memory(self) -> bool:
        """True when the configured database is an in-memory one."""
        return self.base_url().database in _MEMORY_NAMES

    def engine_url(self, *, is_async: bool) -> URL:
        url = super().engine_url(is_async=is_async)
        if not self.in_memory:
            if self.config.readonly:
                return self._readonly_file_url(url)
            if url.database and not url.database.startswith("file:"):
                Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            return url
        return url.set(database=self._memory_uri(), query={"uri": "true"})

    def _readonly_file_url(self, url: URL) -> URL:
        """The file opened with SQLite's mode=ro: the OS-level open is read-only, so no
        PRAGMA, ATTACH or statement of this connection can write (or create) a file."""
        database = url.database or ""
        if not database.startswith("file:"):
            database = "file:" + str(Path(database).expanduser().resolve())
        return url.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})

    def login_can_write(self, connection: Connection) -> bool | None:
        # A readonly = true file is opened mode=ro (the OS refuses writes); anything else
        # is writable by whoever holds the connection (query_only is one PRAGMA away).
        return self.in_memory or not self.config.readonly

    def _memory_uri(self) -> str:
        with self._lock:
            if self._memdb_name is None:
                self._memdb_name = f"/dbwire-{self.config.name}-{uuid.uuid4().hex}"
                uri = f"file:{self._memdb_name}?vfs=memdb"
                self._anchor = sqlite3.connect(uri, uri=True, check_same_thread=False)
            return f"file:{self._memdb_name}?vfs=memdb"

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        # Sessions may move between threads (scoped sessions, thread pools); SQLite's
        # own check would refuse that, and the pool already serialises use.
        return {"check_same_thread": False}

    def configure_engine(self, engine: Engine, *, is_async: bool) -> None:
        readonly = self.config.readonly
        is_file = not self.in_memory

        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function("REGEXP", 2, regexp, deterministic=True)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                if is_file and not readonly:
                    # an event loop must not sleep here: async connections try once
                    _switch_to_wal(cursor, 0.0 if is_async else self.busy_timeout_ms / 1000)
                if readonly:
                    cursor.execute("PRAGMA query_only=ON")
            finally:
                cursor.close()
            if readonly:
                _sqlite3_connection(dbapi_connection).set_authorizer(_readonly_authorizer)

    def direct_fetcher(self) -> DirectFetch | None:
        return _aiosqlite_fetch

    def set_autocommit(self, driver_connection: Any, on: bool) -> bool:
        # sqlite3 begins a transaction by itself only before INSERT/UPDATE/DELETE; ending
        # it right after the statement is autocommit, with no isolation_level switch
        # (which would commit whatever the connection holds). In-process: no round trip.
        if not on:
            inner = getattr(driver_connection, "_connection", driver_connection)  # aiosqlite
            if inner.in_transaction:
                driver_connection.commit()
        return True

    def begin_readonly(self, dbapi_connection: Any) -> None:
        if self.config.readonly:
            return  # every connection was made read-only when it opened
        sqlite_conn = _sqlite3_connection(dbapi_connection)
        sqlite_conn.set_authorizer(None)  # a second transaction on the same connection
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()
        # query_only stops writes to this database only: ATTACH still creates (and writes)
        # other files. SQLite's authorizer refuses every action that is not a read.
        sqlite_conn.set_authorizer(_readonly_authorizer)

    def end_readonly(self, dbapi_connection: Any) -> None:
        if self.config.readonly:
            return  # the whole database is read-only; keep it so
        _sqlite3_connection(dbapi_connection).set_authorizer(None)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=OFF")
        finally:
            cursor.close()

    def is_readonly_violation(self, exc: BaseException) -> bool:
        text = str(exc)
        refusals = (
            "attempt to write a readonly database",
            "not authorized",
            "authorization denied",
        )
        return any(refusal in text for refusal in refusals)

    def close(self) -> None:
        with self._lock:
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None

    # -- the local DuckDB store (DuckDB store issue) ---
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """DuckDB's sqlite extension reads the file directly."""
        from dbwire.types import DuckDBAttach

        return DuckDBAttach(
            target=self.attachable_file(), attach_type="sqlite", extensions=("sqlite_scanner",)
        )
