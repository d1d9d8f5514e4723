"""Pool behaviour: dbwire's work at each checkout and checkin, a checkout timeout that says
what to raise, the idle-window pre-ping and a deadline on every pre-ping, and
pool_min_size connections opened in the background."""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool, QueuePool
from sqlalchemy.util import queue as sqla_queue

from dbwire.errors import ConfigError, PoolTimeoutError
from dbwire.timeouts import pymysql_reads_bounded

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# record.info keys (SQLAlchemy clears record.info whenever the record reconnects, so none
# of them outlives the DBAPI connection it describes)
CHECKED_IN_AT = "dbwire_checked_in_at"
READONLY_USED = "dbwire_readonly_used"
SOCKET_POLL = "dbwire_socket_poll"
AUTOCOMMIT_LEFT_ON = "dbwire_autocommit_left_on"
# An idle ping dbwire_take_idle found due and left for dbwire_finish_take.
PING_LEFT = "dbwire_ping_left"
# Set while execute_query's one-round-trip path checks a connection out, so autocommit
# left on by that path stays on. SQLAlchemy's greenlets share their parent's context, so
# this holds for async too.
DIRECT_CHECKOUT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dbwire_direct", default=False
)
# Set by a caller that must learn which DBAPI connection its checkouts hand it (a health
# check, to shut a hung connection's socket down from another thread): told of the
# connection each checkout takes, before any pre-ping, and of each new connection.
CHECKOUT_WATCH: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar(
    "dbwire_checkout_watch", default=None
)
_POLL_EVENTS = select.POLLIN | select.POLLPRI  # POLLHUP, POLLERR, POLLNVAL always report


def pool_timeout_error(pool: Pool, database: str) -> PoolTimeoutError:
    """The error for a pool that ran dry: its size, overflow, use, and the settings to raise."""
    if not isinstance(pool, QueuePool):
        return PoolTimeoutError(
            f"database {database!r}: no pooled connection came free in time", database=database
        )
    size = pool.size()
    max_overflow = pool._max_overflow
    overflow = "unlimited" if max_overflow < 0 else str(max_overflow)
    return PoolTimeoutError(
        f"database {database!r}: no pooled connection came free within "
        f"pool_timeout={pool.timeout():g}s; {pool.checkedout()} connections are checked out "
        f"(pool_size={size}, max_overflow={overflow}). Fix: raise pool_size or max_overflow "
        f"for {database!r} (or pool_timeout to wait longer), or return connections sooner: "
        "a session or connection held open across slow work keeps one checked out",
        database=database,
    )


class CheckoutTracker(Protocol):
    """Who holds the pool (dbwire.observe.PoolTracker): told of every checkout and checkin."""

    waiters: list[None]  # one entry per caller inside the pool's get, appended and popped

    def checked_out(self, record: ConnectionPoolEntry, started: float, now: float) -> None: ...

    def checked_in(self, record: ConnectionPoolEntry, now: float) -> None: ...

    def timeout_error(self, pool: Pool, exc: sa_exc.TimeoutError) -> PoolTimeoutError: ...

    def checked_out_connections(self) -> list[Any]: ...


class PoolHooks:
    """What dbwire does at each checkout and checkin of one engine's pool.

    Run by the pool itself (HookedPool's _do_get and _do_return_conn) rather than as pool
    events: each event listener costs SQLAlchemy's dispatch plus a call, and dbwire has
    several things to do per checkout (the idle ping, the holder, the read-only reset,
    refusing connections after close). Kept by Engine.dispose(), which recreates the pool.
    """

    __slots__ = (
        "autocommit_off",
        "closed",
        "database",
        "end_readonly",
        "idle_s",
        "ping",
        "readonly_used",
        "tracker",
    )

    def __init__(self, database: str = "default") -> None:
        self.database = database
        # The idle-window pre-ping (install_idle_ping); None: no ping.
        self.idle_s: float | None = None
        self.ping: Callable[[Any], bool] | None = None
        # Undo a read-only transaction's session setting on checkin (engines.listen_readonly);
        # readonly_used turns True at the first such transaction, so a pool that never had
        # one skips the check.
        self.end_readonly: Callable[[Any], None] | None = None
        self.readonly_used = False
        self.tracker: CheckoutTracker | None = None
        # Where execute_query's direct path leaves autocommit on (switching costs a round
        # trip, or driver work), the switch back, made at the next checkout that is not
        # that path's, so SQLAlchemy's transactions stay transactions.
        self.autocommit_off: Callable[[Any], object] | None = None
        # Set when the Database closes: a connection returned after that is closed, not pooled.
        self.closed = False


def hooks_of(pool: Pool) -> PoolHooks:
    """The hooks of a dbwire pool (created on first use)."""
    if not isinstance(pool, HookedPool):
        raise TypeError(
            f"{type(pool).__name__} is not a dbwire pool: build the engine with "
            "poolclass=dbwire.pool.hooked_pool_class(...)"
        )
    hooks = pool.dbwire_hooks
    if hooks is None:
        hooks = pool.dbwire_hooks = PoolHooks()
    return hooks


class HookedPool(Pool):
    """A pool that runs its PoolHooks at checkout and checkin, and raises PoolTimeoutError
    (also a sqlalchemy.exc.TimeoutError) when it runs dry. Mixed in before any Pool class
    (hooked_pool_class); it adds no constructor argument."""

    dbwire_hooks: PoolHooks | None = None
    # Whether the mixed-in pool's _do_get is QueuePool's, whose first step is a get from
    # its `_pool` queue: then an idle entry may be taken from that queue directly.
    _dbwire_queue_first = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._dbwire_queue_first = getattr(super(), "_do_get", None) is QueuePool._do_get

    def _dbwire_idle_entry(self) -> ConnectionPoolEntry | None:
        """An idle entry taken off the queue without waiting, as QueuePool._do_get's first
        step would take it; None when none is idle or the pool is not a plain queue pool."""
        if not self._dbwire_queue_first:
            return None
        try:
            entry: ConnectionPoolEntry = self._pool.get(False)  # type: ignore[attr-defined]
        except sqla_queue.Empty:
            return None
        return entry

    def _do_get(self) -> ConnectionPoolEntry:
        hooks = self.dbwire_hooks
        tracker = hooks.tracker if hooks is not None else None
        if tracker is not None and hooks is not None:
            # A checkout that finds an idle entry cannot block: it needs neither the waiter
            # count nor a second clock read.
            idle = self._dbwire_idle_entry()
            if idle is not None:
                now = perf_counter()
                self._dbwire_checked_out(idle, hooks, now, now, DIRECT_CHECKOUT.get())
                return idle
            tracker.waiters.append(None)  # list append and pop: atomic, no lock to take
            started = perf_counter()
        try:
            record = super()._do_get()
        except PoolTimeoutError:
            raise  # QueuePool._do_get retries by calling _do_get again
        except sa_exc.TimeoutError as exc:
            if tracker is not None:
                raise tracker.timeout_error(self, exc) from None
            database = hooks.database if hooks is not None else "default"
            raise pool_timeout_error(self, database) from None
        finally:
            if tracker is not None:
                tracker.waiters.pop()
        if hooks is None:
            return record
        now = perf_counter()
        self._dbwire_checked_out(
            record, hooks, started if tracker is not None else now, now, DIRECT_CHECKOUT.get()
        )
        return record

    def _dbwire_checked_out(
        self,
        record: ConnectionPoolEntry,
        hooks: PoolHooks,
        started: float,
        now: float,
        direct: bool,
        defer_ping: bool = False,
    ) -> bool:
        """dbwire's work on a record just taken off the pool, and whether it needed the idle
        ping; direct: for execute_query's direct path (autocommit left on stays on);
        defer_ping: decide the ping, leave it to the caller."""
        tracker = hooks.tracker
        if tracker is not None:
            tracker.checked_out(record, started, now)
        watch = CHECKOUT_WATCH.get()
        if watch is not None and record.dbapi_connection is not None:
            watch(record.dbapi_connection)
        # The idle_s test inline: embedded databases have no idle ping, and skip the call.
        idle_s = hooks.idle_s
        ping_due = idle_s is not None and _ping_due(record, idle_s, now)
        if ping_due and not defer_ping:
            self._dbwire_ping(record, hooks)
        autocommit_off = hooks.autocommit_off
        if autocommit_off is not None and record.info.get(AUTOCOMMIT_LEFT_ON) and not direct:
            self._dbwire_autocommit_off(record, autocommit_off)
        return ping_due

    def dbwire_take_idle(self) -> tuple[ConnectionPoolEntry, bool] | None:
        """For async code outside a greenlet: a pooled connection taken without waiting,
        and whether its checkout still needs IO (a ping, a reconnect or recycle), which
        take_entry(pool, popped) then does under greenlet_spawn. None when no connection
        is idle (the pool must connect or wait): the whole checkout needs the greenlet.

        For execute_query's direct path only (autocommit left on stays on), on a queue pool.
        """
        record = self._dbwire_idle_entry()
        if record is None:
            return None
        hooks = self.dbwire_hooks
        if hooks is None:
            return record, _must_connect(self, record)
        now = perf_counter()
        if self._dbwire_checked_out(record, hooks, now, now, True, defer_ping=True):
            record.info[PING_LEFT] = True
            return record, True
        return record, _must_connect(self, record)

    def dbwire_finish_take(self, record: ConnectionPoolEntry) -> None:
        """The ping dbwire_take_idle left for the greenlet (run under greenlet_spawn)."""
        hooks = self.dbwire_hooks
        if record.info.pop(PING_LEFT, False) and hooks is not None:
            self._dbwire_ping(record, hooks)

    def dbwire_checkin_is_local(self, record: ConnectionPoolEntry) -> bool:
        """Whether returning record needs no IO: no checkin event, reset or close to run
        (so async code may check it in outside a greenlet)."""
        hooks = self.dbwire_hooks
        queue: Any = getattr(self, "_pool", None)
        rec: Any = record
        return (
            queue is not None
            # No overflow connection open: the queue has room for every connection.
            and (getattr(self, "_overflow", 1) <= 0 or not queue.full())
            and not self.dispatch.checkin
            and not rec.finalize_callback
            and record.dbapi_connection is not None
            and (
                hooks is None
                or not (hooks.closed or (hooks.readonly_used and READONLY_USED in record.info))
            )
        )

    def _dbwire_autocommit_off(
        self, record: ConnectionPoolEntry, autocommit_off: Callable[[Any], object]
    ) -> None:
        """Switch autocommit off again; a connection that cannot is replaced (a fresh
        one starts with it off), as after a failed pre-ping."""
        record.info.pop(AUTOCOMMIT_LEFT_ON, None)
        connection = record.dbapi_connection
        if connection is None:
            return
        try:
            autocommit_off(connection)
        except Exception as exc:  # a connection the server dropped while pooled
            reason = sa_exc.DisconnectionError(
                "dbwire: could not switch autocommit off on a pooled connection"
            )
            reason.__cause__ = exc
            record.invalidate(reason)

    def _dbwire_ping(self, record: ConnectionPoolEntry, hooks: PoolHooks) -> None:
        """Ping a connection that may be stale; a dead one is replaced, and every pooled
        connection older than now is replaced at its next checkout (a restarted server),
        as pool_pre_ping does."""
        connection = record.dbapi_connection
        ping = hooks.ping
        if connection is None or ping is None:
            return
        try:
            alive = ping(connection)
            failure: BaseException | None = None
        except Exception as exc:  # whatever the ping hit, a fresh connection is the answer
            alive, failure = False, exc
        if alive:
            return
        reason = sa_exc.InvalidatePoolError("dbwire pre-ping: the server closed the connection")
        if failure is not None:
            reason.__cause__ = failure
        record.invalidate(reason)  # SQLAlchemy reconnects it when the checkout goes on
        self._invalidate(None, reason, _checkin=False)  # type: ignore[arg-type]

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        hooks = self.dbwire_hooks
        if hooks is not None:
            now = perf_counter()  # one clock (CLOCK_MONOTONIC) for the idle window and use time
            info = record.info
            if hooks.idle_s is not None:
                info[CHECKED_IN_AT] = now
            connection = record.dbapi_connection
            if connection is not None:
                if hooks.readonly_used and info.pop(READONLY_USED, False):
                    hooks.end_readonly(connection)  # type: ignore[misc]
                if hooks.closed:
                    # A session that was running when the Database closed finishes on its
                    # connection; returning it closes it instead of pooling it.
                    record.invalidate()
            tracker = hooks.tracker
            if tracker is not None:
                tracker.checked_in(record, now)
        super()._do_return_conn(record)

    def recreate(self) -> Any:  # each pool class returns its own type
        # Engine.dispose() replaces the pool with recreate(); the hooks go with it.
        new = super().recreate()
        new.dbwire_hooks = self.dbwire_hooks  # type: ignore[attr-defined]
        return new


def _ping_due(record: ConnectionPoolEntry, idle_s: float, now: float) -> bool:
    """Whether a record just taken off a pool with an idle ping of idle_s gets that ping."""
    info = record.info
    checked_in_at = info.get(CHECKED_IN_AT)
    if checked_in_at is None:  # a brand-new connection, it just logged in
        return False
    if now - checked_in_at > idle_s:
        return True
    poll = info.get(SOCKET_POLL)
    return poll is not None and bool(poll(0))


def _must_connect(pool: Pool, record: ConnectionPoolEntry) -> bool:
    """Whether record.get_connection() would open a connection (none, recycled, or
    invalidated), by the same tests SQLAlchemy's _ConnectionRecord.get_connection makes."""
    if record.dbapi_connection is None:
        return True
    rec: Any = record
    started = rec.starttime
    recycle = pool._recycle
    return bool(
        (recycle > -1 and time.time() - started > recycle)
        or pool._invalidate_time > started
        or rec._soft_invalidate_time > started
    )


class DbwireQueuePool(HookedPool, QueuePool):
    """SQLAlchemy's QueuePool with dbwire's checkout and checkin work."""


class DbwireAsyncQueuePool(HookedPool, AsyncAdaptedQueuePool):
    """SQLAlchemy's AsyncAdaptedQueuePool with dbwire's checkout and checkin work."""


_HOOKED: dict[type[Pool], type[Pool]] = {
    QueuePool: DbwireQueuePool,
    AsyncAdaptedQueuePool: DbwireAsyncQueuePool,
}
_HOOKED_LOCK = threading.Lock()


def hooked_pool_class(cls: type[Pool]) -> type[Pool]:
    """`cls` with dbwire's checkout and checkin work mixed in (one class per pool class)."""
    if issubclass(cls, HookedPool):
        return cls
    with _HOOKED_LOCK:
        found = _HOOKED.get(cls)
        if found is None:
            found = type(f"Dbwire{cls.__name__}", (HookedPool, cls), {"__module__": __name__})
            _HOOKED[cls] = found
        return found


def pool_class_for(url: URL, *, is_async: bool) -> type[Pool] | None:
    """The hooked twin of the pool class the dialect would choose, to pass as `poolclass=`.

    None for a dialect that does not say (create_engine() then picks). The hooked classes
    add no constructor argument, so every pool argument means what it meant.
    """
    # DefaultDialect's classmethod, as create_engine() asks it
    choose = getattr(url.get_dialect(_is_async=is_async), "get_pool_class", None)
    if choose is None:
        return None
    return hooked_pool_class(choose(url))


def name_pool(engine: Engine, database: str) -> None:
    """Tell a dbwire pool the database it serves, for its timeout error."""
    if isinstance(engine.pool, HookedPool):
        hooks_of(engine.pool).database = database


def watch_new_connections(engine: Engine) -> None:
    """Tell CHECKOUT_WATCH of each new connection too: one opened at checkout (a first
    connect, an overflow, a reconnect after invalidation) is made after the pool's get."""
    from sqlalchemy import event

    def _connected(dbapi_connection: Any, _record: Any) -> None:
        watch = CHECKOUT_WATCH.get()
        if watch is not None:
            watch(dbapi_connection)

    event.listen(engine, "connect", _connected)


def socket_poll(fileno: int | None) -> Callable[[int], list[tuple[int, int]]] | None:
    """A poll(timeout) that reports the socket readable or hung up, or None (no socket).

    One poll object per connection, built when it connects: at checkout that is one
    system call, where select() needs lists built and parsed each time.
    """
    if fileno is None or fileno < 0:
        return None
    poller = select.poll()
    poller.register(fileno, _POLL_EVENTS)
    return poller.poll


def install_idle_ping(
    engine: Engine,
    idle_seconds: float,
    socket_fileno: Callable[[Any], int | None],
) -> None:
    """Pre-ping a pooled connection only when it may be stale; used instead of pool_pre_ping.

    SQLAlchemy's pool_pre_ping costs a round trip on every checkout (+20-25% on a short
    statement, bench/RESULTS.md). A connection is pinged here only if it sat idle longer
    than `idle_seconds`, or if its socket is readable or hung up (a restarted server, or a
    backend killed with pg_terminate_backend, has sent its FIN). A failed ping replaces the
    connection and every pooled one older than now, which is what pool_pre_ping does on a
    disconnect. What the window gives up is a connection black-holed without a FIN within
    `idle_seconds` of its last use (HikariCP's aliveBypassWindowMs makes the same trade).
    """
    from sqlalchemy import event

    hooks = hooks_of(engine.pool)
    dialect = engine.dialect
    hooks.idle_s = idle_seconds
    hooks.ping = dialect.do_ping

    @event.listens_for(engine, "connect")
    def _poll_socket(dbapi_connection: Any, record: Any) -> None:
        try:
            fileno = socket_fileno(dbapi_connection)
        except Exception:  # no socket to watch: the idle window alone decides
            fileno = None
        poll = socket_poll(fileno)
        if poll is not None:
            record.info[SOCKET_POLL] = poll


# -- a deadline on the round trips a checkout makes ------------------------------------
# Both dbwire's idle ping (PoolHooks.ping) and SQLAlchemy's pool_pre_ping call the
# dialect's do_ping, and PoolHooks.autocommit_off switches autocommit back with a round
# trip on MySQL; each waits forever on a server that stopped answering after the login
# (no driver bounds that read). bound_ping() and bounded_call() put a deadline on them.


def bound_ping(engine: Engine, timeout: float) -> None:
    """Make every pre-ping of `engine` end within `timeout` seconds (the connect timeout).

    A ping that runs out of time reports the connection dead, so the checkout goes on as
    after any failed ping: the connection is thrown away and a new one is dialled (which
    the connect timeout bounds). How the wait is cut short depends on the driver
    (bounded_call). Called before install_idle_ping, which takes the dialect's do_ping as
    it is then.
    """
    dialect = engine.dialect
    bounded = bounded_call(engine, dialect.do_ping, timeout)

    def timed_ping(connection: Any) -> bool:
        try:
            return bool(bounded(connection))
        except RoundTripTimeout:
            return False

    dialect.do_ping = timed_ping  # type: ignore[method-assign,assignment]  # this engine's only


class RoundTripTimeout(Exception):
    """A bounded round trip on a pooled connection got no answer within its deadline; the
    connection's socket is closed or shut down, so the connection is not usable again."""


def bounded_call(
    engine: Engine, call: Callable[[Any], object], timeout: float
) -> Callable[[Any], object]:
    """call(connection), one round trip on a pooled driver connection of `engine`, made to
    end within `timeout` seconds: past it, RoundTripTimeout is raised (from whatever the
    driver raised). No driver bounds a read on an established connection by itself, so a
    server that stops answering after the login would hold the caller forever:

    - PyMySQL: its own read_timeout and write_timeout, set for this call only (PyMySQL
      re-applies the connection's own values before its next read or write);
    - async drivers (asyncpg, aiomysql): a timer on the running event loop that aborts
      the connection's transport; the awaited read then fails at once, and nothing is
      cancelled, so asyncpg sends no cancel request on a second connection;
    - other sync drivers (psycopg): PING_WATCHDOG, one shared thread that shuts the
      socket down if the call still runs at its deadline.
    """
    dialect = engine.dialect
    if dialect.is_async:
        return _loop_timed(call, timeout)
    if dialect.driver == "pymysql":
        return _pymysql_timed(call, timeout)
    return _watched(call, timeout)


def _pymysql_timed(call: Callable[[Any], object], timeout: float) -> Callable[[Any], object]:
    def timed(connection: Any) -> object:
        try:
            with pymysql_reads_bounded(connection, timeout):
                return call(connection)
        except Exception as exc:
            if connection._sock is None:  # PyMySQL closed it: timed out, or a lost server
                raise RoundTripTimeout(str(exc)) from exc
            raise

    return timed


def _loop_timed(call: Callable[[Any], object], timeout: float) -> Callable[[Any], object]:
    def timed(connection: Any) -> object:
        try:
            loop = asyncio.get_running_loop()  # the call's greenlet runs on the loop thread
        except RuntimeError:
            return call(connection)
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            abort_transport(connection)

        timer = loop.call_later(timeout, expire)
        try:
            result = call(connection)
        except Exception as exc:
            if expired:
                raise RoundTripTimeout(f"no answer within {timeout:g} s") from exc
            raise
        finally:
            timer.cancel()
        if expired:
            raise RoundTripTimeout(f"no answer within {timeout:g} s")
        return result

    return timed


def abort_transport(adapted: Any) -> None:
    """Drop a SQLAlchemy-adapted async connection's transport (on its loop's thread): every
    read waiting on it fails at once, and the connection can never be used again."""
    raw = getattr(adapted, "_connection", adapted)
    transport = getattr(raw, "_transport", None)  # asyncpg
    if transport is None:
        writer = getattr(raw, "_writer", None)  # aiomysql
        transport = getattr(writer, "transport", None)
    if transport is not None:
        transport.abort()


def _watched(call: Callable[[Any], object], timeout: float) -> Callable[[Any], object]:
    def watched(connection: Any) -> object:
        ticket = PING_WATCHDOG.arm(timeout, connection)
        try:
            result = call(connection)
        except Exception as exc:
            if PING_WATCHDOG.disarm(ticket):  # the watchdog shut the socket down: why it failed
                raise RoundTripTimeout(f"no answer within {timeout:g} s") from exc
            raise
        if PING_WATCHDOG.disarm(ticket):
            raise RoundTripTimeout(f"no answer within {timeout:g} s")
        return result

    return watched


def shutdown_socket(dbapi_connection: Any) -> bool:
    """Shut down a sync driver connection's socket from another thread; True if it had one.

    A thread blocked reading from it then sees end-of-file and ends: the driver raises,
    and the pool throws the connection away.
    """
    sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
        return True
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    try:
        fd = pgconn.socket if pgconn is not None else -1
    except Exception:  # libpq has no socket any more
        return False
    if not isinstance(fd, int) or fd < 0:
        return False
    try:
        # fromfd() duplicates the descriptor: shutting the copy down shuts the shared
        # socket down, and closing the copy leaves libpq's descriptor to libpq.
        with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        return False
    return True


class _Ticket:
    """One armed ping: its connection, until the ping ends or the deadline passes."""

    __slots__ = ("connection", "fired")

    def __init__(self, connection: Any) -> None:
        self.connection: Any = connection  # None once disarmed
        self.fired = False


class PingWatchdog:
    """Shuts down the socket of a sync ping still running at its deadline, from one thread.

    Arming a ping is a heap push under a lock, with no thread start and (usually) no
    wake-up: the thread sleeps until the earliest deadline it knows, and a later deadline
    needs no notice. Disarmed tickets are dropped from the top of the heap as they come
    up (deadlines of one engine come in order, so the heap stays short), and the heap is
    rebuilt if dead tickets pile up below the top anyway. The thread wakes at least once
    per LINGER seconds (never told that a ping ended: a notify per ping would cost a
    context switch), and ends when no ping has ended for LINGER seconds; the next ping
    starts it again. So nothing is left running once nothing is pinged.
    """

    LINGER = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Ticket]] = []
        self._order = itertools.count()
        self._armed = 0
        self._thread: threading.Thread | None = None
        self._sleeps_until = 0.0  # when the thread wakes anyway; an earlier deadline notifies
        self._last_disarm = 0.0

    def arm(self, timeout: float, connection: Any) -> _Ticket:
        """Watch `connection` for `timeout` seconds from now."""
        ticket = _Ticket(connection)
        deadline = monotonic() + timeout
        with self._lock:
            heapq.heappush(self._heap, (deadline, next(self._order), ticket))
            self._armed += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dbwire-ping-watchdog", daemon=True
                )
                self._sleeps_until = deadline
                self._thread.start()
            elif deadline < self._sleeps_until:
                self._wake.notify()
        return ticket

    def disarm(self, ticket: _Ticket) -> bool:
        """The ping ended; True if its deadline had passed and its socket was shut down."""
        with self._lock:
            if ticket.fired:
                return True
            ticket.connection = None
            self._armed -= 1
            heap = self._heap
            while heap and heap[0][2].connection is None:
                heapq.heappop(heap)
            self._last_disarm = monotonic()
            if len(heap) > 64 and len(heap) > 4 * self._armed:
                self._heap = [entry for entry in heap if entry[2].connection is not None]
                heapq.heapify(self._heap)
        return False

    def _run(self) -> None:
        with self._lock:
            while True:
                heap = self._heap
                while heap and heap[0][2].connection is None:
                    heapq.heappop(heap)
                now = monotonic()
                if not heap:
                    ends = self._last_disarm + self.LINGER
                    if now >= ends:
                        self._thread = None
                        return
                    self._sleeps_until = ends
                    self._wake.wait(ends - now)
                    continue
                deadline, _, ticket = heap[0]
                if deadline > now:
                    # Never longer than LINGER: the ping may end long before its deadline,
                    # and the thread ends soon after the last one without being told.
                    self._sleeps_until = min(deadline, now + self.LINGER)
                    self._wake.wait(self._sleeps_until - now)
                    continue
                heapq.heappop(heap)
                ticket.fired = True
                self._armed -= 1
                # Under the lock (a few quick system calls): the ping's disarm() waits
                # for it, so the connection cannot be closed, and its descriptor reused
                # by another socket, while it is being shut down.
                connection, ticket.connection = ticket.connection, None
                shutdown_socket(connection)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist here, nor do its pings."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap = []
        self._armed = 0
        self._thread = None


PING_WATCHDOG = PingWatchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=PING_WATCHDOG._after_fork)


# -- pool_min_size: connections opened in the background and kept ---------------------
def check_min_size(database: str, min_size: int, options: dict[str, Any]) -> None:
    """Refuse a pool_min_size the pool could never hold open at once."""
    if min_size <= 0:
        return
    size = options.get("pool_size", 5)
    overflow = options.get("max_overflow", 10)
    if overflow is not None and overflow < 0:
        return  # max_overflow = -1: no upper bound
    limit = (size or 0) + (overflow or 0)
    if min_size > limit:
        raise ConfigError(
            f"database {database!r}: pool_min_size = {min_size} is more than the pool may "
            f"open (pool_size {size} + max_overflow {overflow} = {limit}); lower "
            "pool_min_size or raise pool_size",
            database=database,
        )


_WARMING: set[Any] = set()  # background opens in flight, kept from the garbage collector


def open_in_background(
    engine: Engine, count: int, on_error: Callable[[BaseException], None], *, name: str
) -> None:
    """Open `count` connections of a sync engine's pool in a daemon thread and pool them.

    Hand-written rather than psycopg_pool's min_size: that pool is psycopg's own, and
    dbwire's pools are SQLAlchemy's for every backend. All `count` are checked out at
    once, so the pool opens that many, then checked in, so it keeps them. A failure is
    handed to `on_error` (logged); the next checkout reports it the usual way.
    """
    if count <= 0 or not isinstance(engine.pool, QueuePool):
        return

    def _open() -> None:
        held: list[Any] = []
        try:
            for _ in range(count):
                held.append(engine.raw_connection())
        except Exception as exc:
            on_error(exc)
        finally:
            for connection in held:
                connection.close()

    thread = threading.Thread(target=_open, name=f"dbwire-min-size-{name}", daemon=True)
    thread.start()


def async_open_in_background(
    engine: AsyncEngine, count: int, on_error: Callable[[BaseException], None]
) -> None:
    """open_in_background() for an async engine: a task on the running event loop."""
    if count <= 0 or not isinstance(engine.sync_engine.pool, QueuePool):
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop yet: the connections open on first use

    async def _open() -> None:
        held: list[Any] = []
        try:
            for _ in range(count):
                held.append(await engine.raw_connection())
        except Exception as exc:
            on_error(exc)
        finally:
            from sqlalchemy.util import greenlet_spawn

            for connection in held:
                await greenlet_spawn(connection.close)

    task = loop.create_task(_open())
    _WARMING.add(task)
    task.add_done_callback(_WARMING.discard)
