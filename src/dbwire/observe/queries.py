"""Query observation: per-database counters, timing, the slow-query log and query logging."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any

from dbwire.errors import scrub
from dbwire.observe.histogram import Histogram

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# How long the list of secrets used to scrub logged statements is reused before it is
# asked for again (asking may read .pgpass or run a password command).
_SECRETS_TTL = 5.0
_MAX_SHOWN = 2000
# Statements repeat: their logged form is kept, per list of known secrets, for this many.
_SHOWN_KEPT = 512


@dataclass(frozen=True)
class QueryStats:
    """A snapshot of one database's query counters since creation (or reset_stats())."""

    queries: int
    errors: int
    slow_queries: int
    total_ms: float
    max_ms: float

    @property
    def avg_ms(self) -> float:
        """Mean duration of a statement, 0.0 before the first one."""
        return self.total_ms / self.queries if self.queries else 0.0

    def as_dict(self) -> dict[str, int | float]:
        """The counters as plain JSON-ready values, with avg_ms added."""
        return {
            "queries": self.queries,
            "errors": self.errors,
            "slow_queries": self.slow_queries,
            "total_ms": round(self.total_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "avg_ms": round(self.avg_ms, 3),
        }


class _Counters:
    """The counters a statement's duration does not give (the durations histogram keeps the
    count, the total and the maximum); updated under the observer's lock."""

    __slots__ = ("errors", "slow")

    def __init__(self) -> None:
        self.errors = 0
        self.slow = 0


class QueryObserver:
    """Times every statement of one database's engines and keeps its counters.

    The hot path is one dialect event and a list append (Histogram.pending): the count,
    total and maximum come from the durations histogram; the rare counters (errors, slow
    queries) are updated under a lock, since `+=` on an attribute is not atomic.
    """

    def __init__(
        self,
        name: str,
        *,
        logger: logging.Logger,
        log_queries: bool = False,
        query_log_level: str = "DEBUG",
        slow_query_ms: float | None = None,
        secrets: Callable[[], Iterable[str]] = list,
    ) -> None:
        self.name = name
        self.logger = logger
        self.log_queries = log_queries
        self.query_log_level = logging.getLevelName(query_log_level)
        self.slow_query_ms = slow_query_ms
        self._secrets = secrets
        self._secrets_cache: tuple[float, list[str]] = (-_SECRETS_TTL, [])
        self._shown_cache: tuple[list[str], dict[str, str]] = ([], {})
        self._lock = threading.Lock()
        self._counters = _Counters()
        # db.client.operation.duration, for the metrics exporters
        self.durations = Histogram()

    # -- installation ----------------------------------------------------------
    def install(self, engine: Engine) -> None:
        """Time every statement of an engine (a sync engine, or an async one's sync side).

        The listeners are DialectEvents (do_execute*), not Connection events: a single
        Connection-level listener sends every Connection of the engine down SQLAlchemy's
        slower event path (~130 more calls per statement; bench/RESULTS.md). Each listener
        makes the driver call itself, timed in try/finally, and returns True so that
        SQLAlchemy does not make it again; a failing statement is counted as an error.
        """
        from sqlalchemy import event

        _ECHO_SCRUBBER.watch(engine, self)
        dialect = engine.dialect
        # SQLAlchemy's first connect runs the dialect's own set-up statements (version,
        # schema, ...); they are not the application's queries. The engine-level "connect"
        # listener below is registered after SQLAlchemy's, so it fires once set-up is done.
        ready = [False]
        record = self.record

        def mark_ready(_dbapi_connection: Any, _record: Any) -> None:
            ready[0] = True

        event.listen(engine, "connect", mark_ready, once=True)

        def timed(call: Callable[..., None]) -> Callable[..., bool]:
            def listener(cursor: Any, statement: str, *rest: Any) -> bool:
                started = perf_counter()
                failed = True
                try:
                    call(cursor, statement, *rest)
                    failed = False
                finally:
                    if ready[0]:
                        record(statement, perf_counter() - started, failed)
                return True

            return listener

        # (cursor, statement, parameters, context), (cursor, statement, context), and
        # (cursor, statement, parameters, context): the driver call each event replaces.
        for name in ("do_execute", "do_execute_no_params", "do_executemany"):
            event.listen(engine, name, timed(getattr(dialect, name)))

    def record(self, statement: str, elapsed: float, failed: bool = False) -> None:
        """Count one statement that took `elapsed` seconds; log it if slow or asked to."""
        durations = self.durations
        pending = durations.pending
        pending.append(elapsed)
        if len(pending) >= durations.fold_at:
            durations.fold()
        if failed:
            with self._lock:
                self._counters.errors += 1
        slow_query_ms = self.slow_query_ms
        if slow_query_ms is not None and elapsed * 1000.0 >= slow_query_ms:
            self._log_slow(statement, elapsed)
        if self.log_queries and self.logger.isEnabledFor(self.query_log_level):
            self._log_query(statement, elapsed)

    # -- reading ---------------------------------------------------------------
    def snapshot(self) -> QueryStats:
        """The counters right now."""
        durations = self.durations.snapshot()
        with self._lock:
            c = self._counters
            errors, slow = c.errors, c.slow
        return QueryStats(
            queries=durations.count,
            errors=errors,
            slow_queries=slow,
            total_ms=durations.total * 1000.0,
            max_ms=self.durations.max * 1000.0,
        )

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counters = _Counters()
        self.durations.reset()

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held it) and counters."""
        self._lock = threading.Lock()
        self._counters = _Counters()
        self.durations.reset()

    # -- logging ---------------------------------------------------------------
    def _shown(self, statement: str) -> str:
        """The statement as it may be logged: one line, bounded, secrets and URLs masked."""
        secrets = self._known_secrets()
        cache = self._shown_cache
        if cache[0] is not secrets:  # the secrets were read again: scrub afresh
            cache = self._shown_cache = (secrets, {})
        shown = cache[1].get(statement)
        if shown is None:
            text = " ".join(statement.split())
            if len(text) > _MAX_SHOWN:
                text = text[:_MAX_SHOWN] + "..."
            shown = scrub(text, secrets)  # scrub() masks secret patterns too
            if len(cache[1]) < _SHOWN_KEPT:
                cache[1][statement] = shown
        return shown

    def _known_secrets(self) -> list[str]:
        fetched_at, cached = self._secrets_cache
        now = monotonic()
        if now - fetched_at < _SECRETS_TTL:
            return cached
        try:
            fresh = [s for s in self._secrets() if s]
        except Exception:  # scrubbing must not break a query because a secret source is down
            fresh = cached
        self._secrets_cache = (now, fresh)
        return fresh

    def _log_slow(self, statement: str, elapsed: float) -> None:
        with self._lock:
            self._counters.slow += 1
        self.logger.warning(
            "database %r: slow query: %.1f ms (slow_query_ms=%s): %s",
            self.name,
            elapsed * 1000.0,
            self.slow_query_ms,
            self._shown(statement),
        )

    def _log_query(self, statement: str, elapsed: float) -> None:
        self.logger.log(
            self.query_log_level,
            "database %r: query: %.2f ms: %s",
            self.name,
            elapsed * 1000.0,
            self._shown(statement),
        )


class _EchoScrubber(logging.Filter):
    """Scrubs SQLAlchemy's own engine log (echo=True): statements such as
    `ALTER ROLE x PASSWORD '...'` and every known password of the databases it serves.

    SQLAlchemy logs through one logger per engine class name, shared by every engine,
    so one filter serves them all and asks each live observer for its secrets.
    """

    def __init__(self) -> None:
        super().__init__()
        self._observers: weakref.WeakSet[QueryObserver] = weakref.WeakSet()
        self._lock = threading.Lock()

    def watch(self, engine: Engine, observer: QueryObserver) -> None:
        """Scrub the log of this engine, with this observer's secrets among the known ones."""
        target = getattr(engine.logger, "logger", engine.logger)
        if not isinstance(target, logging.Logger):
            return
        with self._lock:
            self._observers.add(observer)
            if self not in target.filters:
                target.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging module's to report
            return True
        with self._lock:
            observers = list(self._observers)
        secrets = [s for observer in observers for s in observer._known_secrets()]
        clean = scrub(message, secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_ECHO_SCRUBBER = _EchoScrubber()
