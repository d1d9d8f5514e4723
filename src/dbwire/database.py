"""Database: one named connection target, a facade over its engines, sessions and queries.

The engines and their hooks live in dbwire.engines, execute_query's one-round-trip path in
dbwire.fast_path, error translation in dbwire.translate, health in dbwire.health.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dbwire import health, instances, lifecycle, pooler, replicas, translate
from dbwire.backends import readonly_guard, registry
from dbwire.backends.base import Backend, ConnectParams
from dbwire.config import Config, DatabaseConfig, load_config, validate_database
from dbwire.engines import Engines
from dbwire.errors import (
    ConfigError,
    ConnectError,
    DatabaseClosedError,
    DbwireError,
    ReadOnlyError,
)
from dbwire.observe import Observation, QueryObserver, QueryStats
from dbwire.types import HealthResult, PoolStatus

if TYPE_CHECKING:
    # SQLAlchemy loads with the first engine (dbwire.engines), its ORM and asyncio
    # extensions (~120 ms more) with the first session or async engine: a collect through
    # DuckDB or connectorx, or `dbwire check` of a config, never imports them.
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection, Engine, ExceptionContext
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
    from sqlalchemy.orm import Session as OrmSession
    from sqlalchemy.orm import scoped_session, sessionmaker

    from dbwire.fast_path import FastPath
    from dbwire.migrate import MigrationResult
    from dbwire.session_forms import AsyncScopeSession, ScopeSession
    from dbwire.types import TableSchema

QueryResult = tuple[list[str], list[dict[str, Any]]]
_T = TypeVar("_T")


def _to_thread(func: Callable[..., _T], /, *args: Any) -> Awaitable[_T]:
    """asyncio.to_thread, with asyncio imported when an async method first needs it."""
    import asyncio

    return asyncio.to_thread(func, *args)


_POOL_SIZES = {"pool_size", "max_overflow"}


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
        # pool_min_size against the pool it fills: the config's sizes, else the backend's.
        sizes = config.model_dump(include=_POOL_SIZES, exclude_none=True)
        if config.pool_min_size > 0:  # a pool opened ahead: its classes load now anyway
            from dbwire.pool import check_min_size

            check_min_size(
                self.name, config.pool_min_size, {**self.backend.pool_defaults(), **sizes}
            )
        self._lock = threading.RLock()
        self._closed = False
        # The sync engine and one async engine per event loop, with their hooks.
        self._engines = Engines(self)
        self._session_factory: sessionmaker[ScopeSession] | None = None
        self._readonly_session_factory: sessionmaker[ScopeSession] | None = None
        self._scoped: scoped_session[ScopeSession] | None = None
        self._metadata: MetaData | None = None
        # -- health, stats, pool, wait (manager issue): query counters, fork safety
        self._observer = QueryObserver(
            self.name,
            logger=self.logger,
            log_queries=config.log_queries,
            query_log_level=config.query_log_level,
            slow_query_ms=config.slow_query_ms,
            secrets=self.known_secrets,
        )
        # Who holds the pool and who waits, pool timings, health and replica lag.
        self.observation = Observation(
            self.name,
            self.backend.name,
            operation_duration=self._observer.durations,
            leak_warning_s=config.leak_warning_s,
            logger=self.logger,
        )
        # execute_query's one-round-trip path, where possible
        # (built by the first execute_query, with the engine it runs on)
        self._fast: FastPath | None = None
        self._direct_queries = {False: True, True: True}  # by is_async; False: Core's path
        # Read replicas: built (not connected) now, so a bad entry is refused here.
        self._replicas: replicas.ReplicaSet | None = replicas.build(self)
        pooler.validate(config)
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
        return self._engines.sync

    @property
    def async_engine(self) -> AsyncEngine:
        """The AsyncEngine for the running event loop, on the backend's async driver."""
        return self._engines.async_side().engine

    def engines(self) -> list[Engine]:
        """Every sync Engine this Database has created, async ones by their sync_engine."""
        return self._engines.all()

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(
                f"database {self.name!r} is closed; call dbwire.connect({self.name!r}) "
                "for a new one",
                database=self.name,
            )

    @property
    def _idle_ping(self) -> bool:
        return self._engines.idle_ping

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
        return await _to_thread(self.create_database)

    async def async_drop_database(self) -> bool:
        """The async twin of drop_database()."""
        return await _to_thread(self.drop_database)

    async def async_database_exists(self) -> bool:
        """The async twin of database_exists()."""
        return await _to_thread(self.database_exists)

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

    def _readonly_engine(self) -> Engine:
        """The sync engine whose connections run read-only transactions (shares the pool)."""
        return self._engines.readonly_sync()

    def connect_params(self) -> ConnectParams:
        """Host, port, user, database and password as a new connection would use them now."""
        return self.backend.resolve_params()

    def current_password(self) -> str | None:
        """The password to log in with right now (never logged or shown)."""
        return self.connect_params().password_value()

    def known_secrets(self) -> list[str]:
        """Every password this Database knows of, for scrubbing text before it is shown.

        Only values already known: the last login's password, the provider's cached answer,
        the config and the files libpq or the mysql client read. A provider is never asked:
        scrubbing an error must not run a command or call a secret store again.
        """
        secrets = [self._engines.last_password]
        try:
            secrets.append(self.backend.resolve_params(ask_provider=False).password_value())
        except Exception:  # scrubbing must never fail, even when a password source is broken
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
                    )
                factory = self._session_factory
        return factory

    @property
    def AsyncSession(self) -> async_sessionmaker[AsyncScopeSession]:
        """The running loop's async session factory (expire_on_commit=False, autoflush=False)."""
        return self._engines.async_side().factory(readonly=False)

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
        if self._replicas is not None:
            return self._replicas.session(readonly=readonly, auto_commit=auto_commit)
        factory = self._session_factory
        if readonly or factory is None or self._closed:
            # The property and _readonly_factory() build the factory and refuse a closed
            # Database; the usual session skips their two calls.
            factory = self._readonly_factory() if readonly else self.Session
        session = factory()
        session.dbwire_auto_commit = auto_commit
        return session

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
        if self._replicas is not None:
            return self._replicas.async_session(readonly=readonly, auto_commit=auto_commit)
        session = self._engines.async_side().factory(readonly=readonly)()
        session.dbwire_auto_commit = auto_commit
        return session

    def connect(self, readonly: bool = False) -> Connection:
        """A SQLAlchemy Core Connection from the pool; use it as a context manager."""
        return (self._readonly_engine() if readonly else self._engines.sync).connect()

    def async_connect(self, readonly: bool = False) -> AsyncConnection:
        """An AsyncConnection from the async pool; use it with `async with`."""
        side = self._engines.async_side()
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
        return (self._fast or self._fast_path()).execute(sql, params)

    def _fast_path(self) -> FastPath:
        from dbwire.fast_path import FastPath

        with self._lock:
            if self._fast is None:
                self._fast = FastPath(self, self._observer.record, self._direct_queries)
            return self._fast

    def _query_route(self, sql: str) -> bool:
        """What execute_query and its async twin decide alike before any IO: open, guard
        checked; True for a SQLAlchemy engine, False for a backend that runs it itself."""
        if self._closed:
            self._check_open()
        if not self.backend.has_engine:
            return False
        if self.config.readonly:
            self._guard_readonly(sql)
        return True

    def _guard_readonly(self, sql: str) -> None:
        """Refuse a non-read on a read-only database before a connection is even taken;
        the engine's cursor hook checks the compiled statement again."""
        readonly_guard.check_statement(sql, database=self.name, dialect=self.backend.dialect_name)

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

    def _async_execute_query(
        self, sql: str, params: Mapping[str, Any] | None
    ) -> Awaitable[QueryResult]:
        # A plain function handing back the awaitable: one coroutine frame less per call.
        if not self._query_route(sql):
            return _to_thread(self._backend_query, sql, params)
        return (self._fast or self._fast_path()).async_execute(sql, params)

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
        from sqlalchemy import MetaData

        from dbwire import metadata_cache

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
        from dbwire import metadata_cache

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
            self._engines.close()
            self.observation.close()
            self._metadata = None
            self.backend.close()
            if self._replicas is not None:
                self._replicas.close()
        instances.forget(self)

    async def aclose(self) -> None:
        """Close the running loop's async pool on that loop, then everything else."""
        if not self._closed:
            await self._engines.aclose_running_loop()
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
        self.observation.record_health(result)
        return result

    async def async_health_check(self, timeout: float | None = None) -> HealthResult:
        """The async twin of health_check(), through the async engine."""
        self._check_open()
        result = await health.async_check(self, timeout)
        if self._replicas is not None:
            result = await replicas.async_health(self._replicas, result, timeout)
        self.observation.record_health(result)
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
        """Size, checked in, checked out and overflow of the sync (or this loop's async) pool,
        with its holders (longest first) and the callers waiting for a checkout."""
        self._check_open()
        if not getattr(self.backend, "has_engine", True):
            return PoolStatus(None, None, None, None, pool_class="none (no SQLAlchemy engine)")
        engine = self.async_engine.sync_engine if is_async else self.engine
        status = self.observation.pool_status(engine)
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
        self._engines.dispose(close=close)

    async def adispose_pools(self) -> None:
        """dispose_pools(), closing the running event loop's async pool on that loop."""
        await self._engines.adispose()

    def _after_fork(self) -> None:
        """In a forked child: fresh locks, and pools that never hand out the parent's
        connections (SQLAlchemy's documented engine.dispose(close=False)).
        """
        self._lock = threading.RLock()  # a parent thread may have held it at the fork
        self._observer.reset_after_fork()
        self.observation.reset_after_fork()
        # The parent's event loops and their connections are not this process's to close.
        self._engines.after_fork()

    def _instrument(self, engine: Engine) -> None:
        """Query timing and counters, and the name the pool's timeout error shows."""
        self._observer.install(engine)
        self.observation.install(engine)
        from dbwire.pool import name_pool

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
