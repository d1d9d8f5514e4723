"""Collect benchmark: store.collect() from PostgreSQL against the raw paths it competes with.

`python -m bench.collect [--quick]` from the repo root starts a throwaway PostgreSQL server
(tests/servers/), loads 1M rows x 5 columns with generate_series, and times:

- raw: DuckDB's postgres extension, `CREATE TABLE AS SELECT * FROM postgres_scan(...)`,
  on a fresh in-memory DuckDB (LOAD included), as a user would write it by hand; for a
  query, `postgres_query()` on an attached database (a query cannot use postgres_scan);
- dbwire: `get_duckdb_connection()` + `store.collect(db, table)` (and a query), fresh store
  each time, attach and secret included;
- row by row: psycopg rows into DuckDB with `executemany`, on a 10k-row sample,
  extrapolated to the full table.

Budgets: dbwire within 1.25x of raw, and at least 10x faster than row by row.
`run(quick)` returns the rows for bench/__main__.py (see bench/cases_collect.py).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROWS = 1_000_000
QUICK_ROWS = 100_000
SAMPLE = 10_000
QUICK_SAMPLE = 1_000


def _timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def _stats(times: list[float]) -> dict[str, Any]:
    ordered = sorted(times)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p10_us": ordered[0] * 1e6,
        "p90_us": ordered[-1] * 1e6,
        "n": len(ordered),
    }


def measure(pg_url: str, rows: int, sample: int, repeat: int) -> dict[str, Any]:
    """Seconds per path for `rows` rows in table bench_collect of the server at pg_url."""
    import duckdb
    import psycopg

    import dbwire
    from dbwire.store.local import get_duckdb_connection

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_collect")
        conn.execute(
            "CREATE TABLE bench_collect AS SELECT g AS id, g * 2 AS amount, md5(g::text) AS tag, "
            "now() - g * interval '1 second' AS created, g / 3.0::float8 AS ratio "
            f"FROM generate_series(1, {rows}) g"
        )
        conn.execute("VACUUM ANALYZE bench_collect")
        sample_rows = conn.execute(f"SELECT * FROM bench_collect LIMIT {sample}").fetchall()

    db = dbwire.connect(pg_url, name="bench_pg")
    with get_duckdb_connection() as store:  # installs the extension once, outside the timing
        store.load_extension("postgres_scanner")
        extension_dir = store.settings.extension_directory
    params = db.connect_params()
    conninfo = (
        f"host={params.host} port={params.port} dbname={params.database} user={params.user} "
        f"password={params.password_value()}"
    )

    def raw() -> None:
        con = duckdb.connect(config={"extension_directory": extension_dir})
        con.execute("LOAD postgres_scanner")
        con.execute(
            "CREATE TABLE t AS SELECT * FROM postgres_scan($c, 'public', 'bench_collect')",
            {"c": conninfo},
        )
        assert con.execute("SELECT count(*) FROM t").fetchone() == (rows,)
        con.close()

    def raw_query() -> None:
        # A query cannot use postgres_scan's parallel ctid ranges: DuckDB's own fastest path
        # for a query is postgres_query() on an attached database.
        con = duckdb.connect(config={"extension_directory": extension_dir})
        con.execute("LOAD postgres_scanner")
        con.execute(f"ATTACH '{conninfo}' AS pg (TYPE postgres, READ_ONLY)")
        con.execute(
            "CREATE TABLE t AS SELECT * FROM postgres_query('pg', 'SELECT * FROM bench_collect')"
        )
        assert con.execute("SELECT count(*) FROM t").fetchone() == (rows,)
        con.close()

    def collect_table() -> None:
        with get_duckdb_connection() as s:
            assert s.collect(db, "bench_collect", table="t") == rows

    def collect_query() -> None:
        with get_duckdb_connection() as s:
            assert s.collect(db, "SELECT * FROM bench_collect", table="t") == rows

    def row_by_row() -> None:
        con = duckdb.connect()
        con.execute(
            "CREATE TABLE t (id INT, amount INT, tag VARCHAR, created TIMESTAMPTZ, ratio DOUBLE)"
        )
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", sample_rows)
        con.close()

    try:
        # Interleaved, so a slow moment of the machine hits every path alike.
        times: dict[str, list[float]] = {"raw": [], "raw_query": [], "table": [], "query": []}
        for _ in range(repeat):
            times["raw"] += _timed(raw, 1)
            times["table"] += _timed(collect_table, 1)
            times["raw_query"] += _timed(raw_query, 1)
            times["query"] += _timed(collect_query, 1)
        per_row = min(_timed(row_by_row, 1)) / sample
        times["row_by_row"] = [per_row * rows]
    finally:
        db.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS bench_collect")
    return times


def rows_for(times: dict[str, list[float]], rows: int, sample: int) -> list[dict[str, Any]]:
    """The harness rows (bench/cases_collect.py reads these keys)."""
    slow = _stats(times["row_by_row"])
    found = []
    for key, what, raw_key, raw_name in (
        ("table", "a table", "raw", "postgres_scan"),
        ("query", "a query", "raw_query", "postgres_query"),
    ):
        found.append(
            {
                "case": "collect",
                "operation": f"`store.collect(db, {what})` {rows:,} rows x 5 cols from PostgreSQL",
                "baseline_name": f"raw DuckDB {raw_name} CTAS",
                "dbwire": _stats(times[key]),
                "baseline": _stats(times[raw_key]),
                "budget": {"limit": 1.25, "text": f"<= 1.25x raw {raw_name}", "metric": "ratio"},
                "note": "fresh store per run, extension LOAD + secret + ATTACH included",
            }
        )
    best = min(statistics.median(times["table"]), statistics.median(times["query"]))
    found.append(
        {
            "case": "collect",
            "operation": f"`store.collect(db, ...)` vs row by row, {rows:,} rows",
            "baseline_name": f"executemany row by row ({sample:,}-row sample, extrapolated)",
            "dbwire": _stats([best]),
            "baseline": slow,
            "budget": {"limit": 0.1, "text": ">= 10x faster than row by row", "metric": "ratio"},
            "note": "",
        }
    )
    return found


def run(quick: bool) -> list[dict[str, Any]]:
    """Start a throwaway PostgreSQL server, measure, and return the harness rows."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import PostgresServer  # type: ignore[import-not-found]

    rows, sample, repeat = (QUICK_ROWS, QUICK_SAMPLE, 1) if quick else (ROWS, SAMPLE, 5)
    server = PostgresServer()
    try:
        server.start()
        times = measure(server.url, rows, sample, repeat)
    finally:
        server.cleanup()
    return rows_for(times, rows, sample)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    results = run(quick)
    for row in results:
        dbwire_s = row["dbwire"]["median_us"] / 1e6
        base_s = row["baseline"]["median_us"] / 1e6
        ratio = dbwire_s / base_s
        verdict = "PASS" if ratio <= row["budget"]["limit"] else "OVER"
        print(
            f"{row['operation']}\n    dbwire {dbwire_s:.3f}s  vs  {row['baseline_name']} "
            f"{base_s:.3f}s  ratio {ratio:.3f} (budget {row['budget']['text']}) {verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
