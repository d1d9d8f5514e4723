"""Engines of one Database: the sync engine, one async engine per event loop, their hooks.

The hooks (per-connection credentials, database-enforced read-only, error translation,
query timing, the idle pre-ping) and the pool choice are installed here, once per engine,
so every engine a Database hands out behaves the same.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from dbwire import pooler, timeouts
from dbwire._closing import OpenConnections, close_async_engine
from dbwire.backends import readonly_guard
from dbwire.errors import ConfigError, describe

# SQLAlchemy and dbwire's pool classes load with the first engine: a Database that never
# builds one (a collect through DuckDB or connectorx, a configuration check) never
# imports them.
if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.engine import Connection, Engine, ExceptionContext
    from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

    from dbwire.backends.base import Backend, ConnectParams
    from dbwire.config import DatabaseConfig
    from dbwire.pool import PoolHooks
    from dbwire.session_forms import AsyncScopeSession

READONLY_OPTION = "dbwire_readonly"
# create_engine() imports the dialect on first use; SQLAlchemy's MySQL dialect modules
# import each other, and two threads doing that at once deadlock in CPython's import
# machinery (_DeadlockError). Engines are created rarely, so one lock costs nothing.
_ENGINE_CREATION_LOCK = threading.Lock()


class EngineOwner(Protocol):
    """What the engines need of their Database (dbwire.Database is the one implementation)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> DatabaseConfig: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def closed(self) -> bool: ...

    @property
    def logger(self) -> logging.Logger: ...

    def _check_open(self) -> None: ...

    def known_secrets(self) -> list[str]: ...

    def connect_params(self) -> ConnectParams: ...

    def create_database(self) -> bool: ...

    def _instrument(self, engine: Engine) -> None: ...

    def _translate_error(self, ctx: ExceptionContext) -> BaseException | None: ...


class AsyncSide:
    """The async engine of one event loop and its session factories."""

    def __init__(self, engine: AsyncEngine, readonly_engine: AsyncEngine) -> None:
        self.engine = engine
        self.readonly_engine = readonly_engine
        self._factories: dict[bool, async_sessionmaker[AsyncScopeSession]] = {}

    def factory(self, *, readonly: bool) -> async_sessionmaker[AsyncScopeSession]:
        found = self._factories.get(readonly)
        if found is None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            from dbwire.session_forms import AsyncScopeSession

            bind = self.readonly_engine if readonly else self.engine
            found = async_sessionmaker(
                bind, class_=AsyncScopeSession, expire_on_commit=False, autoflush=False
            )
            self._factories[readonly] = found
        return found


class Engines:
    """The engines of one Database, created on first use and closed with it."""

    def __init__(self, owner: EngineOwner) -> None:
        self.owner = owner
        self._lock = threading.RLock()
        self._engine: Engine | None = None
        # One async engine per event loop: asyncpg/aiomysql connections belong to the loop
        # that opened them, so a Database used from several asyncio.run() calls (or
        # pytest-asyncio tests) would otherwise hand out connections of a dead loop.
        self._async_sides: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSide] = (
            weakref.WeakKeyDictionary()
        )
        self._async_side_no_loop: AsyncSide | None = None
        # Every async engine with the loop it belongs to, held strongly: close() must reach
        # the connections of a loop that has since gone (asyncio.run() returned).
        self._loop_engines: list[
            tuple[weakref.ref[asyncio.AbstractEventLoop] | None, AsyncEngine, OpenConnections]
        ] = []
        self._readonly_sync_engine: Engine | None = None
        self._database_ensured = False
        # The password of the last connection opened, for scrubbing (never shown).
        self.last_password: str | None = None
        # Each engine's pool hooks, told when the Database closes.
        self._hooks: list[PoolHooks] = []
        self._closed = False  # close() was called (the owner's flag, without a call)

    # -- lookup ------------------------------------------------------------------
    @property
    def sync(self) -> Engine:
        """The sync Engine, created on first use."""
        engine = self._engine
        if engine is None or self._closed:
            with self._lock:
                self.owner._check_open()
                if self._engine is None:
                    self._engine = self._create_sync_engine()
                engine = self._engine
        return engine

    @property
    def created_sync(self) -> Engine | None:
        """The sync Engine if it was created, else None (creates nothing)."""
        return self._engine

    def async_side(self) -> AsyncSide:
        """The running event loop's async engine and session factories."""
        owner = self.owner
        if owner.closed:
            owner._check_open()
        try:
            import asyncio  # an async engine is asked for: asyncio is loaded

            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        side = self._async_sides.get(loop) if loop is not None else self._async_side_no_loop
        if side is not None:
            return side
        with self._lock:
            owner._check_open()
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
                if not owner.config.readonly:
                    readonly = engine.execution_options(**{READONLY_OPTION: True})
                    self.listen_readonly(readonly.sync_engine)
                side = AsyncSide(engine, readonly)
                if loop is None:
                    self._async_side_no_loop = side
                else:
                    self._async_sides[loop] = side
            return side

    def readonly_sync(self) -> Engine:
        """The sync engine whose connections run read-only transactions (shares the pool)."""
        engine = self.sync
        if self.owner.config.readonly:
            return engine
        with self._lock:
            if self._readonly_sync_engine is None:
                readonly = engine.execution_options(**{READONLY_OPTION: True})
                self.listen_readonly(readonly)
                self._readonly_sync_engine = readonly
            return self._readonly_sync_engine

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

    def async_engines(self) -> list[AsyncEngine]:
        """The async engines of the event loops still known."""
        sides = list(self._async_sides.values())
        if self._async_side_no_loop is not None:
            sides.append(self._async_side_no_loop)
        return [side.engine for side in sides]

    def all(self) -> list[Engine]:
        """Every sync Engine created so far, async ones by their sync_engine."""
        engines = [self._engine] if self._engine is not None else []
        return engines + [engine.sync_engine for engine in self.async_engines()]

    # -- creation ----------------------------------------------------------------
    def engine_arguments(self, *, is_async: bool) -> tuple[Any, dict[str, Any]]:
        """The URL and create_engine() options for the sync or async engine."""
        owner = self.owner
        owner.backend.require_driver(is_async=is_async)
        url = owner.backend.engine_url(is_async=is_async).to_sqlalchemy()
        options = owner.backend.engine_options(is_async=is_async)
        if owner.config.readonly:
            options["execution_options"] = {READONLY_OPTION: True}
        if owner.config.pool_min_size > 0 and owner.backend.is_server:
            # Connections opened ahead are handed out last in, first out: one-at-a-time
            # requests reuse the warmest connection instead of rotating over cold server
            # backends; a burst still finds the others open.
            options.setdefault("pool_use_lifo", True)
        if options.get("pool_pre_ping") and owner.config.pre_ping_idle > 0:
            options["pool_pre_ping"] = False  # dbwire's idle-window ping replaces it
        pooler.adjust(owner.config, options, is_async=is_async)  # pooler = "pgbouncer"
        return url, options

    @property
    def idle_ping(self) -> bool:
        """True when dbwire's idle-window ping replaces SQLAlchemy's pre-ping."""
        config = self.owner.config
        pre_ping = config.pool_pre_ping
        if pre_ping is None:
            pre_ping = bool(self.owner.backend.pool_defaults().get("pool_pre_ping"))
        return pre_ping and config.pre_ping_idle > 0

    def _create_sync_engine(self) -> Engine:
        engine: Engine = self._create_engine(is_async=False)
        return engine

    def _create_async_engine(self) -> AsyncEngine:
        engine: AsyncEngine = self._create_engine(is_async=True)
        return engine

    def _create_engine(self, *, is_async: bool) -> Any:
        """One engine, sync or async: the same arguments, checks, hooks and warm-up."""
        from sqlalchemy import create_engine
        from sqlalchemy import exc as sa_exc

        from dbwire.pool import async_open_in_background, open_in_background

        self._ensure_database()
        url, options = self.engine_arguments(is_async=is_async)
        try:
            with _ENGINE_CREATION_LOCK:
                choose_pool(url, options, is_async=is_async)
                if is_async:
                    from sqlalchemy.ext.asyncio import create_async_engine

                    engine: Any = create_async_engine(url, **options)
                else:
                    engine = create_engine(url, **options)
        except (TypeError, sa_exc.ArgumentError) as exc:
            # ArgumentError: SQLAlchemy refusing a URL or option dbwire's checks let by.
            raise self._bad_engine_option(exc) from None
        self.install_hooks(engine.sync_engine if is_async else engine, is_async=is_async)
        min_size = self.owner.config.pool_min_size
        if is_async:
            async_open_in_background(engine, min_size, self._min_size_failed)
        else:
            open_in_background(engine, min_size, self._min_size_failed, name=self.owner.name)
        return engine

    def _min_size_failed(self, exc: BaseException) -> None:
        owner = self.owner
        try:
            secrets: list[str] = owner.known_secrets()
        except Exception:  # logging must not fail because a password source is down
            secrets = owner.config.secret_values()
        owner.logger.warning(
            "database %r: could not open pool_min_size = %d connections in the background: %s",
            owner.name,
            owner.config.pool_min_size,
            describe(exc, secrets, first_line=True),
        )

    def _ensure_database(self) -> None:
        if self.owner.config.create_db and not self._database_ensured:
            self.owner.create_database()
            self._database_ensured = True

    def _bad_engine_option(self, exc: Exception) -> ConfigError:
        owner = self.owner
        return ConfigError(
            f"database {owner.name!r}: {exc}; remove that setting for the "
            f"{owner.backend.name} backend or pick a pool that takes it",
            database=owner.name,
        )

    # -- hooks -------------------------------------------------------------------
    def install_hooks(self, engine: Engine, *, is_async: bool) -> None:
        """Per-connection credentials, database-enforced read-only, and error translation."""
        from sqlalchemy import event
        from sqlalchemy.util.concurrency import await_, in_greenlet

        from dbwire.pool import (
            bound_ping,
            bounded_call,
            hooks_of,
            install_idle_ping,
            watch_new_connections,
        )

        owner = self.owner
        backend = owner.backend

        @event.listens_for(engine, "do_connect")
        def _credentials(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
            if owner.closed:  # a session factory or Connection kept from before close()
                owner._check_open()
            # Resolved per physical connection, so a rotated secret needs no new engine.
            if is_async and backend.login_asks_a_provider() and in_greenlet():
                # An async engine connects on the event loop's thread (in SQLAlchemy's
                # greenlet): a provider's command or HTTP call there would stall every
                # task on the loop, so it runs in a worker thread, awaited.
                import asyncio

                params = await_(asyncio.to_thread(owner.connect_params))
            else:
                params = owner.connect_params()
            self.last_password = params.password_value()
            backend.apply_params(cparams, params, is_async=is_async)

        if owner.config.readonly:
            self.listen_readonly(engine)

        # Checkout and checkin work runs in the pool itself (pool.PoolHooks), not as events.
        hooks = hooks_of(engine.pool)
        hooks.end_readonly = backend.end_readonly
        hooks.closed = owner.closed
        self._hooks.append(hooks)
        watch_new_connections(engine)

        @event.listens_for(engine, "handle_error")
        def _translate(ctx: ExceptionContext) -> BaseException | None:
            return owner._translate_error(ctx)

        # After _translate (which scrubs with the cached password): a rejected login
        # makes the credential provider ask again at the next connect.
        backend.install_credential_hooks(engine)

        round_trip_s = timeouts.connect_timeout(owner.config, backend.base_url().query)
        if backend.is_server:
            # Before install_idle_ping, which takes the dialect's do_ping as it is then.
            bound_ping(engine, round_trip_s)
        if self.idle_ping:
            install_idle_ping(engine, owner.config.pre_ping_idle, backend.socket_fileno)

        if backend.autocommit_sticks:
            autocommit_off = functools.partial(backend.set_autocommit, on=False)
            # On MySQL the switch is a round trip at checkout: bounded as the ping is (a
            # failure replaces the connection, see HookedPool._dbwire_autocommit_off).
            hooks.autocommit_off = (
                bounded_call(engine, autocommit_off, round_trip_s)
                if backend.is_server
                else autocommit_off
            )
        backend.configure_engine(engine, is_async=is_async)
        backend.install_query_hooks(engine, is_async=is_async)
        owner._instrument(engine)

    def listen_readonly(self, engine: Engine) -> None:
        """Make every transaction begun on this engine read-only, enforced by the database.

        Only read-only engines get this Connection-level listener (the `begin` event has no
        dialect-level twin): on the main engine it would put every writable Connection on
        SQLAlchemy's slower event path. Listeners on an execution_options() engine stay
        local to it.
        """
        from sqlalchemy import event

        from dbwire.pool import READONLY_USED, hooks_of

        backend = self.owner.backend

        def _begin(conn: Connection) -> None:
            fairy = conn.connection
            backend.begin_readonly(fairy)
            fairy.info[READONLY_USED] = True
            hooks_of(conn.engine.pool).readonly_used = True

        event.listen(engine, "begin", _begin)
        # Layer 2: what the database's read-only transaction cannot stop (DDL that commits,
        # COMMIT sent as SQL, SET ... READ WRITE) is refused before it is sent.
        readonly_guard.install(engine, database=self.owner.name, dialect=backend.dialect_name)

    # -- closing -----------------------------------------------------------------
    def close(self) -> None:
        """Dispose of the sync pool and close every event loop's async pool."""
        with self._lock:
            self._closed = True
            for hooks in self._hooks:
                hooks.closed = True
            if self._engine is not None:
                self._engine.dispose()
            owner = self.owner
            limit = timeouts.connect_timeout(owner.config, owner.backend.base_url().query)
            for ref, async_engine, tracked in self._loop_engines:
                loop = ref() if ref is not None else None
                close_async_engine(async_engine, loop, tracked, wait=limit)
            self._loop_engines = []
            self._async_sides.clear()
            self._async_side_no_loop = None

    async def aclose_running_loop(self) -> None:
        """Close the running loop's async pool politely, on that loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [item for item in self._loop_engines if item[0] and item[0]() is loop]
            self._loop_engines = [item for item in self._loop_engines if item not in mine]
        owner = self.owner
        limit = timeouts.connect_timeout(owner.config, owner.backend.base_url().query)
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

    def dispose(self, *, close: bool = True) -> None:
        """Drop the pooled connections (async ones are forgotten, not closed)."""
        sync_engine = self._engine
        for engine in self.all():
            engine.dispose(close=close and engine is sync_engine)

    async def adispose(self) -> None:
        """dispose(), closing the running event loop's async pool on that loop."""
        current = self.async_side().engine
        await current.dispose()
        sync_engine = self._engine
        for engine in self.all():
            if engine is not current.sync_engine:
                engine.dispose(close=engine is sync_engine)

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, pools that never hand out the parent's
        connections, and no claim on the parent's event loops."""
        self._lock = threading.RLock()
        self.dispose(close=False)
        self._loop_engines = []


def choose_pool(url: Any, options: dict[str, Any], *, is_async: bool) -> None:
    """poolclass= for the engine: the one chosen (by the dialect or a setting), hooked."""
    from dbwire.pool import hooked_pool_class, pool_class_for

    chosen = options.get("poolclass")
    if chosen is not None:
        options["poolclass"] = hooked_pool_class(chosen)
        return
    found = pool_class_for(url, is_async=is_async)
    if found is not None:
        options["poolclass"] = found
