"""`pool_min_size`: the first sessions right after setup, with connections opened ahead or not."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text

from bench.cases_sync import SAME_POOL
from bench.context import SELECT_ONE, Context
from bench.harness import Comparison, Iterations, Row, compared, pending
from dbwire.config import DatabaseConfig
from dbwire.manager import Manager

FIELD = "pool_min_size"
FIRST_SESSIONS = 20
MIN_SIZE = 5
_STATEMENT = text(SELECT_ONE)
_serial = itertools.count()


def available() -> bool:
    """True once the config model has the field (it lands with the core work)."""
    return FIELD in DatabaseConfig.model_fields


def case_pool_min_size(ctx: Context) -> list[Row]:
    operation = (
        f"PostgreSQL: the first {FIRST_SESSIONS} `db.session()` + `SELECT 1` right after "
        f"`manager.setup()`, `pool_min_size={MIN_SIZE}`"
    )
    if not available():
        return [
            pending(
                "pool_min_size",
                operation,
                "not available: DatabaseConfig has no `pool_min_size` field in this build",
            )
        ]
    iterations = Iterations(samples=2, warmup=0) if ctx.quick else Iterations(samples=12, warmup=1)
    rows = []
    for threads in (1, MIN_SIZE):
        timing = _paired(ctx, threads, iterations)
        shape = (
            "one after another"
            if threads == 1
            else f"from {threads} threads at once ({FIRST_SESSIONS // threads} each)"
        )
        rows.append(
            compared(
                "pool_min_size",
                f"{operation}, {shape}",
                "the same with `pool_min_size=0` (connections opened on demand)",
                timing,
                note=(
                    f"time of all {FIRST_SESSIONS} sessions together, a new Manager per sample; "
                    "setup and the wait until its background opens are pooled are not timed "
                    "(traffic after a deploy arrives once the service is ready); setup's "
                    "health check leaves one connection in the pool either way, so "
                    "one-after-another needs no new connection, and a pool with "
                    "pool_min_size hands connections out last in, first out, so it reuses "
                    "the warmest; the threads' burst needs five, which only the warm pool has"
                ),
                extra={"backend": "postgresql", "driver": "psycopg", "threads": threads},
            )
        )
    return rows


def _paired(ctx: Context, threads: int, iterations: Iterations) -> Comparison:
    for _ in range(iterations.warmup):
        _first_sessions(ctx, MIN_SIZE, threads)
        _first_sessions(ctx, 0, threads)
    warm: list[float] = []
    cold: list[float] = []
    for i in range(iterations.samples):
        pair = ((MIN_SIZE, warm), (0, cold))
        for size, samples in pair if i % 2 == 0 else pair[::-1]:
            samples.append(_first_sessions(ctx, size, threads))
    return Comparison.of(warm, cold)


def _first_sessions(ctx: Context, min_size: int, threads: int) -> float:
    """Build and set up a one-database Manager, then time its first sessions (ns)."""
    name = f"bench_min_{min_size}_{next(_serial)}"
    fields: dict[str, Any] = {"url": ctx.pg_url, **SAME_POOL, FIELD: min_size}
    manager = Manager.from_config({"databases": {name: fields}}, ctx.null_logger, environ={})
    try:
        manager.setup()
        if manager.errors:
            raise RuntimeError(f"setup failed: {manager.errors}")
        db = manager.db(name)
        _wait_until_warm(db, min_size)

        def sessions() -> None:
            for _ in range(FIRST_SESSIONS // threads):
                with db.session() as session:
                    session.execute(_STATEMENT).all()

        if threads == 1:
            start = time.perf_counter_ns()
            sessions()
            return float(time.perf_counter_ns() - start)
        with ThreadPoolExecutor(threads) as pool:
            # Threads started before the clock: the burst, not thread creation, is timed.
            gate = threading.Barrier(threads + 1)
            futures = [pool.submit(_after, gate, sessions) for _ in range(threads)]
            gate.wait()
            start = time.perf_counter_ns()
            for future in futures:
                future.result()
            return float(time.perf_counter_ns() - start)
    finally:
        manager.close_all()


def _wait_until_warm(db: Any, min_size: int, limit_s: float = 5.0) -> None:
    """Wait (untimed) until the background opens are pooled, as traffic after a deploy
    arrives once the service is ready: timing sessions that race the opens would measure
    the race, not the warm pool."""
    deadline = time.monotonic() + limit_s
    while db.engine.pool.checkedin() < min_size and time.monotonic() < deadline:
        time.sleep(0.005)


def _after(gate: threading.Barrier, work: Callable[[], None]) -> None:
    gate.wait()
    work()
