"""Database: one named connection target with its engines, sessions and query helpers."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, ExceptionContext

from dbwire import health, instances, lifecycle, metadata_cache, replicas, timeouts, translate
from dbwire._closing import OpenConnections, close_async_engine
from dbwire.backends import readonly_guard, registry
from dbwire.backends.base import Backend, ConnectParams
from dbwire.config import Config, DatabaseConfig, load_config, validate_database
from dbwire.errors import (
    ConfigError,
    ConnectError,
    DatabaseClosedError,
    DbwireError,
    ReadOnlyError,
)
from dbwire.observe import QueryObserver, QueryStats
from dbwire.pool import install_idle_ping, name_pool, pool_class_for
from dbwire.types import HealthResult, PoolStatus

if TYPE_CHECKING:
    # The ORM and asyncio extensions cost ~120 ms to import; they load on first use of
    # sessions or async engines, so `dbwire check` or execute_query() never pays it.
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
    from sqlalchemy.orm import Session as OrmSession
    from sqlalchemy.orm import scoped_session, sessionmaker

    from dbwire.migrate import MigrationResult
    from dbwire.session_forms import AsyncScopeSession, ScopeSession
    from dbwire.types import TableSchema

READONLY_OPTION = "dbwire_readonly"
# create_engine() imports the dialect on first use; SQLAlchemy's MySQL dialect modules
# import each other, and two threads doing that at once deadlock in CPython's import
# machinery (_DeadlockError). Engines are created rarely, so one lock costs nothing.
_ENGINE_CREATION_LOCK = threading.Lock()
_RO_RECORD_FLAG = "dbwire_readonly_used"

QueryResult = tuple[list[str], list[dict[str, Any]]]


class Database:
    """One database: lazy sync and async engines, sessions with safe transaction scopes.

    Create it with `dbwire.connect(...)`, which returns the same Database for the same
    name and configuration within a process.
    """

    def __init__(self, config: DatabaseConfig, *, logger: logging.Logger | None = None) -> None:
        self.config = config
        self.name = config.name
        self.logger = logger or logging.getLogger("dbwire")
        backend_key = config.backend or config.scheme
        if backend_key is None:
            raise ConfigError(
                f"database {config.name!r}: no url and no backend; set url = "
                "'postgresql://...' or backend = 'postgresql' with host/database fields",
                database=config.name,
            )
        self.backend: Backend = registry.get(backend_key)(config)
        # Refuse what the drivers would choke on now, not at the first connect.
        self.backend.validate()
        self._lock = threading.RLock()
        self._closed = False
        self._engine: Engine | None = None
        # One async engine per event loop: asyncpg/aiomysql connections belong to the loop
        # that opened them, so a Database used from several asyncio.run() calls (or
        # pytest-asyncio tests) would otherwise hand out connections of a dead loop.
        self._async_sides: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncSide] = (
            weakref.WeakKeyDictionary()
        )
        self._async_side_no_loop: _AsyncSide | None = None
        # Every async engine with the loop it belongs to, held strongly: close() must reach
        # the connections of a loop that has since gone (asyncio.run() returned).
        self._loop_engines: list[
            tuple[weakref.ref[asyncio.AbstractEventLoop] | None, AsyncEngine, OpenConnections]
        ] = []
        self._session_factory: sessionmaker[ScopeSession] | None = None
        self._readonly_session_factory: sessionmaker[ScopeSession] | None = None
        self._readonly_sync_engine: Engine | None = None
        self._scoped: scoped_session[ScopeSession] | None = None
        self._metadata: MetaData | None = None
        self._last_password: str | None = None
        self._database_ensured = False
        # execute_query's one-round-trip path, where possible; by is_async
        self._direct_queries = {False: True, True: True}
        # -- health, stats, pool, wait (manager issue): query counters, fork safety
        self._observer = QueryObserver(
            self.name,
            logger=self.logger,
            log_queries=config.log_queries,
            query_log_level=config.query_log_level,
            slow_query_ms=config.slow_query_ms,
            secrets=self.known_secrets,
        )
        # Read replicas: built (not connected) now, so a bad entry is refused here.
        self._replicas: replicas.ReplicaSet | None = replicas.build(self)
        self._routed_factories: dict[bool, Any] = {}
        lifecycle.track(self)

    # -- identity --------------------------------------------------------------
    @property
    def url(self) -> str:
        """The configured URL with the password masked."""
        return self.config.display_url

    @property
    def readonly(self) -> bool:
        """True when the whole database is configured read-only."""
        return self.config.readonly

    @property
    def closed(self) -> bool:
        """True once close() or aclose() was called."""
        return self._closed

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<Database name={self.name!r} backend={self.backend.name!r} url={self.url!r}{state}>"
        )

    # -- engines ---------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The sync SQLAlchemy Engine, created on first use."""
        if self._closed:
            self._check_open()
        engine = self._engine
        if engine is None:
            with self._lock:
                self._check_open()
                if self._engine is None:
                    self._engine = self._create_sync_engine()
                engine = self._engine
        return engine

    @property
    def async_engine(self) -> AsyncEngine:
        """The AsyncEngine for the running event loop, on the backend's async driver."""
        return self._async_side().engine

    def _async_side(self) -> _AsyncSide:
        if self._closed:
            self._check_open()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        side = self._async_sides.get(loop) if loop is not None else self._async_side_no_loop
        if side is not None:
            return side
        with self._lock:
            self._check_open()
            side = self._async_sides.get(loop) if loop is not None else self._async_side_no_loop
            if side is None:
                engine = self._create_async_engine()
                tracked = OpenConnections()
                tracked.install(engine.sync_engine)
                self._forget_dead_loops()
                self._loop_engines.append(
                    (weakref.ref(loop) if loop is not None else None, engine, tracked)
                )
                readonly = engine
                if not self.config.readonly:
                    readonly = engine.execution_options(**{READONLY_OPTION: True})
                    self._listen_readonly(readonly.sync_engine)
                side = _AsyncSide(engine, readonly, self._write_info())
                if loop is None:
                    self._async_side_no_loop = side
                else:
                    self._async_sides[loop] = side
            return side

    def _forget_dead_loops(self) -> None:
        """Close the async pools of event loops that have ended (their connections can
        never be used again) and drop them."""
        kept = []
        for ref, engine, tracked in self._loop_engines:
            loop = ref() if ref is not None else None
            if ref is not None and (loop is None or loop.is_closed()):
                close_async_engine(engine, loop, tracked)
            else:
                kept.append((ref, engine, tracked))
        self._loop_engines = kept

    def _async_engines(self) -> list[AsyncEngine]:
        sides = list(self._async_sides.values())
        if self._async_side_no_loop is not None:
            sides.append(self._async_side_no_loop)
        return [side.engine for side in sides]

    def engines(self) -> list[Engine]:
        """Every sync Engine this Database has created, async ones by their sync_engine."""
        engines = [self._engine] if self._engine is not None else []
        return engines + [engine.sync_engine for engine in self._async_engines()]

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(
                f"database {self.name!r} is closed; call dbwire.connect({self.name!r}) "
                "for a new one",
                database=self.name,
            )

    def _engine_arguments(self, *, is_async: bool) -> tuple[Any, dict[str, Any]]:
        self.backend.require_driver(is_async=is_async)
        url = self.backend.engine_url(is_async=is_async)
        options = self.backend.engine_options(is_async=is_async)
        if self.config.readonly:
            options["execution_options"] = {READONLY_OPTION: True}
        if options.get("pool_pre_ping") and self.config.pre_ping_idle > 0:
            options["pool_pre_ping"] = False  # dbwire's idle-window ping replaces it
        return url, options

    @property
    def _idle_ping(self) -> bool:
        pre_ping = self.config.pool_pre_ping
        if pre_ping is None:
            pre_ping = bool(self.backend.pool_defaults().get("pool_pre_ping"))
        return pre_ping and self.config.pre_ping_idle > 0

    def _create_sync_engine(self) -> Engine:
        self._ensure_database()
        url, options = self._engine_arguments(is_async=False)
        try:
            with _ENGINE_CREATION_LOCK:
                _choose_pool(url, options, is_async=False)
                engine = create_engine(url, **options)
        except (TypeError, sa_exc.ArgumentError) as exc:
            # ArgumentError: SQLAlchemy refusing a URL or option dbwire's checks let by.
            raise self._bad_engine_option(exc) from None
        self._install_hooks(engine, is_async=False)
        return engine

    def _create_async_engine(self) -> AsyncEngine:
        self._ensure_database()
        url, options = self._engine_arguments(is_async=True)
        try:
            from sqlalchemy.ext.asyncio import create_async_engine

            with _ENGINE_CREATION_LOCK:
                _choose_pool(url, options, is_async=True)
                engine = create_async_engine(url, **options)
        except (TypeError, sa_exc.ArgumentError) as exc:
            # ArgumentError: SQLAlchemy refusing a URL or option dbwire's checks let by.
            raise self._bad_engine_option(exc) from None
        self._install_hooks(engine.sync_engine, is_async=True)
        return engine

    def _ensure_database(self) -> None:
        if self.config.create_db and not self._database_ensured:
            self.create_database()
            self._database_ensured = True

    def create_database(self) -> bool:
        """Create the configured database if it does not exist (`create_db = true` does this
        before the first engine). Returns True when it was created. The name is quoted as
        an identifier: whatever it holds is created literally."""
        created = self._on_database("create", self.backend.create_database)
        if created:
            self.logger.info(
                "created database %r for %r", self.connect_params().database, self.name
            )
        return created

    def drop_database(self) -> bool:
        """Drop the configured database if it exists (this Database's pools are closed
        first, or the server refuses). Returns True when it was dropped."""
        self._check_open()
        self.dispose_pools()
        dropped = self._on_database("drop", self.backend.drop_database)
        if dropped:
            self.logger.info("dropped database %r of %r", self.connect_params().database, self.name)
        return dropped

    def database_exists(self) -> bool:
        """True when the configured database exists on its server."""
        return self._on_database("look up", self.backend.database_exists)

    async def async_create_database(self) -> bool:
        """The async twin of create_database() (the maintenance login runs in a thread)."""
        return await asyncio.to_thread(self.create_database)

    async def async_drop_database(self) -> bool:
        """The async twin of drop_database()."""
        return await asyncio.to_thread(self.drop_database)

    async def async_database_exists(self) -> bool:
        """The async twin of database_exists()."""
        return await asyncio.to_thread(self.database_exists)

    def _on_database(self, what: str, action: Callable[[ConnectParams], bool]) -> bool:
        """Run a backend's database-level action, its errors as dbwire errors without secrets."""
        self._check_open()
        try:
            return action(self.connect_params())
        except DbwireError:
            raise
        except Exception as exc:
            self._scrub_chain(exc)  # `from None` still leaves it reachable as __context__
            detail = self._driver_detail(exc)
            raise ConnectError(
                f"database {self.name!r} ({self.url}): could not {what} the database: "
                f"{detail}. Fix: the user needs the right to create and drop databases "
                "(PostgreSQL CREATEDB or ownership, MySQL CREATE/DROP), or do it by hand and "
                "set create_db = false",
                database=self.name,
            ) from None

    def migrate(
        self, script_location: str | os.PathLike[str], revision: str = "head"
    ) -> MigrationResult:
        """Bring the schema to `revision` with Alembic (see dbwire.migrate.migrate)."""
        from dbwire.migrate import migrate

        self._check_open()
        return migrate(self, script_location, revision)

    def _bad_engine_option(self, exc: Exception) -> ConfigError:
        return ConfigError(
            f"database {self.name!r}: {exc}; remove that setting for the "
            f"{self.backend.name} backend or pick a pool that takes it",
            database=self.name,
        )

    def _install_hooks(self, engine: Engine, *, is_async: bool) -> None:
        """Per-connection credentials, database-enforced read-only, and error translation."""
        backend = self.backend

        @event.listens_for(engine, "do_connect")
        def _credentials(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            if self._closed:  # a session factory or Connection kept from before close()
                self._check_open()
            # Resolved per physical connection, so a rotated secret needs no new engine.
            params = self.connect_params()
            self._last_password = params.password_value()
            backend.apply_params(cparams, params, is_async=is_async)

        if self.config.readonly:
            self._listen_readonly(engine)

        @event.listens_for(engine.pool, "checkin")
        def _checkin(dbapi_connection: Any, record: Any) -> None:
            if dbapi_connection is not None and record.info.pop(_RO_RECORD_FLAG, False):
                backend.end_readonly(dbapi_connection)

        @event.listens_for(engine, "handle_error")
        def _translate(ctx: ExceptionContext) -> BaseException | None:
            return self._translate_error(ctx)

        if self._idle_ping:
            install_idle_ping(engine, self.config.pre_ping_idle, backend.connection_looks_dead)

        backend.configure_engine(engine, is_async=is_async)
        backend.install_query_hooks(engine, is_async=is_async)
        self._instrument(engine)

        @event.listens_for(engine, "checkin")
        def _close_after_close(dbapi_connection: Any, record: Any) -> None:
            # A session that was running when the Database closed finishes on its
            # connection; returning it closes it instead of pooling it.
            if self._closed and dbapi_connection is not None:
                record.invalidate()

    def _listen_readonly(self, engine: Engine) -> None:
        """Make every transaction begun on this engine read-only, enforced by the database.

        Only read-only engines get this Connection-level listener (the `begin` event has no
        dialect-level twin): on the main engine it would put every writable Connection on
        SQLAlchemy's slower event path. Listeners on an execution_options() engine stay
        local to it.
        """
        backend = self.backend

        def _begin(conn: Connection) -> None:
            fairy = conn.connection
            backend.begin_readonly(fairy)
            fairy.info[_RO_RECORD_FLAG] = True

        event.listen(engine, "begin", _begin)
        # Layer 2: what the database's read-only transaction cannot stop (DDL that commits,
        # COMMIT sent as SQL, SET ... READ WRITE) is refused before it is sent.
        readonly_guard.install(engine, database=self.name, dialect=backend.dialect_name)

    def _readonly_engine(self) -> Engine:
        """The sync engine whose connections run read-only transactions (shares the pool)."""
        engine = self.engine
        if self.config.readonly:
            return engine
        with self._lock:
            if self._readonly_sync_engine is None:
                readonly = engine.execution_options(**{READONLY_OPTION: True})
                self._listen_readonly(readonly)
                self._readonly_sync_engine = readonly
            return self._readonly_sync_engine

    def connect_params(self) -> ConnectParams:
        """Host, port, user, database and password as a new connection would use them now."""
        return self.backend.resolve_params()

    def current_password(self) -> str | None:
        """The password to log in with right now (never logged or shown)."""
        return self.connect_params().password_value()

    def known_secrets(self) -> list[str]:
        """Every password this Database knows of, for scrubbing text before it is shown."""
        secrets = [self._last_password]
        try:
            secrets.append(self.current_password())
        except Exception:  # scrubbing must never fail, even when a password source is down
            secrets.append(self.backend.password_from_url())
        secrets.extend(self.config.secret_values())
        return [s for s in secrets if s]

    # Error translation lives in dbwire.translate; these keep the Database's vocabulary.
    def _translate_error(self, ctx: ExceptionContext) -> BaseException | None:
        return translate.handle_error(self, ctx)

    def _readonly_error(self, detail: str) -> ReadOnlyError:
        return translate.readonly_error(self, detail)

    def _driver_detail(self, exc: BaseException) -> str:
        return translate.driver_detail(self, exc)

    def _scrub_chain(self, *excs: BaseException | None) -> None:
        translate.scrub_chain(self, *excs)

    def _connect_error(self, exc: BaseException, detail: str) -> ConnectError:
        return translate.connect_error(self, exc, detail)

    def _timeout_error(self, what: str = "connect") -> ConnectError:
        return translate.timeout_error(self, what)

    # -- sessions --------------------------------------------------------------
    @property
    def Session(self) -> sessionmaker[ScopeSession]:
        """The session factory (expire_on_commit=False, autoflush=False)."""
        self._check_open()
        factory = self._session_factory
        if factory is None:
            with self._lock:
                if self._session_factory is None:
                    from sqlalchemy.orm import sessionmaker

                    from dbwire.session_forms import ScopeSession

                    self._session_factory = sessionmaker(
                        bind=self.engine,
                        class_=ScopeSession,
                        expire_on_commit=False,
                        autoflush=False,
                        info=self._write_info(),
                    )
                factory = self._session_factory
        return factory

    @property
    def AsyncSession(self) -> async_sessionmaker[AsyncScopeSession]:
        """The running loop's async session factory (expire_on_commit=False, autoflush=False)."""
        return self._async_side().factory(readonly=False)

    def _readonly_factory(self) -> sessionmaker[ScopeSession]:
        self._check_open()
        with self._lock:
            if self._readonly_session_factory is None:
                from sqlalchemy.orm import sessionmaker

                from dbwire.session_forms import ScopeSession

                self._readonly_session_factory = sessionmaker(
                    bind=self._readonly_engine(),
                    class_=ScopeSession,
                    expire_on_commit=False,
                    autoflush=False,
                )
            return self._readonly_session_factory

    def session(self, readonly: bool = False, auto_commit: bool = True) -> ScopeSession:
        """An ORM Session, in either form: `with db.session() as s:` commits on success,
        rolls back on any exception and always closes; `s = db.session()` is a plain Session
        the caller executes on, commits and closes.

        Args:
            readonly: run every transaction of this session read-only, enforced by the database.
            auto_commit: in the `with` form, commit when the block ends without an exception;
                if False, the caller commits, and anything left uncommitted is rolled back.
        """
        session: ScopeSession
        if readonly and self._replicas is not None:
            session = self._routed_factory(is_async=False)()
        else:
            session = (self._readonly_factory() if readonly else self.Session)()
        session.dbwire_auto_commit = auto_commit
        return session

    def _write_info(self) -> dict[str, Any]:
        """session.info of writable sessions: a commit keeps this context's reads on the
        primary for read_your_writes_s (dbwire.replicas)."""
        return {} if self._replicas is None else {replicas.WRITES_KEY: self._replicas}

    def _routed_factory(self, *, is_async: bool) -> Any:
        """Read-only sessions that pick a replica on first use (dbwire.replica_sessions)."""
        with self._lock:
            found = self._routed_factories.get(is_async)
            if found is None:
                from dbwire import replica_sessions as routed

                info = {routed.SET_KEY: self._replicas}
                if is_async:
                    from sqlalchemy.ext.asyncio import async_sessionmaker

                    found = async_sessionmaker(
                        class_=routed.AsyncRoutedSession,
                        sync_session_class=routed.RoutedSyncSession,
                        expire_on_commit=False,
                        autoflush=False,
                        info=info,
                    )
                else:
                    from sqlalchemy.orm import sessionmaker

                    found = sessionmaker(
                        class_=routed.RoutedSession,
                        expire_on_commit=False,
                        autoflush=False,
                        info=info,
                    )
                self._routed_factories[is_async] = found
            return found

    session_scope = session

    def get_session(self) -> OrmSession:
        """A new Session the caller must close (seed 001's get_session())."""
        return self.Session()

    def scoped_session(self) -> scoped_session[ScopeSession]:
        """A thread-local session registry: each thread gets, and reuses, its own Session."""
        self._check_open()
        with self._lock:
            if self._scoped is None:
                from sqlalchemy.orm import scoped_session

                self._scoped = scoped_session(self.Session)
            return self._scoped

    def async_session(self, readonly: bool = False, auto_commit: bool = True) -> AsyncScopeSession:
        """The async twin of session(): `async with db.async_session() as s:` commits,
        rolls back and closes; `s = db.async_session()` is a plain AsyncSession the caller
        awaits execute(), commit() and close() on. Call it where an event loop runs."""
        session: AsyncScopeSession
        if readonly and self._replicas is not None:
            self._check_open()
            session = self._routed_factory(is_async=True)()
        else:
            session = self._async_side().factory(readonly=readonly)()
        session.dbwire_auto_commit = auto_commit
        return session

    def connect(self, readonly: bool = False) -> Connection:
        """A SQLAlchemy Core Connection from the pool; use it as a context manager."""
        return (self._readonly_engine() if readonly else self.engine).connect()

    def async_connect(self, readonly: bool = False) -> AsyncConnection:
        """An AsyncConnection from the async pool; use it with `async with`."""
        side = self._async_side()
        return (side.readonly_engine if readonly else side.engine).connect()

    # -- queries ---------------------------------------------------------------
    def execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, readonly: bool = False
    ) -> QueryResult:
        """Run one statement (`:name` parameters) and return (columns, rows as dicts).

        A statement that changes data is committed. readonly=True runs it read-only, on a
        healthy replica when the database has replicas.
        """
        if readonly and self.backend.has_engine:
            return replicas.execute_read(self, sql, params)
        found = self._execute_query(sql, params)
        if self._replicas is not None:
            replicas.note_write(self._replicas)
        return found

    def _execute_query(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        if not self._query_route(sql):  # s3: DuckDB SQL, run by the backend itself
            return self._backend_query(sql, params)
        if self._may_go_direct():
            direct = self._execute_direct(sql, params)
            if direct is not None:
                return direct
        with self.engine.connect() as conn:
            result = conn.execute(text(sql), dict(params or {}))
            columns, rows = _collect(result)
            conn.commit()
        return columns, rows

    def _query_route(self, sql: str) -> bool:
        """What execute_query and its async twin decide alike before any IO: open, guard
        checked; True for a SQLAlchemy engine, False for a backend that runs it itself."""
        self._check_open()
        if not self.backend.has_engine:
            return False
        if self.config.readonly:
            self._guard_readonly(sql)
        return True

    def _may_go_direct(self) -> bool:
        """The one-round-trip path runs in autocommit: on a read-only database only where
        the backend keeps autocommit statements read-only too."""
        return not self.config.readonly or self.backend.readonly_in_autocommit

    def _guard_readonly(self, sql: str) -> None:
        """Refuse a non-read on a read-only database before a connection is even taken;
        the engine's cursor hook checks the compiled statement again."""
        readonly_guard.check_statement(sql, database=self.name, dialect=self.backend.dialect_name)

    def _execute_direct(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult | None:
        """execute_query() on the pooled driver connection in autocommit: one round trip.

        SQLAlchemy Core spends four round trips on a one-statement query (pre-ping, BEGIN,
        the statement, COMMIT) plus its execution machinery; the seed 004 query path needs
        none of it (bench/RESULTS.md). The SQL is compiled by SQLAlchemy exactly as text()
        would be (`:name`, `\\:` and `%`), errors come out as the same SQLAlchemy/dbwire
        classes, and the statement is counted by the observer. Returns None where the
        driver cannot switch autocommit locally (Core's path is used instead).
        """
        if not self._direct_queries[False]:
            return None
        engine = self.engine
        dialect = engine.dialect
        planned = self._direct_plan(sql, params, dialect)
        if planned is None:
            return None
        try:
            fairy = engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:
            self._scrub_chain(exc)
            raise self._connect_error(exc, self._driver_detail(exc)) from exc
        try:
            return self._direct_run(fairy, dialect, *planned, is_async=False)
        finally:
            fairy.close()

    async def _async_execute_direct(
        self, sql: str, params: Mapping[str, Any] | None
    ) -> QueryResult | None:
        """_execute_direct() on the async engine (asyncpg): the same plan, run and errors.

        The connection is checked out through Core (connect errors translated as always)
        and the statement runs on SQLAlchemy's driver adapter in autocommit, which asyncpg
        sends as one round trip with its cached prepared statement.
        """
        if not self._direct_queries[True]:
            return None
        engine = self.async_engine
        dialect = engine.dialect
        planned = self._direct_plan(sql, params, dialect)
        if planned is None:
            return None
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: self._direct_run(
                    sync_conn.connection, dialect, *planned, is_async=True
                )
            )

    def _direct_plan(
        self, sql: str, params: Mapping[str, Any] | None, dialect: Any
    ) -> tuple[str, Any] | None:
        """The compiled statement and its driver arguments, guard checked; None: use Core."""
        statement, order = _compiled(sql, dialect)
        if self.config.readonly:
            self._guard_readonly(statement)
        values = dict(params or {})
        if order is not None and not set(order) <= values.keys():
            return None  # let Core raise its usual "a value is required" error
        args: Any = tuple(values[name] for name in order) if order is not None else values
        return statement, args

    def _direct_run(
        self, fairy: Any, dialect: Any, statement: str, args: Any, *, is_async: bool
    ) -> QueryResult | None:
        """Run a planned statement on a checked-out connection in autocommit, timed and
        counted, with errors translated as Core translates them."""
        dbapi_error = dialect.loaded_dbapi.Error
        try:
            driver: Any = fairy.dbapi_connection
            if not self.backend.set_autocommit(driver, True):
                self._direct_queries[is_async] = False  # this driver cannot: use Core
                return None
            started = perf_counter()
            failed = True
            try:
                cursor = driver.cursor()
                try:
                    cursor.execute(statement, args)
                    description = cursor.description
                    columns = [column[0] for column in description or ()]
                    rows = (
                        [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
                        if description is not None
                        else []
                    )
                finally:
                    cursor.close()
                failed = False
            finally:
                self._observer.record(statement, perf_counter() - started, failed)
                if not getattr(driver, "closed", False):
                    self.backend.set_autocommit(driver, False)
        except dbapi_error as exc:
            if dialect.is_disconnect(exc, fairy.dbapi_connection, None):
                fairy.invalidate(exc)
            wrapped = sa_exc.DBAPIError.instance(statement, args, exc, dbapi_error, dialect=dialect)
            self._scrub_chain(exc, wrapped)
            if self.backend.is_readonly_violation(exc):
                raise self._readonly_error(self._driver_detail(exc)) from wrapped
            raise wrapped from exc
        return columns, rows

    async def async_execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, readonly: bool = False
    ) -> QueryResult:
        """The async twin of execute_query()."""
        if readonly and self.backend.has_engine:
            return await replicas.async_execute_read(self, sql, params)
        found = await self._async_execute_query(sql, params)
        if self._replicas is not None:
            replicas.note_write(self._replicas)
        return found

    async def _async_execute_query(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        if not self._query_route(sql):
            return await asyncio.to_thread(self._backend_query, sql, params)
        if self._may_go_direct():
            direct = await self._async_execute_direct(sql, params)
            if direct is not None:
                return direct
        async with self.async_engine.connect() as conn:
            result = await conn.execute(text(sql), dict(params or {}))
            columns, rows = _collect(result)
            await conn.commit()
        return columns, rows

    # -- metadata --------------------------------------------------------------
    @property
    def metadata(self) -> MetaData:
        """The database's tables, reflected on first use and cached until refresh_metadata().

        With `metadata_cache` set, the reflection is also written to that file as JSON
        (keyed by the URL and schema, as seed 001's cache), so a new process skips
        reflecting; a file another user can write is ignored (dbwire.metadata_cache).
        """
        self._check_open()
        with self._lock:
            if self._metadata is None:
                self._metadata = self._cached_metadata() or self._reflect()
            return self._metadata

    def refresh_metadata(self) -> MetaData:
        """Reflect again, replacing the in-memory and on-disk caches."""
        self._check_open()
        with self._lock:
            self._metadata = self._reflect()
            return self._metadata

    def _reflect(self) -> MetaData:
        metadata = MetaData(schema=self.config.metadata_schema)
        metadata.reflect(bind=self.engine, schema=self.config.metadata_schema)
        path = self._metadata_cache_path()
        if path is not None:
            metadata_cache.write(path, self._metadata_cache_key(), metadata, self.logger)
        return metadata

    def _metadata_cache_key(self) -> str:
        return f"{self.url}#{self.config.metadata_schema or ''}"

    def _metadata_cache_path(self) -> Path | None:
        location = self.config.metadata_cache
        if location is None:
            return None
        path = Path(location).expanduser()
        if path.is_dir() or location.endswith(("/", os.sep)):
            digest = hashlib.sha256(self._metadata_cache_key().encode()).hexdigest()[:16]
            return path / f"{self.name}-{digest}.metadata.json"
        return path

    def _cached_metadata(self) -> MetaData | None:
        path = self._metadata_cache_path()
        if path is None:
            return None
        key, schema = self._metadata_cache_key(), self.config.metadata_schema
        return metadata_cache.read(path, key, schema, self.logger)

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Close every pooled connection and release the database; it cannot be used again.

        Sessions running at this moment finish on the connection they hold; it is closed
        when they return it. Async pools are closed on their event loop when it runs on
        another thread, and by hand (sockets, threads, files) when it is gone or is the
        caller's own; `await db.aclose()` closes the running loop's pool politely.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._scoped is not None:
                self._scoped.remove()
            if self._engine is not None:
                self._engine.dispose()
            limit = timeouts.connect_timeout(self.config, self.backend.base_url().query)
            for ref, async_engine, tracked in self._loop_engines:
                loop = ref() if ref is not None else None
                close_async_engine(async_engine, loop, tracked, wait=limit)
            self._loop_engines = []
            self._async_sides.clear()
            self._async_side_no_loop = None
            self._metadata = None
            self.backend.close()
            if self._replicas is not None:
                self._replicas.close()
        instances.forget(self)

    async def aclose(self) -> None:
        """Close the running loop's async pool on that loop, then everything else."""
        if not self._closed:
            loop = asyncio.get_running_loop()
            with self._lock:
                mine = [item for item in self._loop_engines if item[0] and item[0]() is loop]
                self._loop_engines = [item for item in self._loop_engines if item not in mine]
            limit = timeouts.connect_timeout(self.config, self.backend.base_url().query)
            for _ref, engine, tracked in mine:
                # Pooled connections close politely here; checked-out ones close when
                # their sessions return them (the checkin hook), as in close().
                try:
                    async with asyncio.timeout(limit):
                        await engine.dispose()
                except TimeoutError:
                    # A polite close waits for the server's goodbye; a hung server never
                    # sends it. What is left is closed by hand.
                    close_async_engine(engine, loop, tracked)
            if self._replicas is not None:
                await self._replicas.aclose()
        self.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health, stats, pool, wait (manager issue) ---------------------------------
    def health_check(self, timeout: float | None = None) -> HealthResult:
        """Run the backend's health query through the pool; answers within timeout seconds
        (default: health_timeout) even when the server hangs.
        """
        self._check_open()
        result = health.check(self, timeout)
        if self._replicas is not None:
            result = replicas.health(self._replicas, result, timeout)
        return result

    async def async_health_check(self, timeout: float | None = None) -> HealthResult:
        """The async twin of health_check(), through the async engine."""
        self._check_open()
        result = await health.async_check(self, timeout)
        if self._replicas is not None:
            result = await replicas.async_health(self._replicas, result, timeout)
        return result

    def login_can_write(self) -> bool | None:
        """Whether this database's login could write if it sent the SQL itself: True, False
        (privileges, or a file opened read-only, forbid it) or None (cannot tell)."""
        self._check_open()
        if not self.backend.has_engine:
            return None
        with self.connect(readonly=True) as conn:
            return self.backend.login_can_write(conn)

    def get_pool_status(self, *, is_async: bool = False) -> PoolStatus:
        """Size, checked in, checked out and overflow of the sync (or this loop's async) pool."""
        self._check_open()
        if not getattr(self.backend, "has_engine", True):
            return PoolStatus(None, None, None, None, pool_class="none (no SQLAlchemy engine)")
        engine = self.async_engine.sync_engine if is_async else self.engine
        status = health.pool_status(engine.pool)
        if self._replicas is not None:
            status = replicas.pool_status(self._replicas, status, is_async=is_async)
        return status

    def get_stats(self) -> QueryStats:
        """Query count, errors, slow queries, total and max duration since start or reset."""
        return self._observer.snapshot()

    def reset_stats(self) -> None:
        """Start the query counters from zero."""
        self._observer.reset()

    def wait(self, timeout: float = 30.0) -> float:
        """Block until the server answers, retrying with backoff; the seconds it took.

        Raises ConnectError after timeout, and at once for a rejected login.
        """
        self._check_open()
        return lifecycle.wait_until_ready(self, timeout)

    async def async_wait(self, timeout: float = 30.0) -> float:
        """The async twin of wait()."""
        self._check_open()
        return await lifecycle.async_wait_until_ready(self, timeout)

    def dispose_pools(self, *, close: bool = True) -> None:
        """Drop the pooled connections; new ones open on next use.

        close=False forgets them without closing, for connections that belong to another
        process (after fork). Async pools are always dropped without closing here, since
        their connections belong to an event loop: adispose_pools() closes them there.
        """
        sync_engine = self._engine
        for engine in self.engines():
            engine.dispose(close=close and engine is sync_engine)

    async def adispose_pools(self) -> None:
        """dispose_pools(), closing the running event loop's async pool on that loop."""
        current = self.async_engine
        await current.dispose()
        sync_engine = self._engine
        for engine in self.engines():
            if engine is not current.sync_engine:
                engine.dispose(close=engine is sync_engine)

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, and pools that never hand out the parent's
        connections (SQLAlchemy's documented engine.dispose(close=False)).
        """
        self._lock = threading.RLock()  # a parent thread may have held it at the fork
        self._observer.reset_after_fork()
        self.dispose_pools(close=False)
        # The parent's event loops and their connections are not this process's to close.
        self._loop_engines = []

    def _instrument(self, engine: Engine) -> None:
        """Query timing and counters, and the name the pool's timeout error shows."""
        self._observer.install(engine)
        name_pool(engine, self.name)

    # -- schema and the local store (DuckDB store issue) ---
    def get_schema(self) -> list[TableSchema]:
        """Every table and view of the application's schemas, with columns (dbwire.schema)."""
        from dbwire.schema import get_schema

        self._check_open()
        return get_schema(self)

    async def async_get_schema(self) -> list[TableSchema]:
        """The async twin of get_schema()."""
        from dbwire.schema import async_get_schema

        self._check_open()
        return await async_get_schema(self)

    def _backend_query(self, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
        """execute_query() for a backend without a SQLAlchemy engine (has_engine = False)."""
        self._check_open()
        return self.backend.execute_query(sql, params)


class _AsyncSide:
    """The async engine of one event loop and its session factories."""

    def __init__(
        self, engine: AsyncEngine, readonly_engine: AsyncEngine, info: dict[str, Any]
    ) -> None:
        self.engine = engine
        self.readonly_engine = readonly_engine
        self._info = info
        self._factories: dict[bool, async_sessionmaker[AsyncScopeSession]] = {}

    def factory(self, *, readonly: bool) -> async_sessionmaker[AsyncScopeSession]:
        found = self._factories.get(readonly)
        if found is None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            from dbwire.session_forms import AsyncScopeSession

            bind = self.readonly_engine if readonly else self.engine
            found = async_sessionmaker(
                bind,
                class_=AsyncScopeSession,
                expire_on_commit=False,
                autoflush=False,
                info={} if readonly else self._info,
            )
            self._factories[readonly] = found
        return found


@functools.lru_cache(maxsize=512)
def _compiled(sql: str, dialect: Any) -> tuple[str, tuple[str, ...] | None]:
    """SQL compiled for a dialect as text() compiles it, and its positional parameter order."""
    compiled = text(sql).compile(dialect=dialect)
    order = tuple(compiled.positiontup or ()) if dialect.positional else None
    return compiled.string, order


def _choose_pool(url: Any, options: dict[str, Any], *, is_async: bool) -> None:
    """poolclass= for the engine: the queue pool whose timeout says what to raise."""
    if "poolclass" not in options:
        chosen = pool_class_for(url, is_async=is_async)
        if chosen is not None:
            options["poolclass"] = chosen


def _collect(result: Any) -> QueryResult:
    if not result.returns_rows:
        return [], []
    columns = list(result.keys())
    return columns, [dict(zip(columns, row, strict=True)) for row in result]


def _looks_like_url(target: str) -> bool:
    return "://" in target or target.startswith("sqlite:")


def connect(
    url_or_name: str | DatabaseConfig,
    *,
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    environ: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
    **overrides: Any,
) -> Database:
    """The Database for a URL or a configured name; the same one for the same target.

    Args:
        url_or_name: a database URL, the name of a database in the configuration, or a
            DatabaseConfig.
        config: a config file path, a dict, or a Config; by default load_config() finds it.
        environ: the environment to read (defaults to os.environ).
        **overrides: DatabaseConfig fields that win over every other source.
    """
    if isinstance(url_or_name, DatabaseConfig):
        base = url_or_name
    elif _looks_like_url(url_or_name):
        name = overrides.pop("name", "default")
        base = validate_database({"url": url_or_name}, name=name, origin="dbwire.connect")
    else:
        loaded = config if isinstance(config, Config) else load_config(config, environ)
        base = loaded.database(url_or_name)
    if environ is not None:
        base = base.with_environ(environ)
    # env_prefix variables sit below the arguments given here, as for a config file.
    db_config = base.with_env_prefix().with_overrides(**overrides)
    # The registry Manager uses too: one Database per target per process.
    return instances.shared(db_config, lambda c: Database(c, logger=logger))
