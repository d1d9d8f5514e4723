"""The query runner: one statement on a connection or in the DuckDB store, paged from a
server-side cursor, with a row limit per page, a timeout and cancellation on the server.

Results are never read whole: PostgreSQL runs a named (server-side) cursor, MySQL and
MariaDB an unbuffered one, DuckDB streams its result; each page is one fetchmany(). An
open query keeps its cursor (and its pooled connection) until it is read to the end,
cancelled, or left unread for `ttl` seconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import logging
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbwire.backends import readonly_guard
from dbwire.database import Database
from dbwire.errors import DbwireError, ReadOnlyError, describe, scrub
from dbwire.serve.errors import (
    BadRequestError,
    QueryCancelledError,
    QueryFailedError,
    QueryIdInUseError,
    UnknownQueryError,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection as SAConnection

    from dbwire.store.local import LocalStore

logger = logging.getLogger("dbwire.serve")

QUERY_ID = re.compile(r"^q_[A-Za-z0-9_-]{8,64}$")
MAX_LIMIT = 10_000
MAX_OPEN = 32
#: Unread results one connection may hold open: each holds a pooled connection (the pool's
#: default is 5 + 10 overflow), so the oldest idle one is closed to make room.
MAX_OPEN_PER_DATABASE = 4


def new_query_id() -> str:
    """A fresh, unguessable query id."""
    return "q_" + secrets.token_urlsafe(12)


def json_value(value: Any) -> Any:
    """A database value as JSON can carry it (dates as ISO text, bytes as base64)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return str(value)


# PostgreSQL's internal type names as SQL spells them (psycopg reports the internal ones).
_SQL_NAMES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "float4": "REAL",
    "float8": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "bpchar": "CHAR",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "timetz": "TIME WITH TIME ZONE",
}
_PY_TYPES = {bool: "BOOLEAN", int: "INTEGER", float: "DOUBLE", str: "VARCHAR", bytes: "BLOB"}


def _mysql_type_names() -> dict[int, str]:
    try:
        from pymysql.constants import FIELD_TYPE
    except ImportError:
        return {}
    return {v: k for k, v in vars(FIELD_TYPE).items() if k.isupper() and isinstance(v, int)}


def column_types(description: Sequence[Any] | None, first: Sequence[Any] | None) -> list[str]:
    """The type name of each column: the driver's when it knows one, else the value's."""
    if not description:
        return []
    mysql: dict[int, str] | None = None
    names: list[str] = []
    for index, col in enumerate(description):
        shown = getattr(col, "type_display", None)  # psycopg 3
        code = col[1] if len(col) > 1 else None
        if shown is None and code is not None and not isinstance(code, int):
            shown = str(code)  # DuckDB: a type object whose str() is its SQL name
        if shown is None and isinstance(code, int):
            mysql = _mysql_type_names() if mysql is None else mysql
            shown = mysql.get(code)
        if shown is None and first is not None and index < len(first):
            value = first[index]
            shown = _PY_TYPES.get(type(value), type(value).__name__) if value is not None else None
        text = str(shown or "UNKNOWN")
        names.append(_SQL_NAMES.get(text.lower(), text).upper())
    return names


@dataclass
class Page:
    """One page of a query's result, as the API returns it."""

    query_id: str
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    has_more: bool
    elapsed_ms: float
    offset: int
    next_offset: int | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self, limit: int) -> dict[str, Any]:
        """The query response of the API contract."""
        nxt = (
            f"/api/query/{self.query_id}/rows?offset={self.next_offset}&limit={limit}"
            if self.next_offset is not None
            else None
        )
        body: dict[str, Any] = {
            "id": self.query_id,
            "columns": self.columns,
            "rows": self.rows,
            "row_count": len(self.rows),
            "offset": self.offset,
            "has_more": self.has_more,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "next": nxt,
        }
        if self.warnings:
            body["warnings"] = self.warnings
        return body


class Cursor:
    """An open result on a server, read page by page; cancel() stops it on the server."""

    def __init__(self) -> None:
        self.description: Sequence[Any] | None = None
        self.rowcount: int = -1

    def fetch(self, n: int) -> list[Sequence[Any]]:
        """Up to n more rows."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the running statement on the server."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the cursor and its connection."""
        raise NotImplementedError


class EngineCursor(Cursor):
    """A statement on a Database's pooled connection, streamed from the server."""

    def __init__(self, db: Database, *, write: bool) -> None:
        super().__init__()
        self.db = db
        self.write = write
        self._conn: SAConnection = db.connect(readonly=not write)
        self._result: Any = None
        # Whoever cancels needs the driver connection before the statement runs.
        self._driver = self._conn.connection.driver_connection

    def execute(self, sql: str) -> None:
        # A server-side cursor takes only a query (PostgreSQL's DECLARE refuses DELETE):
        # a write runs on a plain cursor; what it returns (RETURNING) is read at once.
        options = {
            "stream_results": not self.write or _is_read(sql, self.db),
            "no_parameters": True,
        }
        self._result = self._conn.execution_options(**options).exec_driver_sql(sql)
        self.rowcount = getattr(self._result, "rowcount", -1)
        if self._result.returns_rows:
            self.description = self._result.cursor.description
        elif self.write:
            self._conn.commit()

    def fetch(self, n: int) -> list[Sequence[Any]]:
        if self._result is None or not self._result.returns_rows:
            return []
        return [tuple(row) for row in self._result.fetchmany(n)]

    def cancel(self) -> None:
        if not self.db.backend.cancel(self._driver, self.db.engine):
            self._conn.invalidate()  # drop the session; the server ends its work

    def close(self) -> None:
        try:
            if self._result is not None:
                self._result.close()
            if self.write and self._conn.in_transaction():
                self._conn.commit()
        finally:
            self._conn.close()


def _is_read(sql: str, db: Database) -> bool:
    try:
        readonly_guard.check_statement(sql, database=db.name, dialect=db.backend.dialect_name)
    except ReadOnlyError:
        return False
    return True


class StoreCursor(Cursor):
    """A statement in the DuckDB store, on its own DuckDB cursor (streamed)."""

    def __init__(self, store: LocalStore) -> None:
        super().__init__()
        self._cursor = store.connection.cursor()

    def execute(self, sql: str) -> None:
        self._cursor.execute(sql)
        self.description = self._cursor.description

    def fetch(self, n: int) -> list[Sequence[Any]]:
        if self.description is None:
            return []
        return list(self._cursor.fetchmany(n))

    def cancel(self) -> None:
        self._cursor.interrupt()

    def close(self) -> None:
        self._cursor.close()


@dataclass
class _Open:
    id: str
    cursor: Cursor
    lock: threading.Lock
    database: str = "store"
    columns: list[dict[str, str]] = field(default_factory=list)
    position: int = 0
    lookahead: list[Sequence[Any]] = field(default_factory=list)
    done: bool = False
    cancelled: bool = False
    last: Page | None = None
    used: float = field(default_factory=time.monotonic)


class QueryRunner:
    """Runs queries and keeps their open cursors by id, expiring idle ones."""

    def __init__(
        self,
        *,
        secrets_of: Callable[[], list[str]],
        ttl: float = 300.0,
        max_open: int = MAX_OPEN,
        max_per_database: int = MAX_OPEN_PER_DATABASE,
    ) -> None:
        self._secrets_of = secrets_of
        self.ttl = ttl
        self.max_open = max_open
        self.max_per_database = max_per_database
        self._open: dict[str, _Open] = {}
        self._pending: set[str] = set()  # ids claimed by queries still starting
        self._early: set[str] = set()  # ids cancelled before their cursor existed
        self._lock = threading.Lock()

    # -- running ------------------------------------------------------------------------
    def run(
        self,
        make: Callable[[], Cursor],
        sql: str,
        *,
        limit: int,
        timeout_s: float,
        query_id: str | None = None,
        database: str = "store",
        warnings: list[str] | None = None,
    ) -> Page:
        """Start a statement and read its first page (within timeout_s, else cancelled)."""
        qid = self._claim(query_id, database)
        started = time.perf_counter()
        entry: _Open | None = None
        try:
            cursor = make()
            entry = _Open(id=qid, cursor=cursor, lock=threading.Lock(), database=database)
            with self._lock:
                self._open[qid] = entry
                if qid in self._early:
                    entry.cancelled = True
            if entry.cancelled:
                raise QueryCancelledError("cancelled", database=database)
            with entry.lock, self._deadline(entry, timeout_s):
                cursor.execute(sql)  # type: ignore[attr-defined]
                first = cursor.fetch(limit + 1)
            if entry.cancelled:
                # MariaDB's KILL QUERY ends SLEEP() with a result instead of an error.
                raise QueryCancelledError("cancelled", database=database)
            with entry.lock:
                types = column_types(cursor.description, first[0] if first else None)
                names = [str(col[0]) for col in cursor.description or ()]
                entry.columns = [{"name": n, "type": t} for n, t in zip(names, types, strict=False)]
                page = self._page(entry, first, limit, started, offset=0)
        except Exception as exc:
            cancelled = entry is not None and entry.cancelled
            self._discard(qid)
            raise self._failure(exc, database, cancelled) from None
        finally:
            with self._lock:
                self._pending.discard(qid)
                self._early.discard(qid)
        page.warnings = list(warnings or [])
        return page

    def rows(self, query_id: str, *, offset: int, limit: int, timeout_s: float = 30.0) -> Page:
        """The page at offset (the next one, or the last one again)."""
        entry = self._get(query_id)
        started = time.perf_counter()
        with entry.lock:
            if entry.last is not None and offset == entry.last.offset:
                entry.used = time.monotonic()
                return entry.last  # a retried request gets the same page
            if offset != entry.position:
                raise BadRequestError(
                    f"query {query_id}: pages are read in order; the next one starts at "
                    f"offset {entry.position}",
                    field="offset",
                    fix=f"ask for offset={entry.position}",
                )
            if entry.done:
                return self._page(entry, [], limit, started, offset=offset)
            try:
                with self._deadline(entry, timeout_s):
                    more = entry.lookahead + entry.cursor.fetch(limit + 1 - len(entry.lookahead))
            except Exception as exc:
                cancelled = entry.cancelled
                self._discard(query_id)
                raise self._failure(exc, "query", cancelled) from None
            return self._page(entry, more, limit, started, offset=offset)

    def cancel(self, query_id: str) -> bool:
        """Stop a query on its server and free its cursor; False when none is open.

        A query that is running right now is only stopped here: its own thread sees the
        error and frees the cursor, so no connection is closed under a running statement.
        """
        with self._lock:
            entry = self._open.get(query_id)
            if entry is None:
                if query_id in self._pending:
                    self._early.add(query_id)  # still connecting: stopped once it starts
                    return True
                return False
        self._cancel(entry)
        if entry.lock.acquire(blocking=False):
            try:
                self._discard(query_id)
            finally:
                entry.lock.release()
        return True

    def cancel_for(self, database: str) -> None:
        """Cancel every open query on one connection (it is about to change or go)."""
        with self._lock:
            ids = [q for q, e in self._open.items() if e.database == database]
        for qid in ids:
            self.cancel(qid)

    def close(self) -> None:
        """Cancel and close every open query."""
        with self._lock:
            ids = list(self._open)
        for qid in ids:
            self.cancel(qid)

    def open_ids(self) -> list[str]:
        """The ids of the queries holding a cursor now."""
        with self._lock:
            return list(self._open)

    # -- internals ------------------------------------------------------------------------
    def _claim(self, query_id: str | None, database: str) -> str:
        self.expire()
        if query_id is not None and not QUERY_ID.match(query_id):
            raise BadRequestError(
                "query id must look like 'q_' followed by 8 to 64 letters, digits, '_' or '-'",
                field="id",
                fix="leave it out and the server picks one",
            )
        qid = query_id or new_query_id()
        with self._lock:
            if qid in self._open or qid in self._pending:
                raise QueryIdInUseError(
                    f"query id {qid} is in use", field="id", fix="pick a new id for each query"
                )
            self._pending.add(qid)
            # Only idle results are closed to make room; a running one finishes first.
            idle = [e for e in self._open.values() if not e.lock.locked()]
            same = [e for e in idle if e.database == database]
            victims: list[_Open] = []
            if sum(e.database == database for e in self._open.values()) >= self.max_per_database:
                victims += sorted(same, key=lambda e: e.used)[:1]
            if len(self._open) >= self.max_open and idle:
                victims.append(min(idle, key=lambda e: e.used))
        for victim in {v.id: v for v in victims}.values():
            logger.info("dbwire serve: closing idle query %s to make room", victim.id)
            self.cancel(victim.id)
        return qid

    def _page(
        self, entry: _Open, fetched: list[Sequence[Any]], limit: int, started: float, *, offset: int
    ) -> Page:
        rows, entry.lookahead = fetched[:limit], fetched[limit:]
        has_more = bool(entry.lookahead)
        entry.position = offset + len(rows)
        entry.used = time.monotonic()
        page = Page(
            query_id=entry.id,
            columns=entry.columns,
            rows=[[json_value(v) for v in row] for row in rows],
            has_more=has_more,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            offset=offset,
            next_offset=entry.position if has_more else None,
        )
        entry.last = page
        if not has_more:
            entry.done = True
            self._discard(entry.id)  # read to the end: the cursor and connection go back now
        return page

    def _get(self, query_id: str) -> _Open:
        self.expire()
        with self._lock:
            entry = self._open.get(query_id)
        if entry is None:
            raise UnknownQueryError(
                f"no open query {query_id!r}: it was read to the end, cancelled, or left "
                f"unread for more than {self.ttl:g}s",
                fix="run the query again",
            )
        return entry

    def _discard(self, query_id: str) -> None:
        with self._lock:
            entry = self._open.pop(query_id, None)
        if entry is not None:
            try:
                entry.cursor.close()
            except Exception as exc:  # a cancelled cursor may refuse to close politely
                logger.debug("dbwire serve: closing query %s: %s", query_id, type(exc).__name__)

    def _cancel(self, entry: _Open) -> None:
        entry.cancelled = True
        try:
            entry.cursor.cancel()
        except Exception as exc:
            logger.warning(
                "dbwire serve: cancelling query %s failed: %s",
                entry.id,
                describe(exc, self._secrets_of()),
            )

    def expire(self) -> None:
        """Close queries left unread for longer than ttl."""
        now = time.monotonic()
        with self._lock:
            stale = [q for q, e in self._open.items() if now - e.used > self.ttl]
        for qid in stale:
            self.cancel(qid)

    class _Timer:
        def __init__(self, runner: QueryRunner, entry: _Open, timeout_s: float) -> None:
            self._timer = threading.Timer(timeout_s, runner._cancel, args=(entry,))
            self._timer.daemon = True

        def __enter__(self) -> None:
            self._timer.start()

        def __exit__(self, *exc: object) -> None:
            self._timer.cancel()

    def _deadline(self, entry: _Open, timeout_s: float) -> QueryRunner._Timer:
        return QueryRunner._Timer(self, entry, timeout_s)

    def _failure(self, exc: BaseException, database: str, cancelled: bool) -> DbwireError:
        if cancelled:
            return QueryCancelledError(
                "the query was cancelled (by request or because it ran past timeout_s)",
                database=database,
                fix="raise timeout_s, or narrow the query",
            )
        if isinstance(exc, DbwireError):
            exc.args = tuple(
                scrub(a, self._secrets_of()) if isinstance(a, str) else a for a in exc.args
            )
            return exc
        return QueryFailedError(
            f"database {database!r}: the query failed: "
            f"{describe(exc, self._secrets_of(), first_line=True)}",
            database=database,
            fix="correct the SQL and run it again",
        )


def check_read(sql: str, *, database: str, dialect: str) -> None:
    """Refuse a statement that is not one read, before any server sees it (ReadOnlyError)."""
    readonly_guard.check_statement(sql, database=database, dialect=dialect)


def refuse_write(database: str, why: str) -> ReadOnlyError:
    """The error for a write the query endpoint will not run."""
    return ReadOnlyError(f"database {database!r}: {why}", database=database)
