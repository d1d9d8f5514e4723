"""`execute_query("SELECT 1")` on every backend, sync and async, against the raw driver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dbwire
from bench.cases_sync import SAME_POOL, core_execute_query, database, no_ping_engine
from bench.context import SELECT_ONE, Context
from bench.harness import Budget, Comparison, Row, compared, failed, interleave, interleave_async
from bench.targets import DUCKDB, TARGETS, Target, fill_async_pool, fill_pool

EXECUTE_QUERY_BUDGET = Budget(1.5, "<= 1.5x the raw driver", metric="floor")
ASYNC_NOTE = "the async floor: SQLAlchemy's async engine runs DuckDB in a thread, so does this"


def _floor_name(target: Target, *, is_async: bool) -> str:
    if is_async and target.async_driver is None:
        return f"raw {target.sync_driver} `SELECT 1` in `asyncio.to_thread`, one open connection"
    driver = target.async_driver if is_async else target.sync_driver
    return f"raw {driver} `SELECT 1` on an open connection (autocommit)"


def _query_row(
    target: Target, *, is_async: bool, operation: str, timing: Comparison, budgeted: bool
) -> Row:
    return compared(
        "async_execute_query" if is_async else "execute_query",
        f"{target.label}: {operation}",
        _floor_name(target, is_async=is_async),
        timing,
        floor=timing.b,
        paired_floor_ratio=timing.ratio,
        budget=EXECUTE_QUERY_BUDGET if budgeted else None,
        note=ASYNC_NOTE if is_async and target is DUCKDB else "",
        extra=target.extra(is_async=is_async),
    )


def _database(ctx: Context, target: Target, name: str) -> dbwire.Database:
    if target.key == "postgresql":
        return database(ctx, name, **SAME_POOL)  # the pool on the run's shared connections
    db = target.database(ctx, name)
    if target.is_server:
        fill_pool(db.engine)
    return db


def case_execute_query(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    operation = '`db.execute_query("SELECT 1")`'
    for target in TARGETS:
        try:
            db = _database(ctx, target, f"bench_query_{target.key}")
            db.execute_query(SELECT_ONE)  # the file, the pool's first connection
            timing = interleave(_query(db), target.sync_floor(ctx), ctx.iterations)
            rows.append(
                _query_row(
                    target, is_async=False, operation=operation, timing=timing, budgeted=True
                )
            )
            if target.key == "postgresql":
                rows.append(_against_core(ctx, db))
        except Exception as exc:  # one backend's failure leaves the others' rows
            rows.append(
                failed(
                    "execute_query",
                    f"{target.label}: {operation}",
                    exc,
                    **target.extra(is_async=False),
                )
            )
    return rows


def _query(db: dbwire.Database) -> Callable[[], object]:
    return lambda: db.execute_query(SELECT_ONE)


def _against_core(ctx: Context, db: dbwire.Database) -> Row:
    """What execute_query() saves over doing it by hand with SQLAlchemy Core."""
    engine = no_ping_engine(ctx)
    return compared(
        "execute_query",
        'PostgreSQL: `db.execute_query("SELECT 1")`',
        "SQLAlchemy Core by hand: `connect()`, `execute(text())`, dict rows, commit; "
        "same pool, no pre-ping",
        interleave(
            lambda: db.execute_query(SELECT_ONE),
            lambda: core_execute_query(engine, SELECT_ONE),
            ctx.iterations,
        ),
        floor=ctx.floor(),
        note="Core spends BEGIN, the statement and COMMIT: three round trips to dbwire's one",
        extra={"backend": "postgresql", "driver": "psycopg", "baseline": "core"},
    )


def case_async_execute_query(ctx: Context) -> list[Row]:
    return asyncio.run(_case_async_execute_query(ctx))


async def _case_async_execute_query(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    operation = '`await db.async_execute_query("SELECT 1")`'
    for target in TARGETS:
        try:
            timing = await _async_timing(ctx, target)
        except Exception as exc:  # one backend's failure leaves the others' rows
            rows.append(
                failed(
                    "async_execute_query",
                    f"{target.label}: {operation}",
                    exc,
                    **target.extra(is_async=True),
                )
            )
            continue
        rows.append(
            _query_row(
                target,
                is_async=True,
                operation=operation,
                timing=timing,
                budgeted=True,
            )
        )
    return rows


async def _async_timing(ctx: Context, target: Target) -> Comparison:
    db = target.database(ctx, f"bench_async_query_{target.key}")
    floor, close = await target.async_floor(ctx)
    try:
        if target.is_server:
            await fill_async_pool(db.async_engine)
        await db.async_execute_query(SELECT_ONE)

        async def with_dbwire() -> None:
            await db.async_execute_query(SELECT_ONE)

        return await interleave_async(with_dbwire, floor, ctx.iterations)
    finally:
        await close()
        await db.aclose()
