"""Who holds the pool: each checkout's caller and time, callers waiting, leak warnings.

A PoolTracker listens to one engine's pool events. Recording a checkout walks frames with
`sys._getframe` (never `inspect.stack()`, which reads source files) and remembers, per
code object, whether it belongs to dbwire, SQLAlchemy, contextlib or asyncio, so the walk
costs a few dict lookups. One shared daemon thread checks every tracker that has
`leak_warning_s` set; no thread is started per checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from time import monotonic, perf_counter
from types import CodeType, FrameType
from typing import Any

import greenlet  # type: ignore[import-untyped]
import sqlalchemy
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, QueuePool

from dbwire.errors import PoolTimeoutError
from dbwire.observe.histogram import Histogram
from dbwire.types import PoolHolder


def _prefixes() -> tuple[str, ...]:
    """Where library frames live, as imported and as resolved (a symlinked venv)."""
    dirs = [
        os.path.dirname(os.path.dirname(__file__)),  # dbwire itself
        os.path.dirname(sqlalchemy.__file__),
        os.path.dirname(asyncio.__file__),
    ]
    found = {d + os.sep for d in dirs} | {str(Path(d).resolve()) + os.sep for d in dirs}
    found |= {contextlib.__file__, str(Path(contextlib.__file__).resolve())}
    found.add("<sqlalchemy generated")  # SQLAlchemy's decorators compile wrappers by exec()
    return tuple(sorted(found))


_SKIPPED = _prefixes()
# code object -> True when its frames are skipped (library code, not the caller's)
_skip_code: dict[CodeType, bool] = {}
_SHOWN_HOLDERS = 3


def _is_library(code: CodeType) -> bool:
    skip = _skip_code.get(code)
    if skip is None:
        skip = _skip_code[code] = code.co_filename.startswith(_SKIPPED)
    return skip


def _caller_frame(frame: FrameType | None) -> FrameType | None:
    while frame is not None and _is_library(frame.f_code):
        frame = frame.f_back
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


class _Held:
    """One checkout: where, when, by whom; mutable only for the leak warning's flag."""

    __slots__ = ("file", "function", "line", "since", "task", "thread", "wall", "warned")

    def __init__(self, frame: FrameType | None, task: asyncio.Task[Any] | None) -> None:
        if frame is None:
            self.file, self.line, self.function = "<unknown>", 0, "?"
        else:
            self.file = frame.f_code.co_filename
            self.line = frame.f_lineno or 0
            self.function = frame.f_code.co_name
        self.since = monotonic()
        self.wall = time.time()
        self.thread = threading.current_thread().name
        self.task = task.get_name() if task is not None else None
        self.warned = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"

    def public(self, now: float) -> PoolHolder:
        return PoolHolder(
            where=self.where,
            since=self.wall,
            held_s=max(0.0, now - self.since),
            thread=self.thread,
            task=self.task,
        )


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
    """Holders and waiting callers of one engine's pool, with its timings and leak warnings."""

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
        self._lock = threading.Lock()
        self._held: dict[Any, _Held] = {}
        self.waiting = 0

    # -- installation ----------------------------------------------------------
    def install(self, engine: Engine) -> None:
        """Listen to the engine's pool (kept across dispose(), which recreates the pool)."""
        event.listen(engine, "checkout", self._on_checkout)
        event.listen(engine, "checkin", self._on_checkin)
        event.listen(engine, "do_connect", self._before_connect)
        event.listen(engine, "connect", self._after_connect)
        event.listen(engine, "engine_disposed", self._on_disposed)
        self._wrap(engine.pool)
        if self.leak_warning_s is not None:
            _LEAK_WATCH.add(self)

    def _on_disposed(self, engine: Engine) -> None:
        self._wrap(engine.pool)  # dispose() put a new pool in place

    def _wrap(self, pool: Pool) -> None:
        """Count callers in pool.connect() (waiting), time it (wait_time), and name the
        holders in a timeout. An instance attribute, so every pool class is covered."""
        if getattr(pool, "_dbwire_tracked", None) is self:
            return
        checkout = pool.connect
        timings = self.timings
        lock = self._lock

        def connect() -> Any:
            with lock:
                self.waiting += 1
            started = perf_counter()
            try:
                proxy = checkout()
            except sa_exc.TimeoutError as exc:
                with timings.lock:
                    timings.timeouts += 1
                raise self._timeout_error(pool, exc) from None
            finally:
                with lock:
                    self.waiting -= 1
            timings.wait_time.observe(perf_counter() - started)
            return proxy

        pool.connect = connect  # type: ignore[method-assign]
        pool._dbwire_tracked = self  # type: ignore[attr-defined]

    def _timeout_error(self, pool: Pool, exc: sa_exc.TimeoutError) -> PoolTimeoutError:
        if isinstance(exc, PoolTimeoutError):
            message = str(exc)
        elif isinstance(pool, QueuePool):
            from dbwire.pool import pool_timeout_error

            message = str(pool_timeout_error(pool, self.database))
        else:
            message = f"database {self.database!r}: no pooled connection came free in time"
        holders = self.holders()
        if holders:
            shown = "; ".join(h.describe() for h in holders[:_SHOWN_HOLDERS])
            more = len(holders) - _SHOWN_HOLDERS
            extra = f" and {more} more" if more > 0 else ""
            message += f". Held longest by: {shown}{extra}"
        return PoolTimeoutError(message, database=self.database)

    # -- events ----------------------------------------------------------------
    def _on_checkout(self, _dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        frame = _caller_frame(sys._getframe(1))
        if frame is None:
            frame = _greenlet_caller()
        task = None
        if asyncio._get_running_loop() is not None:  # cheaper than catching current_task()
            task = asyncio.current_task()
        held = _Held(frame, task)
        with self._lock:
            self._held[record] = held

    def _on_checkin(self, _dbapi_connection: Any, record: Any) -> None:
        with self._lock:
            held = self._held.pop(record, None)
        if held is not None:
            self.timings.use_time.observe(monotonic() - held.since)

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
        now = monotonic()
        with self._lock:
            held = list(self._held.values())
        held.sort(key=lambda h: h.since)
        return tuple(h.public(now) for h in held)

    def check_leaks(self) -> None:
        """Warn once for each connection held longer than leak_warning_s."""
        limit = self.leak_warning_s
        if limit is None:
            return
        now = monotonic()
        with self._lock:
            late = [h for h in self._held.values() if not h.warned and now - h.since > limit]
            for held in late:
                held.warned = True
        for held in late:
            self.logger.warning(
                "database %r: a pooled connection has been checked out for %.1f s "
                "(leak_warning_s=%g) by %s (thread %s%s); close the session or connection "
                "when done, or raise leak_warning_s if holding it is intended",
                self.database,
                now - held.since,
                limit,
                held.where,
                held.thread,
                f", task {held.task}" if held.task else "",
            )

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's checkouts are not this process's."""
        self._lock = threading.Lock()
        self._held = {}
        self.waiting = 0
        if self.leak_warning_s is not None:
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
            del trackers, tracker  # hold no tracker while asleep: they go with their engines
            time.sleep(interval)


_LEAK_WATCH = _LeakWatch()
