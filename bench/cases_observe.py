"""Observability on against off, and health checks of 20 databases at once."""

from __future__ import annotations

import logging
import select
from typing import Any

from sqlalchemy import text

import dbwire
from bench.cases_sync import SAME_POOL, database
from bench.context import SELECT_ONE, Context
from bench.harness import (
    Budget,
    Comparison,
    Row,
    Stats,
    compared,
    format_time,
    interleave,
    time_one,
)
from dbwire.manager import Manager

OBSERVE_BUDGET = Budget(1.10, "<= 1.10x observability off")
HEALTH_BUDGET = Budget(1.5, "<= 1.5x the slowest single check", metric="reference")
HEALTH_DATABASES = 20
REMOTE_WAIT_S = 0.05

_STATEMENT = text(SELECT_ONE)


# Observability that exists in every build: stats are always kept, these switch on the rest.
OBSERVE_ON: dict[str, Any] = {
    "log_queries": True,
    "query_log_level": "INFO",
    "slow_query_ms": 60_000.0,
}
# Observability fields that later builds may add; each one the config model has is switched
# on too, so the row grows with them: (field, value when on, what RESULTS.md calls it).
OPTIONAL_ON: tuple[tuple[str, Any, str], ...] = (
    ("track_holders", True, "holder tracking"),
    ("leak_warning_s", 60.0, "leak warnings"),
    ("leak_warning_seconds", 60.0, "leak warnings"),
    ("metrics", True, "metrics"),
    ("enable_metrics", True, "metrics"),
    ("collect_metrics", True, "metrics"),
)


def observability_on() -> tuple[dict[str, Any], list[str]]:
    """The overrides that switch every observability feature of this build on, and their names."""
    from dbwire.config import DatabaseConfig

    fields = DatabaseConfig.model_fields
    on = dict(OBSERVE_ON)
    names = ["stats", "slow-query log", "query log"]
    for field, value, what in OPTIONAL_ON:
        if field in fields:
            on[field] = value
            if what not in names:
                names.append(what)
    return on, names


def case_observe(ctx: Context) -> list[Row]:
    on, names = observability_on()
    if hasattr(Manager, "metrics") and "metrics" not in names:
        names.append("metrics (`manager.metrics()`, read after the run)")
    operation = "PostgreSQL: `db.session()` + `SELECT 1`, observability on: " + ", ".join(names)
    # Records are really made (the level lets them through) and dropped by a NullHandler.
    ctx.null_logger.setLevel(logging.INFO)
    observed = database(ctx, "bench_observe_on", **on, **SAME_POOL)
    plain = database(ctx, "bench_observe_off", **SAME_POOL)

    def op(db: dbwire.Database) -> Any:
        def run() -> None:
            with db.session() as session:
                session.execute(_STATEMENT).all()

        return run

    try:
        timing = interleave(op(observed), op(plain), ctx.iterations)
    finally:
        ctx.null_logger.setLevel(logging.NOTSET)
    queries = observed.get_stats().queries
    return [
        compared(
            "observe",
            operation,
            "the same with everything but the always-on stats off",
            timing,
            floor=ctx.floor(),
            budget=OBSERVE_BUDGET,
            note=(
                f"dbwire always keeps query stats, so off still counts; {queries:,} statements "
                "counted by get_stats() on the observed side; on: "
                + ", ".join(f"{k}={v!r}" for k, v in on.items())
            ),
            extra={"backend": "postgresql", "driver": "psycopg", "on": sorted(on)},
        )
    ]


def case_holders(ctx: Context) -> list[Row]:
    """Holder tracking, pool timings and the operation histogram (what metrics read) on vs
    off, on one Database and one server connection, switched per batch of operations."""
    from bench.holders_ab import batches, tracked_database

    operation = (
        "PostgreSQL: `db.session()` + `SELECT 1`, pool observability on: who holds each "
        "connection, wait/use/create times and the operation histogram behind the metrics"
    )
    pairs = max(10, ctx.iterations.samples // 20)
    db, run, switch = tracked_database(ctx)
    try:
        wall, _cpu = batches(run, switch, pairs, 20)
    finally:
        db.close()
    to_ns = 1e9
    timing = Comparison.of([s * to_ns for s in wall[True]], [s * to_ns for s in wall[False]])
    return [
        compared(
            "holders",
            operation,
            "the same Database with that per-checkout work switched off",
            timing,
            floor=ctx.floor(),
            budget=OBSERVE_BUDGET,
            note=(
                f"one Database, pool_size=1, switched on and off between {pairs} pairs of "
                "batches of 20 operations (bench/holders_ab.py); each sample is a batch's "
                "time per operation; leak_warning_s=30 on both sides"
            ),
            extra={"backend": "postgresql", "driver": "psycopg"},
        )
    ]


def case_health(ctx: Context) -> list[Row]:
    operation = f"`manager.health_check()` over {HEALTH_DATABASES} databases"
    timing, slowest = _health_timings(
        ctx, "health", {"url": ctx.pg_url, **SAME_POOL}, scale=(0.05, 0.02), minimum=(4, 3)
    )
    raw_all, raw_one = _raw_pings(ctx)
    return [
        compared(
            "health",
            operation,
            f"`health_check()` of each of the {HEALTH_DATABASES} in turn",
            timing,
            reference=slowest,
            floor=raw_all,
            budget=HEALTH_BUDGET,
            note=(
                f"the slowest single check takes {format_time(slowest)}; the budget value is "
                "concurrent / slowest single. x floor is against raw libpq sending "
                f"`SELECT 1` on {HEALTH_DATABASES} open connections at once "
                f"({format_time(raw_all.median)}, {raw_all.median / raw_one.median:.1f}x one "
                f"raw ping of {format_time(raw_one.median)}): the physical limit of "
                "concurrency on this machine"
            ),
        ),
        *case_health_remote(ctx),
    ]


def case_health_remote(ctx: Context) -> list[Row]:
    """The same 20 databases, each check waiting 50 ms as a remote server's answer would."""
    operation = (
        f"`manager.health_check()` over {HEALTH_DATABASES} databases, each answer after 50 ms"
    )
    fields = {"url": ctx.pg_url, "health_query": f"SELECT pg_sleep({REMOTE_WAIT_S})", **SAME_POOL}
    timing, slowest = _health_timings(ctx, "remote", fields, scale=(0.002, 0.002), minimum=(3, 3))
    return [
        compared(
            "health",
            operation,
            f"`health_check()` of each of the {HEALTH_DATABASES} in turn",
            timing,
            reference=slowest,
            budget=HEALTH_BUDGET,
            note=(
                f"a remote server: `health_query = SELECT pg_sleep({REMOTE_WAIT_S})`; the "
                f"slowest single check takes {format_time(slowest)}"
            ),
        )
    ]


def _health_timings(
    ctx: Context,
    prefix: str,
    fields: dict[str, Any],
    *,
    scale: tuple[float, float],
    minimum: tuple[int, int],
) -> tuple[Comparison, float]:
    """HEALTH_DATABASES alike databases: manager.health_check() against checking them one
    after another (interleaved), and the median of the slowest single check."""
    names = [f"{prefix}_{i:02d}" for i in range(HEALTH_DATABASES)]
    manager = Manager.from_config(
        {"databases": dict.fromkeys(names, fields)}, ctx.null_logger, environ={}
    )
    ctx.on_close(manager.close_all)
    manager.setup()
    _require_healthy(manager.health_check())
    singles = [manager.db(name).health_check for name in names]

    def concurrent() -> None:
        manager.health_check()

    def one_after_another() -> None:
        for check in singles:
            check()

    timing = interleave(
        concurrent, one_after_another, ctx.iterations.scaled(scale[0], minimum=minimum[0])
    )
    slowest = max(
        time_one(check, ctx.iterations.scaled(scale[1], minimum=minimum[1])).median
        for check in singles
    )
    return timing, slowest


def _raw_pings(ctx: Context) -> tuple[Stats, Stats]:
    """Raw psycopg: one ping, and HEALTH_DATABASES pings in flight at once (non-blocking)."""
    import psycopg

    conns = [psycopg.connect(ctx.pg_url, autocommit=True) for _ in range(HEALTH_DATABASES)]
    try:
        pgconns = [conn.pgconn for conn in conns]

        def all_at_once() -> None:
            for pgconn in pgconns:
                pgconn.send_query(b"SELECT 1")
            waiting = {pgconn.socket: pgconn for pgconn in pgconns}
            while waiting:
                ready, _, _ = select.select(list(waiting), [], [], 5.0)
                if not ready:
                    raise TimeoutError("no answer to SELECT 1 within 5 s")
                for fd in ready:
                    pgconn = waiting[fd]
                    pgconn.consume_input()
                    if not pgconn.is_busy():
                        while pgconn.get_result() is not None:
                            pass
                        del waiting[fd]

        def one() -> None:
            conns[0].execute("SELECT 1").fetchall()

        iterations = ctx.iterations.scaled(0.1, minimum=4)
        return time_one(all_at_once, iterations), time_one(one, iterations)
    finally:
        for conn in conns:
            conn.close()


def _require_healthy(results: Any) -> None:
    bad = {
        name: result
        for name, result in dict(results).items()
        if str(getattr(result, "status", "")).lower() not in ("ok", "healthy", "up")
    }
    if bad:
        raise RuntimeError(f"health checks failed before timing: {bad}")
