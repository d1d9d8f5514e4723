"""`python -m bench [CASE ...] [--quick] [--out DIR]`: run the cases, write RESULTS.md + JSON."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.context import Context
from bench.harness import Row

Case = Callable[[Context], list[Row]]


def _cases() -> dict[str, tuple[Case, str]]:
    from bench import (
        cases_async,
        cases_collect,
        cases_observe,
        cases_pool,
        cases_query,
        cases_sqlite,
        cases_startup,
    )
    from bench import cases_sync as sync

    return {
        "floor": (sync.case_floor, "raw psycopg SELECT 1 on one open connection"),
        "connect": (sync.case_connect, "db.connect() + SELECT 1 vs engine.connect()"),
        "session": (sync.case_session, "db.session() vs sessionmaker(engine).begin()"),
        "execute_query": (
            cases_query.case_execute_query,
            "db.execute_query() vs the raw driver, every backend; and vs Core",
        ),
        "async_execute_query": (
            cases_query.case_async_execute_query,
            "db.async_execute_query() vs the raw async driver, every backend",
        ),
        "pre_ping": (sync.case_pre_ping, "checkout with pre-ping on vs off"),
        "async": (
            cases_async.case_async,
            "db.async_session() vs AsyncSession; raw asyncpg, aiomysql, aiosqlite",
        ),
        "pool_min_size": (
            cases_pool.case_pool_min_size,
            "first 20 sessions after setup, pool_min_size=5 vs 0",
        ),
        "observe": (cases_observe.case_observe, "observability on vs off"),
        "holders": (cases_observe.case_holders, "pool holder tracking and timings on vs off"),
        "health": (cases_observe.case_health, "manager.health_check() of 20 databases"),
        "threads": (sync.case_threads, "8-thread db.session() throughput, pool of 8"),
        "config": (cases_startup.case_config, "load_config() of 500 databases"),
        "import": (cases_startup.case_import, "import dbwire vs import sqlalchemy"),
        "sqlite": (cases_sqlite.case_sqlite, "SQLite floor, session, execute_query"),
        "collect": (cases_collect.case_collect, "LocalStore collect (bench/collect.py)"),
    }


def _parser(names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="dbwire against the raw libraries beneath it; writes RESULTS.md and "
        "results.json.",
    )
    parser.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="tiny iteration counts (smoke)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="directory for RESULTS.md and results.json (default: bench/)",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only write RESULTS.md again from OUT/results.json (after editing explanations)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the cases and print the top functions"
    )
    parser.epilog = "cases: " + ", ".join(names)
    return parser


def main(argv: list[str] | None = None) -> int:
    cases = _cases()
    args = _parser(list(cases)).parse_args(argv)
    if args.list:
        for name, (_, description) in cases.items():
            print(f"{name:<14} {description}")
        return 0
    if args.render:
        from bench import report

        print(f"wrote {report.render(args.out)}")
        return 0
    unknown = [name for name in args.cases if name not in cases]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(cases)}", file=sys.stderr)
        return 2
    selected = args.cases or list(cases)
    command = "python -m bench" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.monotonic()
    # Before any case: at the end the load average counts the bench's own last cases.
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    ctx = Context(quick=args.quick)
    rows: list[Row] = []
    profiler = cProfile.Profile() if args.profile else None
    server_version: str | None = None
    mysql_version: str | None = None
    try:
        for name in selected:
            case, _ = cases[name]
            case_started = time.monotonic()
            try:
                if profiler is not None:
                    profiler.enable()
                try:
                    found = case(ctx)
                finally:
                    if profiler is not None:
                        profiler.disable()
            except Exception as exc:
                traceback.print_exc()
                found = [Row(case=name, operation=cases[name][1], status="error", note=repr(exc))]
            for row in found:
                _print(row)
            print(f"{name}: {time.monotonic() - case_started:.0f} s", flush=True)
            rows.extend(found)
        server_version = ctx.server_version()
        mysql_version = ctx.mysql_version()
    finally:
        ctx.close()
    from bench import report

    md, js = report.write(
        args.out,
        rows,
        command=command,
        quick=args.quick,
        samples=ctx.iterations.samples,
        server_version=server_version,
        mysql_version=mysql_version,
        seconds=time.monotonic() - started,
        load_at_start=load_at_start,
    )
    print(f"wrote {md} and {js} in {time.monotonic() - started:.0f} s")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    over = dict.fromkeys(row.case for row in rows if row.status == "OVER")
    if over:
        print("OVER (see RESULTS.md for the cause and fix): " + ", ".join(over))
    return 1 if any(row.status == "error" for row in rows) else 0


def _print(row: Row) -> None:
    from bench.report import print_line

    print_line(row)


if __name__ == "__main__":
    sys.exit(main())
