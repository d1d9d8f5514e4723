"""Who holds the pool: each checkout's caller and time, callers waiting, leak warnings.

A PoolTracker is told of each checkout and checkin by the pool (pool.PoolHooks), and of
new connections by pool events. Recording a checkout walks frames with
`sys._getframe` (never `inspect.stack()`, which reads source files) and remembers, per
code object, whether it belongs to dbwire, SQLAlchemy, contextlib or asyncio, so the walk
costs a few dict lookups. One shared daemon thread checks every tracker that has
`leak_warning_s` set; no thread is started per checkout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from importlib.util import find_spec
from pathlib import Path
from threading import get_ident
from time import perf_counter
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

import greenlet  # type: ignore[import-untyped]

from dbwire.observe.histogram import Histogram
from dbwire.types import PoolHolder

# SQLAlchemy and dbwire's pool load with the first engine, which install() is given.
if TYPE_CHECKING:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from dbwire.errors import PoolTimeoutError


def _package_dir(name: str) -> str:
    """Where an installed package lives, found without importing it."""
    spec = find_spec(name)
    origin = spec.origin if spec is not None else None
    return os.path.dirname(origin) if origin else os.path.join(os.sep, name)


def _prefixes() -> tuple[str, ...]:
    """Where library frames live, as imported and as resolved (a symlinked venv)."""
    dirs = [
        os.path.dirname(os.path.dirname(__file__)),  # dbwire itself
        _package_dir("sqlalchemy"),
        _package_dir("asyncio"),
    ]
    found = {d + os.sep for d in dirs} | {str(Path(d).resolve()) + os.sep for d in dirs}
    found |= {contextlib.__file__, str(Path(contextlib.__file__).resolve())}
    found.add("<sqlalchemy generated")  # SQLAlchemy's decorators compile wrappers by exec()
    return tuple(sorted(found))


_SKIPPED = _prefixes()
# File names already sorted into library code and the application's. Keyed by the name,
# whose hash str caches (a code object's hash is recomputed on every lookup), and tested
# with `in`, which costs no call: this loop runs over every frame of every checkout.
_library_files: set[str] = set()
_caller_files: set[str] = set()
_SHOWN_HOLDERS = 3


def _caller_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame, from `frame` outwards, that is not dbwire's, SQLAlchemy's,
    contextlib's or asyncio's."""
    return _walk(frame)[0]


def _walk(frame: FrameType | None) -> tuple[FrameType | None, int]:
    """The first non-library frame from `frame` outwards, and how many frames lie below it."""
    library, callers = _library_files, _caller_files
    depth = 0
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename in library:
            frame = frame.f_back
        elif filename in callers:
            return frame, depth
        elif filename.startswith(_SKIPPED):
            library.add(filename)
            frame = frame.f_back
        else:
            callers.add(filename)
            return frame, depth
        depth += 1
    return None, depth


# The stack shapes checkouts came from lately: (depth, the library code object just below
# the caller, the caller's code object). Walking out frame by frame makes CPython build a
# frame object for each one (13 of them for an ORM session's first execute, most of the
# tracker's cost); a checkout from a known shape builds two, at that depth, and takes the
# caller if both frames run the same code as before. A caller found this way could only
# be wrong if, at exactly that depth, some other application frame sat between the pool
# and library code identical to last time's, which no ordinary call path does.
_Shape = tuple[int, Any, Any]
_SHAPES: list[_Shape] = []
_SHAPES_KEPT = 4


def _checkout_caller(skip: int) -> FrameType | None:
    """The application frame behind a checkout; `skip` frames above the caller of this
    function are the pool's own (the walk starts there)."""
    start = skip + 1
    for shape in _SHAPES:
        depth, below_code, caller_code = shape
        try:
            below = sys._getframe(start + depth - 1)
        except ValueError:  # a shallower stack than this shape's
            continue
        caller = below.f_back
        if below.f_code is below_code and caller is not None and caller.f_code is caller_code:
            return caller
    frame, depth = _walk(sys._getframe(start))
    if frame is None:
        return _greenlet_caller()
    if depth > 0:
        below = sys._getframe(start + depth - 1)
        shape = (depth, below.f_code, frame.f_code)
        # list operations under the GIL: a racing thread may add a shape twice, never harm
        _SHAPES.insert(0, shape)
        del _SHAPES[_SHAPES_KEPT:]
    return frame


def _greenlet_caller() -> FrameType | None:
    """The caller of an async checkout: it runs in SQLAlchemy's greenlet, whose frames end
    at Engine.connect; the awaiting coroutines are on the parent greenlet's stack."""
    parent = greenlet.getcurrent().parent
    found: FrameType | None = None
    while found is None and parent is not None:
        found = _caller_frame(parent.gr_frame)
        parent = parent.parent
    return found


# One checkout, as the list the hot path builds without a call: where (code object and
# the byte offset of its current instruction, which _line_of turns into a line), since
# (perf_counter), the thread's ident, the asyncio task, and whether the leak warning was
# given. Names, lines and the wall-clock time are worked out when someone asks.
_CODE, _LINE, _SINCE, _THREAD, _TASK, _WARNED = range(6)


def _where(held: list[Any]) -> str:
    code = held[_CODE]
    if code is None:
        return "<unknown caller>"
    return f"{code.co_filename}:{_line_of(code, held[_LINE])} in {code.co_name}"


def _line_of(code: CodeType, lasti: int) -> int:
    """The source line of the instruction at byte offset `lasti` (what f_lineno would
    have said at checkout): worked out when someone asks, since reading f_lineno on every
    checkout costs a line-table search that no one reads unless the pool runs dry."""
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line or 0
    return 0


def _thread_name(ident: int, names: dict[int | None, str]) -> str:
    return names.get(ident, f"thread {ident} (ended)")


def _task_name(held: list[Any]) -> str | None:
    task = held[_TASK]
    return task.get_name() if task is not None else None


def _public(
    held: list[Any], now: float, wall_now: float, names: dict[int | None, str]
) -> PoolHolder:
    held_s = max(0.0, now - held[_SINCE])
    return PoolHolder(
        where=_where(held),
        since=wall_now - held_s,
        held_s=held_s,
        thread=_thread_name(held[_THREAD], names),
        task=_task_name(held),
    )


def _thread_names() -> dict[int | None, str]:
    return {thread.ident: thread.name for thread in threading.enumerate()}


class PoolTimings:
    """One database's pool histograms and timeout count, shared by all its engines' pools."""

    def __init__(self) -> None:
        self.wait_time = Histogram()
        self.use_time = Histogram()
        self.create_time = Histogram()
        self.timeouts = 0
        self.connects = 0
        self.lock = threading.Lock()

    def reset(self) -> None:
        """Start from zero (a forked child)."""
        self.lock = threading.Lock()
        for histogram in (self.wait_time, self.use_time, self.create_time):
            histogram.reset()
        self.timeouts = 0
        self.connects = 0


class PoolTracker:
    """Holders and waiting callers of one engine's pool, with its timings and leak warnings.

    The pool tells it of every checkout and checkin (pool.PoolHooks): a checkout costs one
    call here, a frame walk, two clock reads and a dict store, with no lock taken.
    """

    def __init__(
        self,
        database: str,
        *,
        timings: PoolTimings | None = None,
        leak_warning_s: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.database = database
        self.timings = timings or PoolTimings()
        self.leak_warning_s = leak_warning_s
        self.logger = logger or logging.getLogger("dbwire")
        self._held: dict[Any, list[Any]] = {}
        self.waiters: list[None] = []  # one entry per caller inside the pool's get
        self._watched = False

    @property
    def waiting(self) -> int:
        """Callers waiting for a connection right now."""
        return len(self.waiters)

    # -- installation ----------------------------------------------------------
    def install(self, engine: Engine) -> None:
        """Be told of every checkout and checkin of the engine's pool (a dbwire pool, whose
        hooks dispose() keeps), and time its new connections."""
        from sqlalchemy import event

        from dbwire.pool import hooks_of

        hooks_of(engine.pool).tracker = self
        event.listen(engine, "do_connect", self._before_connect)
        event.listen(engine, "connect", self._after_connect)
        if self.leak_warning_s is not None:
            self._watched = True
            _LEAK_WATCH.add(self)

    def stop_watching(self) -> None:
        """Its Database closed: leave the leak watch once no connection is held (a session
        still running keeps its warning), so the watch thread ends when no tracker is left
        instead of waking for a closed Database as long as something references it."""
        self._watched = False
        if not self._held:
            _LEAK_WATCH.discard(self)

    @property
    def done_watching(self) -> bool:
        """Stopped, and every connection it saw is back."""
        return not self._watched and not self._held

    # -- the pool's calls --------------------------------------------------------
    def checked_out(self, record: Any, started: float, now: float) -> None:
        """A checkout that began at `started` got `record` at `now`: time it, name its caller."""
        wait_time = self.timings.wait_time
        pending = wait_time.pending
        pending.append(now - started)
        if len(pending) >= wait_time.fold_at:
            wait_time.fold()
        # From the pool's get: skip this frame and the pool's.
        frame = _checkout_caller(2)
        # No asyncio loaded, no loop running; get_running_loop() raises outside a loop,
        # its private twin returns None.
        aio = sys.modules.get("asyncio")
        running = aio is not None and aio._get_running_loop() is not None
        task = aio.current_task() if running else None  # type: ignore[union-attr]
        # one dict store, atomic under the GIL (and locked per dict without it)
        self._held[record] = [
            frame.f_code if frame is not None else None,
            frame.f_lasti if frame is not None else -1,
            now,
            get_ident(),
            task,
            False,
        ]

    def checked_in(self, record: Any, now: float) -> None:
        """`record` came back at `now`: how long it was used."""
        held = self._held.pop(record, None)
        if held is not None:
            use_time = self.timings.use_time
            pending = use_time.pending
            pending.append(now - held[_SINCE])
            if len(pending) >= use_time.fold_at:
                use_time.fold()

    def timeout_error(self, pool: Pool, exc: sa_exc.TimeoutError) -> PoolTimeoutError:
        """The pool ran dry: PoolTimeoutError naming the longest holders."""
        from dbwire.errors import PoolTimeoutError
        from dbwire.pool import pool_timeout_error

        with self.timings.lock:
            self.timings.timeouts += 1
        if isinstance(exc, PoolTimeoutError):
            message = str(exc)
        else:
            message = str(pool_timeout_error(pool, self.database))
        holders = self.holders()
        if holders:
            shown = "; ".join(h.describe() for h in holders[:_SHOWN_HOLDERS])
            more = len(holders) - _SHOWN_HOLDERS
            extra = f" and {more} more" if more > 0 else ""
            message += f". Held longest by: {shown}{extra}"
        return PoolTimeoutError(message, database=self.database)

    def checked_out_connections(self) -> list[Any]:
        """The DBAPI connections checked out right now."""
        records = list(self._held.copy())
        return [r.dbapi_connection for r in records if r.dbapi_connection is not None]

    # -- events ----------------------------------------------------------------
    def _before_connect(self, _dialect: Any, record: Any, _cargs: Any, _cparams: Any) -> None:
        if record is not None:
            record.info["dbwire_connect_started"] = perf_counter()

    def _after_connect(self, _dbapi_connection: Any, record: Any) -> None:
        started = record.info.pop("dbwire_connect_started", None)
        timings = self.timings
        with timings.lock:
            timings.connects += 1
        if started is not None:
            timings.create_time.observe(perf_counter() - started)

    # -- reading ---------------------------------------------------------------
    def holders(self) -> tuple[PoolHolder, ...]:
        """The checked-out connections' holders, longest held first."""
        now, wall_now = perf_counter(), time.time()
        held = list(self._held.copy().values())  # copy(): one step, safe against checkins
        held.sort(key=lambda h: h[_SINCE])
        names = _thread_names()
        return tuple(_public(h, now, wall_now, names) for h in held)

    def check_leaks(self) -> None:
        """Warn once for each connection held longer than leak_warning_s."""
        limit = self.leak_warning_s
        if limit is None:
            return
        now = perf_counter()
        late = [h for h in self._held.copy().values() if not h[_WARNED] and now - h[_SINCE] > limit]
        for held in late:
            held[_WARNED] = True
        names = _thread_names() if late else {}
        for held in late:
            task = _task_name(held)
            self.logger.warning(
                "database %r: a pooled connection has been checked out for %.1f s "
                "(leak_warning_s=%g) by %s (thread %s%s); close the session or connection "
                "when done, or raise leak_warning_s if holding it is intended",
                self.database,
                now - held[_SINCE],
                limit,
                _where(held),
                _thread_name(held[_THREAD], names),
                f", task {task}" if task is not None else "",
            )

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's checkouts are not this process's."""
        self._held.clear()
        del self.waiters[:]
        if self._watched:
            _LEAK_WATCH.add(self)


class _LeakWatch:
    """The one thread that checks every tracker with leak_warning_s; it ends when none is
    left and starts again (also in a forked child) when a tracker is added."""

    def __init__(self) -> None:
        self._trackers: weakref.WeakSet[PoolTracker] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, tracker: PoolTracker) -> None:
        with self._lock:
            self._trackers.add(tracker)
            alive = self._thread is not None and self._thread.is_alive()
            if not alive or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="dbwire-leak-watch", daemon=True
                )
                self._thread.start()

    def discard(self, tracker: PoolTracker) -> None:
        with self._lock:
            self._trackers.discard(tracker)

    def _interval(self, trackers: list[PoolTracker]) -> float:
        limits = [t.leak_warning_s for t in trackers if t.leak_warning_s is not None]
        return min(1.0, max(0.02, min(limits) / 4)) if limits else 1.0

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                trackers = list(self._trackers)
                if not trackers:
                    if self._thread is me:
                        self._thread = None
                    return
            interval = self._interval(trackers)
            for tracker in trackers:
                with contextlib.suppress(Exception):  # a log handler's failure stops no watch
                    tracker.check_leaks()
                if tracker.done_watching:
                    self.discard(tracker)
            del trackers, tracker  # hold no tracker while asleep: they go with their engines
            time.sleep(interval)

    def after_fork(self) -> None:
        # The parent's watch thread (which may have held the lock) is gone in the child.
        self._lock = threading.Lock()
        self._thread = None


_LEAK_WATCH = _LeakWatch()
os.register_at_fork(after_in_child=_LEAK_WATCH.after_fork)
