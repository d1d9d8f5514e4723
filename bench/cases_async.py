"""PostgreSQL over asyncpg: async_session() against a raw AsyncSession, and raw asyncpg."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import QueuePool

import dbwire
from bench.cases_sync import SAME_POOL, SESSION_BUDGET
from bench.context import SELECT_ONE, Context
from bench.harness import Row, compared, interleave_async, time_one_async

_STATEMENT = text(SELECT_ONE)


async def _fill_pool(engine: AsyncEngine) -> None:
    """The async twin of cases_sync.fill_pool(): rotate over the whole pool."""
    pool = engine.sync_engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else 1
    held = [await engine.connect().start() for _ in range(size)]
    for conn in held:
        await conn.close()


def case_async(ctx: Context) -> list[Row]:
    return asyncio.run(_case_async(ctx))


async def _case_async(ctx: Context) -> list[Row]:
    import asyncpg

    raw = await asyncpg.connect(ctx.pg_url)
    db = dbwire.connect(ctx.pg_url, name="bench_async", logger=ctx.null_logger, **SAME_POOL)
    engine = create_async_engine(ctx.sa_url("asyncpg"), **SAME_POOL)
    factory = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
    try:
        await _fill_pool(db.async_engine)
        await _fill_pool(engine)

        async def floor_op() -> None:
            await raw.fetch(SELECT_ONE)

        async def with_dbwire() -> None:
            async with db.async_session() as session:
                (await session.execute(_STATEMENT)).all()

        async def with_sqlalchemy() -> None:
            async with factory.begin() as session:
                (await session.execute(_STATEMENT)).all()

        floor = await time_one_async(floor_op, ctx.iterations)
        timing = await interleave_async(with_dbwire, with_sqlalchemy, ctx.iterations)
    finally:
        await raw.close()
        await db.aclose()
        await engine.dispose()
    return [
        Row(
            case="async",
            operation="—",
            baseline_name="raw asyncpg `fetch('SELECT 1')` on one connection (the async floor)",
            baseline=floor,
            floor=floor,
        ),
        compared(
            "async",
            "`db.async_session()` + `SELECT 1` + commit",
            "`async_sessionmaker(engine).begin()` on asyncpg, same pool",
            timing,
            floor=floor,
            budget=SESSION_BUDGET,
            note="x floor here is against raw asyncpg",
        ),
    ]
