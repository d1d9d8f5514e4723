"""`python -m bench.holders_ab [PAIRS] [SIZE]`: pool observability on vs off, one connection.

`db.session()` + `SELECT 1` on a throwaway PostgreSQL, on ONE Database with pool_size=1, so
the same server backend serves both sides. Between batches the per-checkout work of
dbwire.observe is switched on and off: the pool tracker the pool calls at each checkout
(caller frame, waiting, wait_time) and checkin (use_time). The statement histogram is the
always-on statistics and stays. Prints the medians of wall time and of this thread's CPU
time, and their pairwise ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from sqlalchemy import text

from bench.context import Context
from dbwire import Database, DatabaseConfig
from dbwire.pool import hooks_of


def main(pairs: int = 200, size: int = 50) -> None:
    ctx = Context(quick=False)
    try:
        _measure(ctx, pairs, size)
    finally:
        ctx.close()


def tracked_database(ctx: Context) -> tuple[Database, Callable[[], None], Callable[[bool], None]]:
    """One Database on one server connection, its `session()` + `SELECT 1` operation, and a
    switch that turns the per-checkout work of dbwire.observe on and off: the tracker the
    pool tells of each checkout (caller frame, waiting, wait_time) and checkin (use_time)."""
    db = Database(
        DatabaseConfig(
            name="holders_ab", url=ctx.pg_url, pool_size=1, max_overflow=0, leak_warning_s=30
        )
    )
    statement = text("SELECT 1")

    def run() -> None:
        with db.session() as session:
            session.execute(statement).all()

    run()
    engine = db.engine
    tracker = db.observation.tracker(engine)
    assert tracker is not None
    hooks = hooks_of(engine.pool)
    state: list[bool | None] = [True]

    def switch(on: bool) -> None:
        if state[0] is on:
            return
        state[0] = on
        hooks.tracker = tracker if on else None

    return db, run, switch


def batches(
    run: Callable[[], None], switch: Callable[[bool], None], pairs: int, size: int
) -> tuple[dict[bool, list[float]], dict[bool, list[float]]]:
    """Per-op wall and CPU seconds of `pairs` batches on each side, in alternating order."""
    for _ in range(min(500, pairs * size)):
        run()
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for i in range(pairs):
        for on in (True, False) if i % 2 else (False, True):
            switch(on)
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(size):
                run()
            wall[on].append((time.perf_counter() - t0) / size)
            cpu[on].append((time.thread_time() - c0) / size)
    switch(True)
    return wall, cpu


def _measure(ctx: Context, pairs: int, size: int) -> None:
    db, run, switch = tracked_database(ctx)
    try:
        wall, cpu = batches(run, switch, pairs, size)
    finally:
        db.close()
    for label, data in (("wall", wall), ("client CPU", cpu)):
        ratios = [a / b for a, b in zip(data[True], data[False], strict=True)]
        print(
            f"{label}: on {statistics.median(data[True]) * 1e6:.1f} us/op, "
            f"off {statistics.median(data[False]) * 1e6:.1f} us/op, "
            f"pairwise ratio median {statistics.median(ratios):.3f} "
            f"({pairs} pairs of {size} ops)"
        )


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:3]))
