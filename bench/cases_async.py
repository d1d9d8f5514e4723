"""async_session() against AsyncSession on the same async pool; the raw async drivers' floors."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bench.cases_sync import LAYER_BUDGET, NO_PING_NOTE, NO_PING_POOL, SAME_POOL
from bench.context import SELECT_ONE, Context
from bench.harness import Comparison, Row, Stats, compared, failed, interleave_async, time_one_async
from bench.targets import MARIADB, POSTGRESQL, SQLITE, Target, fill_async_pool

_STATEMENT = text(SELECT_ONE)


def case_async(ctx: Context) -> list[Row]:
    return asyncio.run(_case_async(ctx))


async def _case_async(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for target in (POSTGRESQL, MARIADB, SQLITE):
        try:
            rows += await _target_rows(ctx, target)
        except Exception as exc:  # one backend's failure leaves the others' rows
            operation = f"{target.label}: `db.async_session()` + `SELECT 1` + commit"
            rows.append(failed("async", operation, exc, **target.extra(is_async=True)))
    return rows


async def _target_rows(ctx: Context, target: Target) -> list[Row]:
    pool: dict[str, Any] = SAME_POOL if target.is_server else {}
    db = target.database(ctx, f"bench_async_{target.key}", **pool)
    # (label, engine options, budgeted): the no-ping baseline first, then dbwire's settings.
    baselines: list[tuple[str, dict[str, Any], bool]] = [
        (", same pool, `pool_pre_ping=False`" if target.is_server else ", default pool", {}, True)
    ]
    if target.is_server:
        baselines[0] = (baselines[0][0], NO_PING_POOL, True)
        baselines.append(
            (", same settings as dbwire's defaults (`pool_pre_ping=True`)", SAME_POOL, False)
        )
    floor_op, close_floor = await target.async_floor(ctx)
    engines: list[AsyncEngine] = []
    timings: list[Comparison] = []
    try:
        await fill_async_pool(db.async_engine)

        async def with_dbwire() -> None:
            async with db.async_session() as session:
                (await session.execute(_STATEMENT)).all()

        floor = await time_one_async(floor_op, ctx.iterations)
        for _, options, _ in baselines:
            engine = create_async_engine(target.sa_url(ctx, True), **options)
            engines.append(engine)
            await fill_async_pool(engine)
            factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

            async def with_sqlalchemy(factory: Any = factory) -> None:
                async with factory.begin() as session:
                    (await session.execute(_STATEMENT)).all()

            timings.append(await interleave_async(with_dbwire, with_sqlalchemy, ctx.iterations))
    finally:
        await close_floor()
        await db.aclose()
        for engine in engines:
            await engine.dispose()
    extra = target.extra(is_async=True)
    rows = [_floor_row(target, floor)]
    for (label, _, budgeted), timing in zip(baselines, timings, strict=True):
        rows.append(
            compared(
                "async",
                f"{target.label}: `db.async_session()` + `SELECT 1` + commit",
                f"`async_sessionmaker(engine).begin()` on {target.async_driver}{label}",
                timing,
                floor=floor,
                budget=LAYER_BUDGET if budgeted else None,
                note=(NO_PING_NOTE if budgeted else "dbwire's defaults on both sides")
                + f"; x floor is against raw {target.async_driver}",
                extra={**extra, "baseline": "no_ping" if budgeted else "same_settings"},
            )
        )
    return rows


def _floor_row(target: Target, floor: Stats) -> Row:
    return Row(
        case="async",
        operation="—",
        baseline_name=f"{target.label} async floor: raw {target.async_driver} `SELECT 1` on "
        "one open connection",
        baseline=floor,
        floor=floor,
        extra={**target.extra(is_async=True), "baseline": "floor"},
    )
