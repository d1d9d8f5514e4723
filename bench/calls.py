"""`python -m bench.calls PAIR ...`: where dbwire's extra time goes, counted, not timed.

cProfile counts every Python call of N runs of dbwire's operation and of its baseline; the
calls per operation and the functions dbwire calls more often than the baseline do not move
with the machine's load (timings do), so they are the evidence behind an OVER row's cause.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from bench.context import SELECT_ONE, Context

Op = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]
Key = tuple[str, int, str]
_STATEMENT = text(SELECT_ONE)


@dataclass
class Pair:
    """dbwire's operation and its baseline, sync or async (run on one event loop)."""

    a: Op | AsyncOp
    b: Op | AsyncOp
    is_async: bool = False
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()


def _connect(ctx: Context) -> Pair:
    from bench.cases_sync import SAME_POOL, database, no_ping_engine

    db = database(ctx, "calls_connect", **SAME_POOL)
    engine = no_ping_engine(ctx)

    def a() -> None:
        with db.connect() as conn:
            conn.execute(_STATEMENT).all()

    def b() -> None:
        with engine.connect() as conn:
            conn.execute(_STATEMENT).all()

    return Pair(a, b)


def _session(ctx: Context) -> Pair:
    from bench.cases_sync import SAME_POOL, database, no_ping_engine

    db = database(ctx, "calls_session", **SAME_POOL)
    return _session_pair(
        db, sessionmaker(no_ping_engine(ctx), expire_on_commit=False, autoflush=False)
    )


def _session_pair(db: Any, factory: sessionmaker[Any]) -> Pair:
    """db.session() + SELECT 1 against factory.begin() + SELECT 1."""

    def a() -> None:
        with db.session() as session:
            session.execute(_STATEMENT).all()

    def b() -> None:
        with factory.begin() as session:
            session.execute(_STATEMENT).all()

    return Pair(a, b)


def _sqlite(ctx: Context) -> Pair:
    """bench.cases_sqlite's pair: db.session() against sessionmaker on a WAL file."""
    from bench.cases_sqlite import sqlite_sides

    return _session_pair(*sqlite_sides(ctx, ctx.tmp / "calls.sqlite", "calls_sqlite"))


def _observe(ctx: Context) -> Pair:
    import logging

    from bench.cases_observe import observability_on
    from bench.cases_sync import SAME_POOL, database

    on, _ = observability_on()
    ctx.null_logger.setLevel(logging.INFO)
    observed = database(ctx, "calls_observe_on", **on, **SAME_POOL)
    plain = database(ctx, "calls_observe_off", **SAME_POOL)

    def run(db: Any) -> Op:
        def op() -> None:
            with db.session() as session:
                session.execute(_STATEMENT).all()

        return op

    return Pair(run(observed), run(plain))


def _query(key: str) -> Callable[[Context], Pair]:
    def make(ctx: Context) -> Pair:
        from bench.cases_query import _database
        from bench.targets import TARGETS

        target = next(t for t in TARGETS if t.key == key)
        db = _database(ctx, target, f"calls_query_{key}")
        return Pair(lambda: db.execute_query(SELECT_ONE), target.sync_floor(ctx))

    return make


def _async_query(key: str) -> Callable[[Context], Awaitable[Pair]]:
    async def make(ctx: Context) -> Pair:
        from bench.targets import TARGETS

        target = next(t for t in TARGETS if t.key == key)
        db = target.database(ctx, f"calls_async_query_{key}")
        floor, close = await target.async_floor(ctx)

        async def a() -> None:
            await db.async_execute_query(SELECT_ONE)

        return Pair(a, floor, is_async=True, closers=(close, db.aclose))

    return make


SYNC_PAIRS: dict[str, Callable[[Context], Pair]] = {
    "connect": _connect,
    "session": _session,
    "sqlite": _sqlite,
    "observe": _observe,
    **{f"execute_query.{k}": _query(k) for k in ("postgresql", "mariadb", "sqlite", "duckdb")},
}
ASYNC_PAIRS: dict[str, Callable[[Context], Awaitable[Pair]]] = {
    f"async_execute_query.{k}": _async_query(k)
    for k in ("postgresql", "mariadb", "sqlite", "duckdb")
}


@contextmanager
def _profiled() -> Iterator[cProfile.Profile]:
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield profiler
    finally:
        profiler.disable()


def _counts(profiler: cProfile.Profile, runs: int) -> dict[Key, float]:
    stats: dict[Key, tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    return {key: value[1] / runs for key, value in stats.items()}


def _name(key: Key) -> str:
    path, line, function = key
    for marker in ("site-packages/", "/src/", "/bench/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return function if path == "~" else f"{path}:{line}({function})"


def _cpu_us(op: Op, runs: int) -> float:
    """This thread's CPU time per run (us): the client's own work, without the waits."""
    start = time.thread_time_ns()
    for _ in range(runs):
        op()
    return (time.thread_time_ns() - start) / runs / 1e3


async def _cpu_us_async(op: AsyncOp, runs: int) -> float:
    start = time.thread_time_ns()
    for _ in range(runs):
        await op()
    return (time.thread_time_ns() - start) / runs / 1e3


def report(
    name: str, a: dict[Key, float], b: dict[Key, float], top: int, cpu: tuple[float, float]
) -> str:
    lines = [
        f"== {name}: dbwire {sum(a.values()):.0f} Python calls per operation, "
        f"baseline {sum(b.values()):.0f}; client CPU {cpu[0]:.1f} us vs {cpu[1]:.1f} us "
        "per operation (thread time, unprofiled)",
    ]
    more = sorted(
        ((count - b.get(key, 0.0), key) for key, count in a.items()),
        key=lambda item: -item[0],
    )
    lines += [f"  {delta:+6.1f}  {_name(key)}" for delta, key in more[:top] if delta >= 0.5]
    return "\n".join(lines)


Found = tuple[dict[Key, float], dict[Key, float], tuple[float, float]]


def run_sync(pair: Pair, runs: int, warmup: int) -> Found:
    found = []
    ops: tuple[Op, Op] = (pair.a, pair.b)
    for op in ops:
        for _ in range(warmup):
            op()
        with _profiled() as profiler:
            for _ in range(runs):
                op()
        found.append(_counts(profiler, runs))
    # CPU time in alternating blocks, so drift hits both alike.
    cpu = [0.0, 0.0]
    for _ in range(5):
        for i, op in enumerate(ops):
            cpu[i] += _cpu_us(op, runs) / 5
    return found[0], found[1], (cpu[0], cpu[1])


async def run_async(pair: Pair, runs: int, warmup: int) -> Found:
    found = []
    ops: tuple[AsyncOp, AsyncOp] = (pair.a, pair.b)  # type: ignore[assignment]
    for op in ops:
        for _ in range(warmup):
            await op()
        with _profiled() as profiler:
            for _ in range(runs):
                await op()
        found.append(_counts(profiler, runs))
    cpu = [0.0, 0.0]
    for _ in range(5):
        for i, op in enumerate(ops):
            cpu[i] += await _cpu_us_async(op, runs) / 5
    for close in pair.closers:
        await close()
    return found[0], found[1], (cpu[0], cpu[1])


def main(argv: list[str] | None = None) -> int:
    names = [*SYNC_PAIRS, *ASYNC_PAIRS]
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__)
    parser.add_argument("pairs", nargs="*", metavar="PAIR", help=", ".join(names))
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    unknown = [name for name in args.pairs if name not in names]
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)}")
    ctx = Context(quick=True)
    try:
        for name in args.pairs or names:
            if name in SYNC_PAIRS:
                a, b, cpu = run_sync(SYNC_PAIRS[name](ctx), args.runs, warmup=50)
            else:

                async def go(name: str = name) -> Found:
                    return await run_async(await ASYNC_PAIRS[name](ctx), args.runs, warmup=50)

                a, b, cpu = asyncio.run(go())
            print(report(name, a, b, args.top, cpu), flush=True)
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
