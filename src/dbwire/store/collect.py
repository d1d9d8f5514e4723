"""store.collect(): pull a source's rows into a local DuckDB table by the fastest path.

Measured by bench/collect.py (1M and 5M rows x 5 columns into a DuckDB file, every tool in
a fresh process; bench/RESULTS.md has the tables):

- PostgreSQL: DuckDB's postgres extension (binary COPY, straight into the table) is the
  default, also when adbc-driver-postgresql is installed. ADBC's driver (`method="adbc"`)
  spends the same CPU on a 1M-row copy (0.76 s against 0.81 s) and finishes ahead at 1M
  only by decoding on a second thread (0.68 s against 0.81 s on a quiet machine), ties at
  5M (2.90 s against 2.76 s), and holds 45-90 MB more (pyarrow and its batches: 385 MB
  against 294 MB at 5M), where the store's memory budget is; connectorx was 1.7-1.8x
  slower; SQLAlchemy batches slower still. Revisit if ADBC's memory comes down.
- MySQL/MariaDB: connectorx's Arrow stream (`dbwire[fast]`), 3-4x faster than DuckDB's
  mysql extension, which is used when connectorx is not installed.
- SQLite and DuckDB files: DuckDB reads them itself; S3 files are read by httpfs.
- Anything else: SQLAlchemy with a server-side cursor, in Arrow batches.

Every path streams. DuckDB's own scans pipeline into the table (spilling to the store's
temp_directory beyond memory_limit); connectorx's and ADBC's Arrow readers are scanned by
DuckDB in one CREATE TABLE AS (arrow_sources.py), so a few batches are in memory, never
the table; the SQLAlchemy path holds one batch at a time. connectorx and ADBC log in by
themselves: dbwire's SQLAlchemy engine is used only to explain a failure.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Required, TypedDict, Unpack

from dbwire.errors import ConfigError, ConnectError, DbwireError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbwire.database import Database
    from dbwire.types import DuckDBAttach

METHODS = ("duckdb", "connectorx", "adbc", "sqlalchemy")
_TABLE_NAME = re.compile(r"^\s*[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*){0,2}\s*$")
_BATCH_VIEW = "__dbwire_collect_batch"
# What DuckDB says when an Arrow stream it scans fails to give its next batch.
_STREAM_FAILED = "arrow_scan: get_next failed"
# Rows per batch of connectorx and SQLAlchemy when the caller names none. ADBC then keeps its
# driver's own batches (16 MiB of COPY data): cut to 100,000 rows the same 1M-row copy cost
# about 0.2 s more CPU than raw ADBC (bench/collect.py), for no memory a stream needs.
DEFAULT_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class CollectProgress:
    """How far a collection is: rows so far (stream and batch paths) or DuckDB's estimated
    fraction; `estimate` is the source's own row-count estimate of a whole table
    (PostgreSQL's pg_class.reltuples, MySQL's information_schema.TABLES), None if unknown."""

    table: str
    method: str
    rows: int | None = None
    fraction: float | None = None
    elapsed: float = 0.0
    estimate: int | None = None


ProgressCallback = Callable[[CollectProgress], None]


class IntoStore(Protocol):
    """What collect() needs of the store it fills (LocalStore), so it need not import it."""

    @property
    def connection(self) -> duckdb.DuckDBPyConnection: ...

    @property
    def attached(self) -> dict[str, str]: ...

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection: ...

    def _alias_for(self, database: str, spec: DuckDBAttach) -> str | None: ...

    def _attach_resolved(
        self, database: Database, name: str, spec: DuckDBAttach, readonly: bool
    ) -> str: ...

    def _catalog_exists(self, alias: str) -> bool: ...

    def _log_collect(
        self, database: str, table: str, method: str, rows: int, secs: float
    ) -> None: ...


def is_table_name(text: str) -> bool:
    """True for `table`, `schema.table` or `catalog.schema.table`, False for a query."""
    return bool(_TABLE_NAME.match(text))


def choose_method(db: Database, query_or_table: str) -> str:
    """The fastest way to collect from this backend (see the module docstring)."""
    return db.backend.collect_method(is_table_name(query_or_table), _has_connectorx())


def _has_connectorx() -> bool:
    return importlib.util.find_spec("connectorx") is not None


class CollectOptions(TypedDict, total=False):
    """run()'s keyword arguments, so collect() passes them on without restating them
    (LocalStore.collect() documents each one)."""

    table: Required[str]
    mode: str
    batch_size: int | None
    method: str | None
    progress: ProgressCallback | None


def collect(
    store: IntoStore, db: Database, query_or_table: str, **options: Unpack[CollectOptions]
) -> int:
    """Copy `query_or_table` from `db` into the store's `table`; return the table's new rows.

    See LocalStore.collect() for the arguments.
    """
    return run(store, db, query_or_table, **options).rows


@dataclass(frozen=True)
class CollectResult:
    """What one collect() did: rows copied, the method that ran, how long it took."""

    table: str
    method: str
    rows: int
    seconds: float
    #: the source's row-count estimate (pg_class.reltuples, information_schema), if asked
    estimate: int | None = None

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds > 0 else None


def run(
    store: IntoStore,
    db: Database,
    query_or_table: str,
    *,
    table: str,
    mode: str = "replace",
    batch_size: int | None = None,
    method: str | None = None,
    progress: ProgressCallback | None = None,
) -> CollectResult:
    """collect(), returning the CollectResult (the method chosen, seconds, the estimate)."""
    if mode not in ("replace", "append"):
        raise ConfigError(f"collect mode {mode!r}: use 'replace' or 'append'", database=db.name)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"collect batch_size must be positive, got {batch_size}")
    if not isinstance(query_or_table, str) or not query_or_table.strip():
        raise ConfigError(
            f"database {db.name!r}: collect needs a query or a table name (query_or_table), "
            f"got {query_or_table!r}; pass SQL such as 'SELECT * FROM events' or 'schema.table'",
            database=db.name,
        )
    chosen = method or choose_method(db, query_or_table)
    if chosen not in METHODS:
        raise ConfigError(f"collect method {chosen!r}: use one of {', '.join(METHODS)}")
    target = Target.parse(table)
    started = time.monotonic()
    job = _Job(store, db, query_or_table, target, mode, batch_size, progress)
    if chosen == "duckdb":
        try:
            count = _via_duckdb_s3_checked(job)
        except ConnectError:
            if not db.backend.duckdb_reads_file or method == "duckdb":
                raise
            # A file this process already has open (through db.engine) cannot be attached
            # a second time; reading it through the engine works.
            chosen = "sqlalchemy"
    if chosen == "connectorx":
        from dbwire.store.arrow_sources import LossyTypesError

        try:
            count = _via_connectorx(job)
        except LossyTypesError:
            if method is not None:
                raise
            # Exact values first: DuckDB's mysql extension keeps every DECIMAL digit.
            chosen = "duckdb"
            count = _via_duckdb_s3_checked(job)
    elif chosen == "adbc":
        count = _via_adbc(job)
    elif chosen == "sqlalchemy":
        if not db.backend.has_engine:
            raise DbwireError(
                f"database {db.name!r}: the {db.backend.name} backend is collected by DuckDB "
                "only; leave method unset",
                database=db.name,
            )
        job.method = chosen
        batches = _sqlalchemy_batches(db, query_or_table, job.rows_per_batch)
        count = _ingest(job, batches)
    seconds = time.monotonic() - started
    store._log_collect(db.name, target.display, chosen, count, seconds)
    return CollectResult(target.display, chosen, count, seconds, job.estimate)


@dataclass
class _Job:
    """One collect() call: where from, where to, and how progress is reported."""

    store: IntoStore
    db: Database
    query_or_table: str
    target: Target
    mode: str
    batch_size: int | None
    progress: ProgressCallback | None
    method: str = ""
    estimate: int | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def rows_per_batch(self) -> int:
        """The batch size asked for, else the row-batched paths' default."""
        return self.batch_size or DEFAULT_BATCH_ROWS

    @property
    def is_table(self) -> bool:
        return is_table_name(self.query_or_table)

    def report(self, rows: int | None = None, fraction: float | None = None) -> None:
        if self.progress is None:
            return
        if rows is None and fraction is not None and self.estimate:
            rows = int(fraction * self.estimate)
        self.progress(
            CollectProgress(
                table=self.target.display,
                method=self.method,
                rows=rows,
                fraction=fraction,
                elapsed=time.monotonic() - self.started,
                estimate=self.estimate,
            )
        )


@dataclass(frozen=True)
class Target:
    """The local table: `name` or `schema.name`, each part quoted for DuckDB."""

    schema: str | None
    name: str

    @classmethod
    def parse(cls, table: str) -> Target:
        if not isinstance(table, str) or not table.strip():
            raise ConfigError(f"collect needs a table name, got {table!r}")
        parts = table.split(".")
        if len(parts) > 2 or not all(parts):
            raise ConfigError(f"table {table!r}: expected 'name' or 'schema.name'")
        return cls(schema=parts[0] if len(parts) == 2 else None, name=parts[-1])

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def sql(self) -> str:
        from dbwire.store.quoting import quote_ident

        name = quote_ident(self.name, what="table name")
        if self.schema is None:
            return name
        return f"{quote_ident(self.schema, what='schema name')}.{name}"

    def prepare(self, store: IntoStore, mode: str) -> bool:
        """Create the schema if needed; True if rows go into the existing table (append
        mode, and the table is there)."""
        self.create_schema(store)
        return self.appends(store, mode)

    def appends(self, store: IntoStore, mode: str) -> bool:
        """True if rows go into the existing table: append mode, and the table is there
        (replace mode never needs to look)."""
        return mode == "append" and self.exists(store)

    def create_schema(self, store: IntoStore) -> None:
        from dbwire.store.quoting import quote_ident

        if self.schema is not None:
            store.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")

    def exists(self, store: IntoStore) -> bool:
        """True if the table exists already."""
        row = store.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = $schema AND table_name = $name",
            {"schema": self.schema or "main", "name": self.name},
        ).fetchone()
        return bool(row and row[0])


# -- DuckDB reads the source itself ------------------------------------------------------
def _collect_alias(store: IntoStore, db: Database) -> str:
    # One resolution of the login (libpq's rules, a provider's call) finds an attachment
    # and, failing that, makes one.
    spec = db.backend.duckdb_attach(readonly=True)
    alias = store._alias_for(db.name, spec)
    if alias is not None:
        return alias
    taken = store.attached.get(db.name)
    free = taken == db.name or (taken is None and not store._catalog_exists(db.name))
    # The name may belong to another attached database or to the store's own file
    # (a store file big.duckdb is the catalog "big"): then use a private alias.
    alias = db.name if free else f"_dbwire_collect_{db.name}"
    return store._attach_resolved(db, alias, spec, readonly=True)


def _source_sql(
    store: IntoStore, db: Database, query_or_table: str
) -> tuple[str, dict[str, object], str]:
    """The SELECT that reads the source in DuckDB, its parameters, and the source's alias."""
    from dbwire.store.quoting import quote_ident

    backend = db.backend
    alias = _collect_alias(store, db)
    own = backend.duckdb_source(query_or_table)
    if own is not None:  # a source DuckDB reads through its secret only (S3 paths)
        return own, {}, alias
    if is_table_name(query_or_table):
        parts = [quote_ident(alias, what="alias")]
        parts += [quote_ident(p) for p in query_or_table.strip().split(".")]
        return "SELECT * FROM " + ".".join(parts), {}, alias
    function = backend.duckdb_query_function
    if function is None:
        raise DbwireError(
            f"database {db.name!r}: DuckDB can collect only whole tables from {backend.label}; "
            "pass a table name, or method='sqlalchemy' for a query",
            database=db.name,
        )
    sql = f"SELECT * FROM {function}($alias, $query)"
    return sql, {"alias": alias, "query": query_or_table}, alias


def _via_duckdb_s3_checked(job: _Job) -> int:
    """_via_duckdb, with an IO error the backend explains (an unreachable S3 endpoint)
    raised as the error it names."""
    import duckdb

    try:
        return _via_duckdb(job)
    except duckdb.IOException as exc:
        explained = job.db.backend.duckdb_io_error(exc)
        if explained is not None:
            raise explained from None
        raise


def _via_duckdb(job: _Job) -> int:
    store, target = job.store, job.target
    job.method = "duckdb"
    # Before the attach: duckdb_tables() lists every attached catalog, and a server's
    # costs a round trip for its table list (20 ms on loopback).
    appending = target.appends(store, job.mode)
    source, params, alias = _source_sql(store, job.db, job.query_or_table)
    if job.progress is not None and job.is_table:
        job.estimate = _duckdb_estimate(store, job.db, alias, job.query_or_table)
    target.create_schema(store)  # once the source is attached: a failed attach leaves none
    with _poll_progress(job):
        if appending:
            sql = f"INSERT INTO {target.sql} BY NAME {source}"
        else:
            sql = f"CREATE OR REPLACE TABLE {target.sql} AS {source}"
        row = store.execute(sql, params).fetchone()  # either statement returns its row count
    return int(row[0]) if row else 0


def _pg_estimate_sql(table: str) -> str:
    # reltuples: what the last VACUUM/ANALYZE counted, -1 when never analyzed. The name is a
    # checked table name ([A-Za-z_][\w$]* parts), so it cannot close the literal.
    return f"SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('{table.strip()}')"


def _my_estimate_sql(table: str) -> str:
    parts = table.strip().split(".")
    schema = f"'{parts[-2]}'" if len(parts) > 1 else "DATABASE()"
    return (
        "SELECT TABLE_ROWS FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = '{parts[-1]}'"
    )


def _as_estimate(value: object) -> int | None:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _duckdb_estimate(store: IntoStore, db: Database, alias: str, table: str) -> int | None:
    """The source's own row estimate, through the attached database (PostgreSQL only)."""
    if db.backend.name != "postgresql":
        return None
    try:
        row = store.execute(
            "SELECT * FROM postgres_query($alias, $query)",
            {"alias": alias, "query": _pg_estimate_sql(table)},
        ).fetchone()
    except Exception:  # an estimate is a nicety: never fail a collect for it
        return None
    return _as_estimate(row[0]) if row else None


@contextmanager
def _poll_progress(job: _Job) -> Iterator[None]:
    """Report DuckDB's own progress estimate (query_progress) from a helper thread."""
    if job.progress is None:
        yield
        return
    con = job.store.connection
    con.execute("SET enable_progress_bar = true")
    done = threading.Event()

    def poll() -> None:
        while not done.wait(0.2):
            try:
                value = float(con.query_progress())
            except Exception:  # the query finished between the check and the call
                return
            job.report(fraction=value / 100 if value >= 0 else None)

    thread = threading.Thread(target=poll, name="dbwire-collect-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        con.execute("RESET enable_progress_bar")


# -- Arrow streams: connectorx or ADBC, scanned by DuckDB in one statement ---------------------
def _via_connectorx(job: _Job) -> int:
    from dbwire.store import arrow_sources

    job.method = "connectorx"
    db = job.db
    estimate_sql = None
    if job.progress is not None and job.is_table:  # asked on the login connectorx needs
        make = _my_estimate_sql if db.backend.name == "mysql" else _pg_estimate_sql
        estimate_sql = make(job.query_or_table)
    with arrow_sources.connectorx_stream(
        db,
        job.query_or_table,
        is_table=job.is_table,
        batch_size=job.rows_per_batch,
        estimate_sql=estimate_sql,
    ) as (reader, preflight):
        job.estimate = _as_estimate(preflight.estimate)
        return _ingest_stream(job, reader, preflight.decimals)


def _via_adbc(job: _Job) -> int:
    from dbwire.store import arrow_sources

    job.method = "adbc"
    with arrow_sources.adbc_connection(job.db) as conn:
        if job.progress is not None and job.is_table:
            try:
                job.estimate = _as_estimate(
                    arrow_sources.adbc_scalar(conn, _pg_estimate_sql(job.query_or_table))
                )
            except Exception:  # an estimate is a nicety
                job.estimate = None
        with arrow_sources.adbc_stream(
            conn, job.db, job.query_or_table, is_table=job.is_table, batch_size=job.batch_size
        ) as reader:
            return _ingest_stream(job, reader)


class _SourceFailed(Exception):
    """Raised into DuckDB's scan when the source's stream fails; the real error is kept."""


def _ingest_stream(
    job: _Job, reader: pa.RecordBatchReader, decimals: dict[str, tuple[int, int]] | None = None
) -> int:
    """One `CREATE TABLE ... AS SELECT * FROM <reader>` (or INSERT ... BY NAME): DuckDB pulls
    batches as it writes them, so memory holds a few batches, not the table. `decimals`
    casts DECIMAL columns back to the precision and scale the source declared."""
    from dbwire.store import arrow_sources
    from dbwire.store.quoting import quote_ident

    pa = arrow_sources.require_pyarrow(job.db)
    store, target = job.store, job.target
    con = store.connection
    counted = 0
    failure: list[BaseException] = []

    def batches() -> Iterator[Any]:
        nonlocal counted
        try:
            for batch in reader:
                counted += batch.num_rows
                job.report(rows=counted)
                yield batch
        except Exception as exc:
            failure.append(exc)
            raise _SourceFailed("the source stopped sending rows") from None

    # Counting batches for progress takes a hop through Python per batch (measured: 4-5%
    # of a connectorx copy); without a progress callback DuckDB reads the driver's own
    # stream, and the statement's row count is the count.
    stream = (
        reader
        if job.progress is None
        else pa.RecordBatchReader.from_batches(reader.schema, batches())
    )
    casts = [
        f"CAST({quote_ident(name)} AS DECIMAL({p}, {s})) AS {quote_ident(name)}"
        for name, (p, s) in (decimals or {}).items()
        if name in reader.schema.names
    ]
    select = "SELECT *" + (f" REPLACE ({', '.join(casts)})" if casts else "")
    appending = target.prepare(store, job.mode)
    con.register(_BATCH_VIEW, stream)
    try:
        if appending:
            sql = f"INSERT INTO {target.sql} BY NAME {select} FROM {_BATCH_VIEW}"
        else:
            sql = f"CREATE OR REPLACE TABLE {target.sql} AS {select} FROM {_BATCH_VIEW}"
        written = store.execute(sql).fetchone()
    except Exception as exc:
        if failure:
            raise arrow_sources.explain_failure(job.db, failure[0], job.method) from None
        if _STREAM_FAILED in str(exc):  # the driver's stream broke off: the source's fault
            raise arrow_sources.explain_failure(job.db, exc, job.method) from None
        raise
    finally:
        con.unregister(_BATCH_VIEW)
    if stream is reader:
        counted = int(written[0]) if written else 0
    return counted


# -- SQLAlchemy batches: rows to Arrow, one batch at a time ----------------------------------
def _ingest(job: _Job, batches: Iterable[pa.Table]) -> int:
    store, target = job.store, job.target
    con = store.connection
    created = target.prepare(store, job.mode)
    total = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for batch in batches:
            con.register(_BATCH_VIEW, batch)
            try:
                if created:
                    store.execute(f"INSERT INTO {target.sql} BY NAME SELECT * FROM {_BATCH_VIEW}")
                else:
                    store.execute(
                        f"CREATE OR REPLACE TABLE {target.sql} AS SELECT * FROM {_BATCH_VIEW}"
                    )
                    created = True
            finally:
                con.unregister(_BATCH_VIEW)
            total += batch.num_rows
            job.report(rows=total)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return total


def _arrow_column(pa: Any, values: list[Any]) -> Any:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # UUIDs, ranges, mixed types...: keep the text, which DuckDB can cast later.
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _sqlalchemy_batches(db: Database, query_or_table: str, batch_size: int) -> Iterator[pa.Table]:
    from sqlalchemy import text

    from dbwire.store.arrow_sources import require_pyarrow

    pa = require_pyarrow(db)
    with db.connect() as conn:
        if is_table_name(query_or_table):
            preparer = conn.dialect.identifier_preparer
            name = ".".join(preparer.quote(p) for p in query_or_table.strip().split("."))
            sql = f"SELECT * FROM {name}"
        else:
            sql = query_or_table
        # A server-side cursor (psycopg, PyMySQL's SSCursor): one batch in memory at a time.
        statement = text(sql).execution_options(stream_results=True, yield_per=batch_size)
        result = conn.execute(statement)
        names = list(result.keys())
        produced = False
        for rows in result.partitions(batch_size):
            columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
            arrays = [_arrow_column(pa, list(col)) for col in columns]
            produced = True
            yield pa.Table.from_arrays(arrays, names=names)
        if not produced:
            yield pa.Table.from_arrays([pa.array([], type=pa.string()) for _ in names], names=names)
