"""Closing async pools from anywhere: on their own event loop when it runs, by hand when not.

An async driver connection belongs to the event loop that opened it: closing it politely
needs that loop. Database.close() is sync and may run on another thread, inside that loop
(a coroutine calling close()), or after the loop is gone (asyncio.run() returned). Each
case gets the strongest close it allows, so no server connection or file stays open.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("dbwire")


class OpenConnections:
    """The DBAPI connections an engine's pool opened and has not closed yet (in or out)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, Any] = {}

    def install(self, engine: Engine) -> None:
        """Follow the pool's connect and close events (they survive engine.dispose())."""
        from sqlalchemy import event

        def opened(dbapi_connection: Any, _record: Any) -> None:
            with self._lock:
                self._open[id(dbapi_connection)] = dbapi_connection

        def closed(dbapi_connection: Any, *_args: Any) -> None:
            with self._lock:
                self._open.pop(id(dbapi_connection), None)

        event.listen(engine, "connect", opened)
        event.listen(engine, "close", closed)
        event.listen(engine, "close_detached", closed)

    def take(self, *, keep: Collection[int] = ()) -> list[Any]:
        """The still-open connections but those whose id() is in `keep`, forgotten here
        because the caller closes them."""
        with self._lock:
            keys = [k for k in self._open if k not in keep]
            return [self._open.pop(key) for key in keys]


def _checked_out(engine: Engine) -> set[int]:
    """id() of the engine's checked-out DBAPI connections (its pool's tracker knows them)."""
    from dbwire.pool import HookedPool

    pool = engine.pool
    hooks = pool.dbwire_hooks if isinstance(pool, HookedPool) else None
    tracker = hooks.tracker if hooks is not None else None
    if tracker is None:
        return set()
    return {id(connection) for connection in tracker.checked_out_connections()}


def _loop_thread_is_current(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        import asyncio

        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def close_async_engine(
    engine: AsyncEngine,
    loop: asyncio.AbstractEventLoop | None,
    tracked: OpenConnections,
    *,
    wait: float = 5.0,
) -> None:
    """Close every connection of an async engine from sync code, wherever its loop is.

    The loop runs on another thread: dispose() there (a polite close, as aclose() does),
    for at most `wait` seconds.
    Otherwise (this thread runs the loop and cannot wait for it, or the loop is gone), the
    driver connections are closed by hand: their sockets, threads or files.
    """
    if loop is not None and loop.is_running() and not _loop_thread_is_current(loop):
        import asyncio

        future = asyncio.run_coroutine_threadsafe(engine.dispose(), loop)
        try:
            future.result(wait)
        except Exception as exc:  # a stuck loop or a hung server: close by hand instead
            future.cancel()
            logger.debug("async pool of %s not closed on its loop: %s", engine.url, exc)
    # A connection checked out on a live loop belongs to a session still running there:
    # it is closed when that session returns it (Database closes connections on checkin).
    alive = loop is not None and loop.is_running()
    keep = _checked_out(engine.sync_engine) if alive else set()
    engine.sync_engine.dispose(close=False)
    for adapted in tracked.take(keep=keep):
        force_close(adapted, loop)


def force_close(adapted: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close one SQLAlchemy-adapted async connection without awaiting anything."""
    raw = getattr(adapted, "_connection", adapted)
    transport = getattr(raw, "_transport", None)  # asyncpg
    if transport is None:
        writer = getattr(raw, "_writer", None)  # aiomysql
        transport = getattr(writer, "transport", None)
    try:
        if transport is not None:
            if _close_transport(transport, loop):
                _mark_closed(raw)
        else:
            # aiosqlite (stops its thread), DuckDB (closes the file): no loop needed.
            adapted._terminate_force_close()
    except Exception as exc:  # closing must go on with the next connection
        logger.debug("could not close async connection %r: %s", raw, exc)


def _close_transport(transport: Any, loop: asyncio.AbstractEventLoop | None) -> bool:
    """Close a connection's transport; True when its socket was closed here directly."""
    if loop is not None and loop.is_running():
        if _loop_thread_is_current(loop):
            transport.abort()
        else:
            loop.call_soon_threadsafe(transport.abort)
        return False
    # No loop runs it: a transport's abort() only schedules the close on its loop, so
    # the socket underneath is closed directly (selector transports keep it as _sock).
    if loop is not None and not loop.is_closed():
        transport.abort()  # unregisters it from the selector
    sock = getattr(transport, "_sock", None)
    if sock is None:
        return False
    sock.close()
    transport._sock = None  # closed here: its finalizer has nothing left to do
    return True


def _mark_closed(raw: Any) -> None:
    """Tell a driver connection whose socket was closed by hand that it is closed, so its
    finalizer does not try to close it again through the dead loop."""
    if hasattr(raw, "_aborted"):  # asyncpg
        raw._aborted = True
        raw._protocol = None
    if hasattr(raw, "_writer"):  # aiomysql
        raw._writer = None
        raw._reader = None
