"""LocalStore: the local DuckDB store, its settings, and attaching dbwire databases to it.

```python
with dbwire.get_duckdb_connection("out/") as store:      # out/assessment.db
    store.attach(dbwire.connect("primary"))               # read-only, through a DuckDB secret
    store.collect("primary", "SELECT * FROM orders", table="orders")
    store.execute("SELECT count(*) FROM orders").fetchone()   # the store is the connection
```

Credentials never enter SQL text: every password or key goes into a temporary DuckDB
secret through bound parameters, so DuckDB's query log and `duckdb_secrets()` (which
redacts secret values) never show it, and error text is scrubbed of it as well.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from dbwire import timeouts
from dbwire.config import Sourced, first_wins, layer
from dbwire.errors import (
    ConfigError,
    ConnectError,
    DbwireError,
    MissingDependencyError,
    describe,
    scrub,
    scrub_exception,
)
from dbwire.store import extensions as _extensions
from dbwire.store.extensions import default_extension_directory, load_extension
from dbwire.store.quoting import quote_ident, quote_literal
from dbwire.types import DuckDBAttach

if TYPE_CHECKING:
    import duckdb

    from dbwire.database import Database
    from dbwire.store.collect import CollectProgress

logger = logging.getLogger("dbwire.local")

STORE_FILE_NAME = "assessment.db"
_STORE_SUFFIXES = {".db", ".duckdb", ".ddb", ".duck"}
_ENV_PREFIX = "DBWIRE_DUCKDB_"
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_LOCK_PID = re.compile(r"PID (\d+)")
_RESERVED_ALIASES = {"memory", "system", "temp", "main"}

CollectMode = Literal["replace", "append"]


@dataclass
class _Attachment:
    database: str
    source: str  # fingerprint of the spec
    readonly: bool
    secret_name: str | None
    attached: bool
    hidden: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class StoreSettings:
    """DuckDB settings of a store; each defaults from $DBWIRE_DUCKDB_<NAME>, then dbwire's default.

    memory_limit: half the machine's (or the container's) memory, so a collection
        spills to temp_directory before it starves the application.
    threads: the CPUs this process may use.
    temp_directory: `<store file>.tmp` for a file store (DuckDB's own choice); a private
        folder under the system temp dir, removed on close, for an in-memory store.
    extension_directory: dbwire's cache folder (see dbwire.store.extensions).
    """

    memory_limit: str
    threads: int
    temp_directory: str
    extension_directory: str


def _memory_bytes() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # a container's cgroup limit, when smaller than the machine
        raw = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if raw.isdigit():
            total = min(total, int(raw))
    except OSError:
        pass
    return int(total)


def default_memory_limit() -> str:
    """Half of the memory this process can have, as a DuckDB size string."""
    return f"{max(256, _memory_bytes() // 2 // 2**20)}MiB"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_store_path(export_path: str | os.PathLike[str] | None) -> Path | None:
    """None for an in-memory store; a directory means `assessment.db` inside it (as dma)."""
    if export_path is None:
        return None
    raw = os.fspath(export_path)
    if raw in ("", ":memory:"):
        return None
    path = Path(raw).expanduser()
    is_dir = (
        path.is_dir()
        or raw.endswith(("/", os.sep))
        or (not path.exists() and path.suffix.lower() not in _STORE_SUFFIXES)
    )
    return path / STORE_FILE_NAME if is_dir else path


def _settings_sources(given: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Sourced]:
    """The store's settings from arguments, then $DBWIRE_DUCKDB_<NAME>, first one wins, as
    for a database's fields (dbwire.config.first_wins); an empty value counts as unset.
    Defaults are left to the caller, which computes only those still missing."""
    arguments = layer({k: v for k, v in given.items() if v}, {}, default="argument")
    variables = {k: f"{_ENV_PREFIX}{k.upper()}" for k in given}
    env = {k: environ[var] for k, var in variables.items() if environ.get(var)}
    return first_wins((arguments, layer(env, {k: f"env {variables[k]}" for k in env}, "env")))


class LocalStore:
    """A DuckDB connection with dbwire's databases attached; also usable as that connection.

    Every attribute of the DuckDB connection is available on the store (`execute`, `sql`,
    `table`, `fetchall`, `register`, ...), so code written for a plain connection keeps
    working. Open it with `dbwire.get_duckdb_connection()`.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        *,
        path: Path | None,
        settings: StoreSettings,
        owned_temp: Path | None = None,
    ) -> None:
        self._con = connection
        self._path = path
        self._settings = settings
        self._owned_temp = owned_temp
        self._attached: dict[str, _Attachment] = {}
        self._lock = threading.RLock()
        self._closed = False

    # -- opening -----------------------------------------------------------------
    @classmethod
    def open(
        cls,
        export_path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        memory_limit: str | None = None,
        threads: int | None = None,
        temp_directory: str | os.PathLike[str] | None = None,
        extension_directory: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> LocalStore:
        """Open (creating folders as needed) the store at export_path; see get_duckdb_connection."""
        try:
            import duckdb
        except ImportError:
            raise MissingDependencyError(
                "the local store needs DuckDB; run: pip install 'dbwire[duckdb]'"
            ) from None
        path = resolve_store_path(export_path)
        chosen = _settings_sources(
            {
                "memory_limit": memory_limit,
                "threads": threads,
                "temp_directory": temp_directory,
                "extension_directory": extension_directory,
            },
            os.environ,
        )
        owned_temp: Path | None = None
        if "temp_directory" in chosen:
            temp: Any = chosen["temp_directory"].value
        elif path is None:
            owned_temp = Path(tempfile.mkdtemp(prefix="dbwire-duckdb-"))
            temp = owned_temp
        else:
            temp = f"{path}.tmp"
        found = chosen.get("extension_directory")
        ext_dir = Path(found.value if found else default_extension_directory())
        found = chosen.get("memory_limit")
        found_threads = chosen.get("threads")
        settings = StoreSettings(
            memory_limit=str(found.value if found else default_memory_limit()),
            threads=int(found_threads.value if found_threads else _cpu_count()),
            temp_directory=os.fspath(temp),
            extension_directory=str(ext_dir),
        )
        try:
            ext_dir.mkdir(parents=True, exist_ok=True)
            if path is not None and not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            where = str(path or ext_dir)
            raise ConfigError(f"DuckDB store {where!r}: cannot create: {exc}") from None
        duck_config: dict[str, Any] = {
            "memory_limit": settings.memory_limit,
            "threads": settings.threads,
            "temp_directory": settings.temp_directory,
            "extension_directory": settings.extension_directory,
        }
        if _extensions.offline():
            # Offline means DuckDB must not try its repository either (autoload still loads
            # what is installed locally).
            duck_config["autoinstall_known_extensions"] = False
        duck_config.update(config or {})
        try:
            con = duckdb.connect(
                ":memory:" if path is None else str(path), read_only=read_only, config=duck_config
            )
        except duckdb.Error as exc:
            if owned_temp is not None:
                shutil.rmtree(owned_temp, ignore_errors=True)
            raise _open_error(path, exc) from None
        # A library must not draw DuckDB's progress bar on the user's terminal.
        con.execute("SET enable_progress_bar_print = false")
        return cls(con, path=path, settings=settings, owned_temp=owned_temp)

    # -- the DuckDB connection -------------------------------------------------------
    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection itself (for APIs that insist on the real type)."""
        self._check_open()
        return self._con

    @property
    def path(self) -> Path | None:
        """The store's file, or None in memory."""
        return self._path

    @property
    def settings(self) -> StoreSettings:
        """The DuckDB settings the store was opened with."""
        return self._settings

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._closed

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self._check_open()
        return getattr(self._con, name)

    def execute(self, query: str, parameters: object = None) -> duckdb.DuckDBPyConnection:
        """DuckDB's execute(); error text is scrubbed of attached databases' secrets."""
        self._check_open()
        try:
            return self._con.execute(query, parameters)
        except Exception as exc:
            raise self._scrubbed(exc) from exc.__cause__

    def sql(self, query: str, *, alias: str = "", params: object = None) -> duckdb.DuckDBPyRelation:
        """DuckDB's sql(); error text is scrubbed of attached databases' secrets."""
        self._check_open()
        try:
            return self._con.sql(query, alias=alias, params=params)
        except Exception as exc:
            raise self._scrubbed(exc) from exc.__cause__

    query = sql

    def _hidden(self) -> list[str]:
        return [value for att in self._attached.values() for value in att.hidden]

    def _scrubbed(self, exc: BaseException) -> BaseException:
        # The original stays reachable as __context__ of what is raised: clean it too.
        scrub_exception(exc, self._hidden())
        text = str(exc)
        clean = scrub(text, self._hidden())
        if clean == text:
            return exc
        try:
            return type(exc)(clean)
        except Exception:
            return DbwireError(clean)

    def _check_open(self) -> None:
        if self._closed:
            raise DbwireError(
                f"the DuckDB store {self._describe()} is closed; open a new one with "
                "dbwire.get_duckdb_connection()"
            )

    def _describe(self) -> str:
        return repr(str(self._path)) if self._path is not None else "(in memory)"

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<LocalStore {self._describe()} attached={sorted(self._attached)}{state}>"

    # -- extensions and attachments ------------------------------------------------------
    def load_extension(self, name: str, *, database: str | None = None) -> str:
        """Load a DuckDB extension, offline first (see dbwire.store.extensions)."""
        self._check_open()
        return load_extension(self._con, name, database=database)

    @property
    def attached(self) -> dict[str, str]:
        """Alias -> dbwire database name, for everything attach() put in the store."""
        return {alias: att.database for alias, att in self._attached.items()}

    def attach(self, db: Database | str, alias: str | None = None, readonly: bool = True) -> str:
        """Attach a dbwire database under `alias` (default: its name); return the alias.

        Attaching the same database again is a no-op; attaching after its configuration or
        credentials changed detaches it, drops its secret and attaches it afresh.

        Args:
            db: a Database, or a URL or configured name for dbwire.connect().
            alias: the catalog name in DuckDB (`SELECT * FROM alias.schema.table`).
            readonly: attach READ_ONLY, so DuckDB refuses writes through it.
        """
        database = _as_database(db)
        name = alias if alias is not None else database.name
        return self._attach_resolved(
            database, name, database.backend.duckdb_attach(readonly=readonly), readonly
        )

    def _attach_resolved(
        self, database: Database, name: str, spec: DuckDBAttach, readonly: bool
    ) -> str:
        """attach() with the spec its backend built already (a collect resolves the login
        once, to find an attachment and to make one)."""
        preflight = None
        if spec.attach_type == "mysql":
            # DuckDB's mysql extension takes no connect timeout (its ATTACH string knows
            # only host, user, passwd, db, port, socket), and a server that accepts but
            # never answers hangs the ATTACH, and with it the store, for good. So dbwire
            # first logs in itself, bounded by connect_timeout, and attaches only a server
            # that answered.
            def preflight() -> None:
                database.execute_query("SELECT 1")

        try:
            return self.attach_spec(
                database.name, name, spec, readonly=readonly, url=database.url, preflight=preflight
            )
        except ConnectError as exc:
            if "no answer within" not in str(exc) and timeouts.is_timeout(exc):
                raise database._timeout_error("attach it to the DuckDB store") from None
            raise

    def attach_spec(
        self,
        database: str,
        alias: str,
        spec: DuckDBAttach,
        *,
        readonly: bool,
        url: str,
        preflight: Callable[[], None] | None = None,
    ) -> str:
        """Attach (or only register the secret of) a spec a backend built; the alias.

        `attach()` calls it for a Database; the S3 source calls it for its own bucket.
        """
        quoted = quote_ident(alias, what="alias")
        self._check_open()
        source = spec.fingerprint()
        with self._lock:
            current = self._attached.get(alias)
            if current is not None:
                if current.source == source and current.readonly == readonly:
                    return alias
                self.detach(alias)
            elif spec.attach and self._catalog_exists(alias):
                raise ConfigError(
                    f"database {database!r}: the store already has a database named {alias!r}; "
                    "attach it under another alias (store.attach(db, alias='...'))",
                    database=database,
                )
            if preflight is not None:
                preflight()
            for extension in spec.extensions:
                load_extension(self._con, extension, database=database)
            hidden = spec.hidden_values()
            secret_name = None
            try:
                if spec.secret_type is not None:
                    secret_name = _secret_name(alias)
                    self._create_secret(secret_name, spec)
                if spec.attach:
                    self._con.execute(_attach_sql(spec, quoted, secret_name, readonly))
            except Exception as exc:
                if secret_name is not None:
                    self._drop_secret(secret_name)
                scrub_exception(exc, hidden)  # still reachable as __context__
                raise _attach_error(database, alias, url, exc, hidden) from None
            self._attached[alias] = _Attachment(
                database=database,
                source=source,
                readonly=readonly,
                secret_name=secret_name,
                attached=spec.attach,
                hidden=hidden,
            )
            logger.debug("attached database %r to the DuckDB store as %r", database, alias)
            return alias

    def _catalog_exists(self, alias: str) -> bool:
        if alias.lower() in _RESERVED_ALIASES:
            return True
        row = self._con.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE lower(database_name) = lower($name)",
            {"name": alias},
        ).fetchone()
        return bool(row and row[0])

    def _create_secret(self, secret_name: str, spec: DuckDBAttach) -> None:
        assert spec.secret_type is not None
        if not _KEY.match(spec.secret_type):
            raise ConfigError(f"invalid DuckDB secret type {spec.secret_type!r}")
        parts = [f"TYPE {spec.secret_type}"]
        params: dict[str, object] = {}
        values = dict(spec.secret)
        if spec.scope is not None:
            values["scope"] = spec.scope
        for index, (key, value) in enumerate(values.items()):
            if value is None:
                continue
            if not _KEY.match(key):
                raise ConfigError(f"invalid DuckDB secret parameter {key!r}")
            parts.append(f"{key.upper()} $p{index}")
            params[f"p{index}"] = value
        # Bound parameters: the values never become SQL text that DuckDB could log.
        self._con.execute(
            f"CREATE OR REPLACE TEMPORARY SECRET {quote_ident(secret_name)} ({', '.join(parts)})",
            params,
        )

    def _drop_secret(self, secret_name: str) -> None:
        try:
            self._con.execute(f"DROP TEMPORARY SECRET IF EXISTS {quote_ident(secret_name)}")
        except Exception as exc:  # cleanup must not hide the error that led here
            logger.debug("could not drop DuckDB secret %s: %s", secret_name, exc)

    def detach(self, name: str) -> bool:
        """Detach what attach() put under `name` and drop its secret; False if nothing was there.

        Safe to call twice (seed 004's cleanup is retried).
        """
        self._check_open()
        with self._lock:
            att = self._attached.pop(name, None)
            if att is None:
                return False
            if att.attached:
                self._con.execute(f"DETACH DATABASE IF EXISTS {quote_ident(name, what='alias')}")
            if att.secret_name is not None:
                self._drop_secret(att.secret_name)
            return True

    def alias_of(self, db: Database) -> str | None:
        """The alias under which this database (as configured now) is attached, if any."""
        return self._alias_for(db.name, db.backend.duckdb_attach(readonly=True))

    def _alias_for(self, database: str, spec: DuckDBAttach) -> str | None:
        """The alias under which `database` is attached as `spec` describes it, if any."""
        source = spec.fingerprint()
        for alias, att in self._attached.items():
            if att.database == database and att.source == source:
                return alias
        return None

    # -- collection ------------------------------------------------------------------
    def collect(
        self,
        db: Database | str,
        query_or_table: str,
        *,
        table: str,
        mode: CollectMode = "replace",
        batch_size: int | None = None,
        method: str | None = None,
        progress: Callable[[CollectProgress], None] | None = None,
    ) -> int:
        """Pull a query's result (or a whole table) into local table `table`; return its row count.

        The fastest path for the backend is chosen (DuckDB's own scanner for PostgreSQL,
        SQLite, DuckDB and S3; connectorx, when installed, for MySQL/MariaDB; SQLAlchemy
        streamed in Arrow batches otherwise). Data streams: memory stays bounded by the
        store's memory_limit and batch_size, whatever the size of the source.

        Args:
            db: a Database, or a URL or configured name.
            query_or_table: SQL in the source's dialect, or a table name (`schema.table`).
            table: the local table (`name` or `schema.name`).
            mode: "replace" the table, or "append" to it (created when missing).
            batch_size: rows per batch on the streaming paths; by default 100,000 for
                connectorx and SQLAlchemy, and ADBC's own batches (16 MiB of COPY data).
            method: force "duckdb", "connectorx" or "sqlalchemy" instead of the fastest.
            progress: called with a CollectProgress now and then while rows arrive.
        """
        from dbwire.store.collect import collect

        return collect(
            self,
            _as_database(db),
            query_or_table,
            table=table,
            mode=mode,
            batch_size=batch_size,
            method=method,
            progress=progress,
        )

    def _log_collect(self, database: str, table: str, method: str, rows: int, secs: float) -> None:
        logger.info(
            "collected %d rows from database %r into %s in %.2fs (%s)",
            rows,
            database,
            table,
            secs,
            method,
        )

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the DuckDB connection (dropping every secret with it); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._attached.clear()
            try:
                self._con.close()
            finally:
                if self._owned_temp is not None:
                    shutil.rmtree(self._owned_temp, ignore_errors=True)

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def get_duckdb_connection(
    export_path: str | os.PathLike[str] | None = None,
    *,
    working_path: str | os.PathLike[str] | None = None,
    read_only: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
    temp_directory: str | os.PathLike[str] | None = None,
    extension_directory: str | os.PathLike[str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> Iterator[LocalStore]:
    """A LocalStore over a DuckDB connection, always closed on exit (also on error).

    Args:
        export_path: None for an in-memory store; a file path opens that file; a directory
            (existing, ending in '/', or without a file suffix) opens `assessment.db` in it.
            Missing folders are created.
        working_path: where DuckDB puts its temporary files (the name dma's callers use
            for temp_directory); created if missing.
        read_only: open the file read-only (several processes may then read it at once).
        memory_limit, threads, temp_directory, extension_directory: DuckDB settings; see
            StoreSettings for the defaults and the $DBWIRE_DUCKDB_* variables.
        config: any other DuckDB settings, passed to duckdb.connect().
    """
    if working_path is not None:
        if temp_directory is not None and os.fspath(temp_directory) != os.fspath(working_path):
            raise ConfigError(
                "DuckDB store: working_path and temp_directory name two different folders; "
                "give only one of them"
            )
        temp_directory = working_path
        try:
            Path(working_path).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"DuckDB store: cannot create working_path {os.fspath(working_path)!r}: "
                f"{exc.strerror}; give a writable folder"
            ) from None
    store = LocalStore.open(
        export_path,
        read_only=read_only,
        memory_limit=memory_limit,
        threads=threads,
        temp_directory=temp_directory,
        extension_directory=extension_directory,
        config=config,
    )
    try:
        yield store
    finally:
        store.close()


# -- helpers ---------------------------------------------------------------------------
def _as_database(db: Database | str) -> Database:
    from dbwire.database import Database, connect

    if isinstance(db, Database):
        db._check_open()  # a closed Database is not attached or collected from either
        return db
    if isinstance(db, str):
        return connect(db)
    raise TypeError(f"expected a dbwire Database, URL or name, got {type(db).__name__}")


def _secret_name(alias: str) -> str:
    slug = re.sub(r"[^a-z0-9_]", "_", alias.lower())[:40]
    digest = hashlib.sha256(alias.encode()).hexdigest()[:8]
    return f"dbwire_{slug}_{digest}"


def _attach_sql(spec: DuckDBAttach, quoted_alias: str, secret: str | None, readonly: bool) -> str:
    options: list[str] = []
    if spec.attach_type is not None:
        if not _KEY.match(spec.attach_type):
            raise ConfigError(f"invalid DuckDB attach type {spec.attach_type!r}")
        options.append(f"TYPE {spec.attach_type}")
    if secret is not None:
        options.append(f"SECRET {quote_ident(secret)}")
    if readonly:
        options.append("READ_ONLY")
    suffix = f" ({', '.join(options)})" if options else ""
    return f"ATTACH {quote_literal(spec.target)} AS {quoted_alias}{suffix}"


def _attach_error(
    database: str, alias: str, url: str, exc: BaseException, hidden: list[str]
) -> DbwireError:
    if isinstance(exc, DbwireError):
        return exc
    detail = describe(exc, hidden, limit=600)
    lowered = detail.lower()
    if "file handle conflict" in lowered or "already attached" in lowered:
        fix = (
            "the file is already open in this process (through db.engine or another "
            "attach); close that Database first (db.close()) or attach it only once"
        )
    elif "password" in lowered or "access denied" in lowered or "authentication" in lowered:
        fix = "check the password and user the configuration resolves (dbwire url NAME --explain)"
    elif "tls/ssl error" in lowered or "certificate" in lowered:
        fix = (
            "the TLS handshake failed: check the URL's ssl_ca / sslrootcert (the CA that "
            "signed the server's certificate), ssl_cert / ssl_key, and that the server has TLS"
        )
    else:
        fix = "check that the database is running and reachable, and the URL"
    return ConnectError(
        f"database {database!r} ({url}): DuckDB could not attach it as {alias!r}: {detail}. "
        f"Fix: {fix}",
        database=database,
    )


def _open_error(path: Path | None, exc: BaseException) -> DbwireError:
    text = " ".join(str(exc).split())
    where = str(path) if path is not None else ":memory:"
    if "lock" in text.lower() and path is not None:
        match = _LOCK_PID.search(text)
        holder = f"process {match.group(1)}" if match else "another process"
        return ConnectError(
            f"DuckDB store {where!r} is already open in {holder}: DuckDB lets only one "
            "process open a database file for writing. Close that process, use another "
            "file, or open it with read_only=True in every process"
        )
    return ConnectError(f"DuckDB store {where!r} could not be opened: {text[:500]}")
