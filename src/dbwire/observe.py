"""Query observation: per-database counters, timing, the slow-query log and query logging."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext

from dbwire.errors import scrub
from dbwire.url import mask_text

# How long the list of secrets used to scrub logged statements is reused before it is
# asked for again (asking may read .pgpass or run a password command).
_SECRETS_TTL = 5.0
_MAX_SHOWN = 2000


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
    """Plain counters; updated under the observer's lock, read as one snapshot."""

    __slots__ = ("errors", "max_s", "queries", "slow", "total_s")

    def __init__(self) -> None:
        self.queries = 0
        self.errors = 0
        self.slow = 0
        self.total_s = 0.0
        self.max_s = 0.0


class QueryObserver:
    """Times every statement of one database's engines and keeps its counters.

    The hot path is two engine events and one short lock: `+=` on attributes is not
    atomic across threads, even under the GIL, so the update is guarded; reads take
    the same lock for a consistent snapshot.
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
        self._lock = threading.Lock()
        self._counters = _Counters()

    # -- installation ----------------------------------------------------------
    def install(self, engine: Engine) -> None:
        """Listen on an engine (a sync engine, or the sync side of an async one)."""
        obs = self  # the lock and counters are read through it: reset_after_fork() swaps them
        slow_s = None if self.slow_query_ms is None else self.slow_query_ms / 1000.0
        log_queries = self.log_queries
        level = self.query_log_level
        logger = self.logger
        slow = self._log_slow
        log = self._log_query

        def before(
            _conn: Any, _cursor: Any, statement: str, parameters: Any, context: Any, _many: bool
        ) -> tuple[str, Any]:
            # The start time rides on the statement's ExecutionContext: no dict, no lock.
            if context is not None:
                context._dbwire_started = perf_counter()
            return statement, parameters

        def after(
            _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
        ) -> None:
            started = getattr(context, "_dbwire_started", None)
            if started is None:
                return
            elapsed = perf_counter() - started
            context._dbwire_started = None  # a later fetch error must not count it twice
            with obs._lock:
                counters = obs._counters
                counters.queries += 1
                counters.total_s += elapsed
                if elapsed > counters.max_s:
                    counters.max_s = elapsed
            if slow_s is not None and elapsed >= slow_s:
                slow(statement, elapsed)
            if log_queries and logger.isEnabledFor(level):
                log(statement, elapsed)

        def on_error(ctx: ExceptionContext) -> None:
            context = ctx.execution_context
            if ctx.is_pre_ping or context is None:
                return  # a failed ping or connect is not a query
            started = getattr(context, "_dbwire_started", None)
            with obs._lock:
                counters = obs._counters
                counters.errors += 1
                if started is not None:  # the statement failed in the driver: a query too
                    elapsed = perf_counter() - started
                    counters.queries += 1
                    counters.total_s += elapsed
                    if elapsed > counters.max_s:
                        counters.max_s = elapsed

        event.listen(engine, "before_cursor_execute", before, retval=True)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", on_error)

    # -- reading ---------------------------------------------------------------
    def snapshot(self) -> QueryStats:
        """The counters right now."""
        with self._lock:
            c = self._counters
            return QueryStats(
                queries=c.queries,
                errors=c.errors,
                slow_queries=c.slow,
                total_ms=c.total_s * 1000.0,
                max_ms=c.max_s * 1000.0,
            )

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counters = _Counters()

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock (a parent thread may have held it) and counters."""
        self._lock = threading.Lock()
        self._counters = _Counters()

    # -- logging ---------------------------------------------------------------
    def _shown(self, statement: str) -> str:
        """The statement as it may be logged: one line, bounded, secrets and URLs masked."""
        text = " ".join(statement.split())
        if len(text) > _MAX_SHOWN:
            text = text[:_MAX_SHOWN] + "..."
        return mask_text(scrub(text, self._known_secrets()))

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
