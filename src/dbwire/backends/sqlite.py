"""The SQLite backend: sqlite3 (sync) and aiosqlite (async), file or shared in-memory."""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine

from dbwire.backends._accepts import (
    SQLITE_CONNECT_ARGS,
    SQLITE_QUERY_KEYS,
    check_sqlite_uri_keys,
    refuse_url_parts,
)
from dbwire.backends._query import QueryKey
from dbwire.backends.base import Backend

if TYPE_CHECKING:
    from dbwire.local import DuckDBAttach

_MEMORY_NAMES = {None, "", ":memory:"}


def regexp(pattern: str | None, item: object) -> bool:
    """SQLite's REGEXP operator: `item REGEXP pattern`; NULL or a bad pattern never matches."""
    if pattern is None or item is None:
        return False
    try:
        return re.search(pattern, str(item)) is not None
    except re.error:
        return False


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
            if url.database and not url.database.startswith("file:"):
                Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            return url
        return url.set(database=self._memory_uri(), query={"uri": "true"})

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

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function("REGEXP", 2, regexp, deterministic=True)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                if is_file and not readonly:
                    cursor.execute("PRAGMA journal_mode=WAL")
                if readonly:
                    cursor.execute("PRAGMA query_only=ON")
            finally:
                cursor.close()

    def begin_readonly(self, dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    def end_readonly(self, dbapi_connection: Any) -> None:
        if self.config.readonly:
            return  # the whole database is read-only; keep it so
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=OFF")
        finally:
            cursor.close()

    def is_readonly_violation(self, exc: BaseException) -> bool:
        return "attempt to write a readonly database" in str(exc)

    def close(self) -> None:
        with self._lock:
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None

    # -- the local DuckDB store (DuckDB store issue) ---
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """DuckDB's sqlite extension reads the file directly."""
        from dbwire.local import DuckDBAttach

        return DuckDBAttach(
            target=self.attachable_file(), attach_type="sqlite", extensions=("sqlite_scanner",)
        )
