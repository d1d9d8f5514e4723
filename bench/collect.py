"""Collect benchmark: `store.collect()` against the tools a user would reach for by hand.

`python -m bench collect` (or `python -m bench.collect [--quick]`) from the repo root starts
throwaway PostgreSQL and MariaDB servers (tests/servers/), loads N rows x 5 columns
(id, amount, tag, created, ratio) and copies them into a DuckDB *file*, each tool in a
fresh Python process:

- PostgreSQL: dbwire (auto), dbwire method="adbc", DuckDB's postgres extension
  (`postgres_scan`) by hand, ADBC's PostgreSQL driver by hand, connectorx (Arrow stream);
- MariaDB: dbwire (auto), connectorx by hand (Arrow stream, and a whole Arrow table),
  DuckDB's mysql extension (offline copy shipped by `duckdb-extension-mysql`).

Rounds are interleaved and the order of the tools rotates each round, so a slow moment of
the machine hits every tool alike. Per tool: copy seconds (timed inside the child after the
modules it uses are imported, to the end of the CREATE TABLE: connect, login, transfer),
whole-process seconds (spawn to exit: interpreter, imports and all) and peak RSS (the
child's own VmHWM, which it reports itself: `ru_maxrss` would carry the parent's peak). A
peer counts only if its table has every row and the right sum of ids.

Budgets per source and size: dbwire's copy <= 1.0x the fastest peer's, its whole process
<= 1.2x the fastest peer's, and at 5M rows its peak RSS <= 1.1x the lowest-memory
correct peer's. `run(quick)` returns the rows for bench/__main__.py (bench/cases_collect.py).

`python -m bench.collect --in-process URL TABLE [ROUNDS]` times, in one process and
alternating, dbwire's collect of a PostgreSQL table against DuckDB's postgres extension by
hand (an attached catalog, and `postgres_scan()`): the copy alone, without a process start.
`python -m bench.collect --pair pg|my URL TABLE [ROUNDS [PEER]]` runs dbwire's child and one
peer's (default: DuckDB's extension for pg, connectorx for my) in alternating order (A B B A
...) against an existing table, for more rounds than the full run can afford.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.bytecode import compile_dbwire

REPO = Path(__file__).resolve().parent.parent
SIZES = (1_000_000, 5_000_000)
QUICK_SIZES = (20_000,)
# Five rounds: one copy's time moves by 10-20% with the machine, and a 5M-row copy's peak
# RSS by about 25 MB, so a median of three still followed a single slow round.
ROUNDS = 5
MEMORY_SIZE = 5_000_000  # the size whose peak RSS has a budget
BATCH = 100_000

PG_TOOLS = ("dbwire", "dbwire-adbc", "duckdb-postgres", "adbc", "connectorx")
MY_TOOLS = ("dbwire", "connectorx", "connectorx-table", "duckdb-mysql")
DBWIRE_TOOLS = ("dbwire", "dbwire-adbc")
# What each child imports before its copy is timed (the whole-process time includes them).
# duckdb too: every peer has it imported before its clock starts, and dbwire's store imports
# it on first use (~130 ms that belonged to the whole process, not the copy).
_DBWIRE_MODULES = (
    "duckdb",
    "dbwire",
    "dbwire.database",
    "dbwire.store.local",
    "dbwire.store.collect",
)
_CHILD_IMPORTS: dict[str, tuple[str, ...]] = {
    "dbwire": _DBWIRE_MODULES,
    "dbwire-adbc": (*_DBWIRE_MODULES, "adbc_driver_postgresql.dbapi"),
    "duckdb-postgres": ("duckdb",),
    "duckdb-mysql": ("duckdb",),
    "adbc": ("duckdb", "adbc_driver_postgresql.dbapi"),
    "connectorx": ("duckdb", "connectorx"),
    "connectorx-table": ("duckdb", "connectorx"),
}


# -- the child: one tool, one copy, in a fresh process ----------------------------------------
def _child(tool: str, source: str, url: str, table: str, out: str, ext_dir: str) -> None:
    """Copy `table` into DuckDB file `out` with `tool`; print {"copy_s": ...} as JSON."""
    import importlib

    modules = _CHILD_IMPORTS[tool]
    if tool == "dbwire" and source == "my":
        # dbwire's method from MariaDB is connectorx: imported before the clock, as the
        # connectorx peers have it (PyMySQL, which dbwire logs in with first, is not).
        modules = (*modules, "connectorx")
    for module in modules:
        importlib.import_module(module)
    started, cpu_started = time.perf_counter(), time.process_time()
    if tool.startswith("dbwire"):
        import dbwire

        db = dbwire.connect(url, name="bench")
        method = "adbc" if tool == "dbwire-adbc" else None
        with dbwire.get_duckdb_connection(out) as store:
            # dbwire's own default batches, as each raw peer keeps its driver's (connectorx's
            # peer asks for BATCH rows, which is dbwire's default for connectorx too).
            store.collect(db, table, table="t", method=method)
        db.close()
    else:
        import duckdb

        con = duckdb.connect(out, config={"extension_directory": ext_dir})
        _raw_copy(con, tool, source, url, table)
        con.close()
    copy_s = time.perf_counter() - started
    # CPU seconds of every thread of this process: steadier than copy_s on a busy machine.
    copy_cpu_s = time.process_time() - cpu_started
    # VmHWM is this process's own peak: Linux carries the parent's ru_maxrss into a child
    # across exec, so wait4's figure is at least the bench parent's size.
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"copy_s": copy_s, "copy_cpu_s": copy_cpu_s, "peak_mb": hwm_kb / 1024}))


def _pg_conninfo(url: str) -> str:
    """libpq's keyword/value form of a bench URL (DuckDB's postgres extension takes it)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    return (
        f"host={host} port={port} dbname={parts.path.lstrip('/')} user={user} password={password}"
    )


def _raw_copy(con: Any, tool: str, source: str, url: str, table: str) -> None:
    """What a user writes by hand for `tool`, into DuckDB connection `con`."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    dbname = parts.path.lstrip("/")
    if tool == "duckdb-postgres":
        con.execute("LOAD postgres_scanner")
        conninfo = _pg_conninfo(url)
        con.execute(
            "CREATE TABLE t AS SELECT * FROM postgres_scan($c, 'public', $t)",
            {"c": conninfo, "t": table},
        )
    elif tool == "duckdb-mysql":
        con.execute("LOAD mysql_scanner")
        con.execute(
            f"ATTACH 'host={host} port={port} user={user} passwd={password} db={dbname}' "
            "AS my (TYPE mysql, READ_ONLY)"
        )
        con.execute(f"CREATE TABLE t AS SELECT * FROM my.{dbname}.{table}")
    elif tool == "adbc":
        import adbc_driver_postgresql.dbapi as adbc

        with adbc.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table}")
            reader = cur.fetch_record_batch()  # DuckDB scans it by its name
            con.execute("CREATE TABLE t AS SELECT * FROM reader")
    elif tool in ("connectorx", "connectorx-table"):
        import connectorx as cx

        scheme = "postgresql" if source == "pg" else "mysql"
        cx_url = f"{scheme}://{parts.netloc}/{dbname}"
        if tool == "connectorx":
            reader = cx.read_sql(  # noqa: F841 - DuckDB scans it by name
                cx_url, f"SELECT * FROM {table}", return_type="arrow_stream", batch_size=BATCH
            )
            con.execute("CREATE TABLE t AS SELECT * FROM reader")
        else:
            arrow = cx.read_sql(cx_url, f"SELECT * FROM {table}", return_type="arrow")  # noqa: F841
            con.execute("CREATE TABLE t AS SELECT * FROM arrow")
    else:
        raise SystemExit(f"unknown tool {tool!r}")


# -- the parent: servers, data, rounds ------------------------------------------------------
def _spawn(tool: str, source: str, url: str, table: str, out: Path, ext_dir: str) -> dict[str, Any]:
    """One fresh process for one copy: copy seconds, whole seconds, peak RSS (MB)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), DBWIRE_DUCKDB_EXTENSION_DIRECTORY=ext_dir)
    env["DBWIRE_DUCKDB_OFFLINE"] = "1"
    args = [sys.executable, "-m", "bench.collect", "--child", tool, source, url, table]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*args, str(out), ext_dir],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # wait4 gives this child's own rusage: RUSAGE_CHILDREN would be the max over all of them.
    stdout_bytes, stderr_bytes = b"", b""
    assert proc.stdout is not None and proc.stderr is not None
    stdout_bytes = proc.stdout.read()
    stderr_bytes = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    whole = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = stderr_bytes.decode(errors="replace").strip().splitlines()[-3:]
        return {"ok": False, "error": " / ".join(tail)[-300:]}
    report = json.loads(stdout_bytes.decode().strip().splitlines()[-1])
    peak_mb = float(report.get("peak_mb", usage.ru_maxrss / 1024))
    return {
        "ok": True,
        "copy_s": float(report["copy_s"]),
        "copy_cpu_s": float(report["copy_cpu_s"]),
        "whole_s": whole,
        "whole_cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_mb": peak_mb,
    }


def _check(out: Path, rows: int) -> tuple[bool, list[str]]:
    """Every row there, the right sum of ids; the DuckDB column types, for the table."""
    import duckdb

    con = duckdb.connect(str(out), read_only=True)
    try:
        got = con.execute("SELECT count(*), sum(id) FROM t").fetchone()
        types = [
            str(r[0])
            for r in con.execute(
                "SELECT data_type FROM duckdb_columns() WHERE table_name = 't' "
                "ORDER BY column_index"
            ).fetchall()
        ]
    finally:
        con.close()
    return got == (rows, rows * (rows + 1) // 2), types


def _load_pg(url: str, table: str, rows: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}".encode())
        conn.execute(
            f"CREATE TABLE {table} AS SELECT g::bigint AS id, g * 2 AS amount, "
            "md5(g::text) AS tag, now() - g * interval '1 second' AS created, "
            f"g / 3.0::float8 AS ratio FROM generate_series(1, {rows}) g".encode()
        )
        conn.execute(f"VACUUM ANALYZE {table}".encode())


def _load_my(url: str, table: str, rows: int) -> None:
    import dbwire

    db = dbwire.connect(url, name="bench_my_load")
    try:
        db.execute_query(f"DROP TABLE IF EXISTS {table}")
        db.execute_query(
            f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, amount BIGINT, tag CHAR(32), "
            "created DATETIME, ratio DOUBLE)"
        )
        step = 1_000_000
        for low in range(1, rows + 1, step):
            high = min(rows, low + step - 1)
            db.execute_query(
                f"INSERT INTO {table} SELECT seq, seq * 2, md5(seq), "
                f"now() - interval seq second, seq / 3 FROM seq_{low}_to_{high}"
            )
        db.execute_query(f"ANALYZE TABLE {table}")
    finally:
        db.close()


def _extension_dir(tmp: Path) -> str:
    """Install the postgres and mysql extensions once, outside every timing."""
    from dbwire.store.local import get_duckdb_connection

    os.environ["DBWIRE_DUCKDB_EXTENSION_DIRECTORY"] = str(tmp / "ext")
    with get_duckdb_connection() as store:
        store.load_extension("postgres_scanner")
        store.load_extension("mysql_scanner")
        return str(store.settings.extension_directory)


def measure(
    sources: dict[str, tuple[str, tuple[str, ...], Callable[[str, str, int], None]]],
    sizes: tuple[int, ...],
    rounds: int,
    tmp: Path,
) -> dict[tuple[str, int], dict[str, list[dict[str, Any]]]]:
    """Per (source, size), per tool: the runs of every round."""
    ext_dir = _extension_dir(tmp)
    found: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {}
    for size in sizes:
        for source, (url, tools, load) in sources.items():
            table = f"bench_collect_{size}"
            load(url, table, size)
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            for r in range(rounds):
                order = tools[r % len(tools) :] + tools[: r % len(tools)]
                for tool in order:
                    out = tmp / f"{source}-{tool}-{size}-{r}.duckdb"
                    result = _spawn(tool, source, url, table, out, ext_dir)
                    if result["ok"]:
                        result["correct"], result["types"] = _check(out, size)
                    out.unlink(missing_ok=True)
                    Path(str(out) + ".wal").unlink(missing_ok=True)
                    runs[tool].append(result)
            found[(source, size)] = runs
    return found


# -- rows for the report -------------------------------------------------------------------
def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get("ok")]
    return statistics.median(values) if values else None


def _stats(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = sorted(r[key] for r in runs if r.get("ok"))
    return {
        "median_us": statistics.median(values) * 1e6,
        "p10_us": values[0] * 1e6,
        "p90_us": values[-1] * 1e6,
        "n": len(values),
    }


def _paired_ratio(mine: list[dict[str, Any]], peer: list[dict[str, Any]], key: str) -> float:
    """The median over rounds of dbwire's value over the peer's in the same round: the two
    ran a few seconds apart, so a slow minute of the machine moves both."""
    return statistics.median(a[key] / b[key] for a, b in zip(mine, peer, strict=True))


def _label(source: str) -> str:
    return "PostgreSQL" if source == "pg" else "MariaDB"


EXPLANATION = """\
The machine moves a copy's time by 10-20% between runs and rounds (1M-row PostgreSQL copies
by DuckDB's extension took 0.54-0.57 s one morning and 0.66-1.04 s one evening, on the same
code), so each ratio here is the median of per-round ratios, and five rounds still leave a
few percent of noise; `python -m bench.collect --pair` runs dbwire's child against one
peer's for more rounds (figures below: 2026-12-04 evening, the machine's own PostgreSQL
and MariaDB, 1M- and 5M-row tables). (1) Copy from PostgreSQL: dbwire's method is DuckDB's
postgres extension, so the copy itself is the peer's: 20 fresh processes each of raw
ATTACH + CREATE TABLE AS, the same with dbwire's DuckDB settings, the same inside dbwire's
store, and dbwire's collect took 0.759, 0.757, 0.743 and 0.761 s (medians); in one process
(`--in-process`) the three ways spread 0.72-1.05 s around one another. What dbwire adds is
fixed, about 25 ms: `--pair pg` read 1.041x at 1M rows (20 rounds: 0.688 s against 0.660 s)
and 1.033x at 5M (8 rounds). Traced statement by statement: DuckDB queries around the copy
(is the alias free, is the extension loaded: about 3 ms; the target's existence is asked
only in append mode since 2026-12-04), the secret that keeps the password out of SQL text
(1 ms), the ATTACH (5-7 ms), the store's settings, and in Python `dbwire.connect(url)`
(2 ms since ssl, subprocess and the IDNA codec stopped loading on this path; 14 ms before)
and one resolution of the login (two before 2026-12-04). Each is a check that keeps a
collect from writing over another catalog, leaking a password or logging in as the wrong
user. (2) Copy from MariaDB: dbwire streams connectorx's Arrow reader into one CREATE
TABLE AS, the peer's own shape, after one PyMySQL login that reads the DECIMAL columns'
declared types (connectorx widens them to decimal128(38, 10)) and makes a refused login
fail at once: 40 ms under cProfile, 34 ms of it importing PyMySQL, 28 of those the
cryptography package PyMySQL imports at load for RSA password exchange (`--pair my`: 1.080x
at 1M rows, 16 rounds). The login cannot wait until connectorx fails: connectorx retries a
refused login for 30 s and holds the GIL all that time (a 0.5 s sleep on another thread
returned after 30 s), so nothing can watch it from beside, and a wrong password would cost
30 s. (3) Whole process: the collect imports no SQLAlchemy, asyncio, psycopg or ssl
(tests/test_collect_imports.py); `import duckdb, dbwire, dbwire.database,
dbwire.store.local, dbwire.store.collect` takes 0.27-0.40 s against 0.10-0.17 s for `import
duckdb`, and -X importtime puts about 120 ms of that in dbwire.config: pydantic itself and
building DatabaseConfig's validator, which `dbwire.connect(url)` runs on the URL, pool and
login fields. At 1M rows, where a copy takes 0.5-1 s, that is the 1.2-1.4x of the
whole-process rows (`--pair`: 1.198x from PostgreSQL, 1.197x from MariaDB); at 5M it is
1.0-1.13x. (4) Peak RSS: pydantic and dbwire's modules weigh 17 MB (65.9 MB after the
imports against 48.9 MB for DuckDB alone), which is 1.06x of a 5M-row copy's 296 MB on its
own; `--pair pg` at 5M read 1.088x (325 MB against 296 MB), and DuckDB's own peak for the
same copy moves by more than those 17 MB between processes (264-307 MB, four raw
attached-catalog copies). (5) At 5M rows from MariaDB the lowest-memory peer is DuckDB's
mysql extension, 3.4-3.7x slower than connectorx; dbwire's peak is 1.04-1.09x raw
connectorx's stream, the method it uses (the whole Arrow table takes twice the memory).
"""


def rows_for(found: dict[tuple[str, int], dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """The harness rows (bench/cases_collect.py reads these keys)."""
    out: list[dict[str, Any]] = []
    for (source, size), runs in found.items():
        what = f"{size:,} rows x 5 cols from {_label(source)} into a DuckDB file"
        ok = {t: r for t, r in runs.items() if r and all(x.get("ok") and x["correct"] for x in r)}
        peers = {t: r for t, r in ok.items() if t not in DBWIRE_TOOLS}
        table = _side_by_side(source, size, runs, ok)
        if "dbwire" not in ok or not peers:
            failed = {t: r[0].get("error", "wrong rows") for t, r in runs.items() if t not in ok}
            out.append(
                {
                    "case": "collect",
                    "operation": f"`store.collect()` {what}",
                    "status": "error" if "dbwire" not in ok else "info",
                    "note": f"no comparison: failed tools {failed}",
                    "extra": {"markdown": table},
                }
            )
            continue
        mine = ok["dbwire"]
        for key, limit, text in (("copy_s", 1.0, "copy"), ("whole_s", 1.2, "whole process")):
            best = min(peers, key=lambda t, k=key: _median(peers[t], k) or float("inf"))
            row: dict[str, Any] = {
                "case": "collect",
                "operation": f"`store.collect()` {what}: {text}",
                "baseline_name": f"fastest peer: {best}",
                "dbwire": _stats(mine, key),
                "baseline": _stats(peers[best], key),
                "ratio": _paired_ratio(mine, peers[best], key),
                "budget": {"limit": limit, "text": f"<= {limit}x fastest peer", "metric": "ratio"},
                "note": "fresh process per run, rounds interleaved in rotated order; ratio: "
                "the median of the per-round ratios (dbwire's run over the peer's of the same "
                "round), as the other rows pair their samples",
            }
            if key == "copy_s":
                row["extra"] = {"markdown": table}
            row["explanation"] = EXPLANATION
            out.append(row)
        if size >= MEMORY_SIZE:
            lowest = min(peers, key=lambda t: _median(peers[t], "peak_mb") or float("inf"))
            mine_mb = _median(mine, "peak_mb") or 0.0
            low_mb = _median(peers[lowest], "peak_mb") or 1.0
            ratio = mine_mb / low_mb
            out.append(
                {
                    "case": "collect",
                    "operation": f"`store.collect()` {what}: peak RSS",
                    "baseline_name": f"lowest-memory correct peer: {lowest}",
                    "status": "PASS" if ratio <= 1.1 else "OVER",
                    "note": f"peak RSS dbwire {mine_mb:.0f} MB, {lowest} {low_mb:.0f} MB: "
                    f"{ratio:.2f}x (budget <= 1.1x)",
                    "explanation": EXPLANATION,
                }
            )
    return out


def _side_by_side(
    source: str,
    size: int,
    runs: dict[str, list[dict[str, Any]]],
    ok: dict[str, list[dict[str, Any]]],
) -> list[str]:
    """A markdown table: every tool with copy s, whole s, rows/s and peak MB."""
    lines = [
        f"**collect, {size:,} rows x 5 cols from {_label(source)}** (medians of "
        f"{max(len(r) for r in runs.values())} fresh processes per tool)",
        "",
        "| tool | copy s | whole process s | rows/s (copy) | peak MB | correct | column types |",
        "|---|--:|--:|--:|--:|---|---|",
    ]
    for tool, tool_runs in runs.items():
        if tool not in ok:
            error = next((r.get("error") for r in tool_runs if not r.get("ok")), "wrong rows")
            lines.append(f"| {tool} | — | — | — | — | no: {error} | |".replace("\n", " "))
            continue
        copy_s = _median(tool_runs, "copy_s") or 0.0
        whole_s = _median(tool_runs, "whole_s") or 0.0
        peak = _median(tool_runs, "peak_mb") or 0.0
        types = ", ".join(tool_runs[0].get("types", []))
        lines.append(
            f"| {tool} | {copy_s:.2f} | {whole_s:.2f} | {size / copy_s:,.0f} | {peak:.0f} | "
            f"yes | {types} |"
        )
    return lines


def run(quick: bool) -> list[dict[str, Any]]:
    """Start throwaway PostgreSQL and MariaDB servers, measure, return the harness rows."""
    sys.path.insert(0, str(REPO / "tests"))
    from servers import MariaDBServer, PostgresServer  # type: ignore[import-not-found]

    sizes, rounds = (QUICK_SIZES, 1) if quick else (SIZES, ROUNDS)
    compile_dbwire()  # each child reads dbwire's .pyc files, as an installed package has
    pg, my = PostgresServer(), MariaDBServer()
    with tempfile.TemporaryDirectory(prefix="dbwire-bench-collect-") as tmp:
        try:
            pg.start()
            my.start()
            sources = {
                "pg": (pg.url, PG_TOOLS, _load_pg),
                "my": (my.url, MY_TOOLS, _load_my),
            }
            found = measure(sources, sizes, rounds, Path(tmp))
        finally:
            pg.cleanup()
            my.cleanup()
    return rows_for(found)


def in_process(url: str, table: str, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of each way to copy PostgreSQL table `table` into a DuckDB file,
    in this process, alternating (each way warmed up once first)."""
    import duckdb

    import dbwire

    tmp = Path(tempfile.mkdtemp(prefix="dbwire-bench-inprocess-"))
    ext_dir = _extension_dir(tmp)

    def fresh(name: str) -> str:
        path = tmp / f"{name}.duckdb"
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
        return str(path)

    def by_dbwire() -> None:
        db = dbwire.connect(url, name="bench")
        with dbwire.get_duckdb_connection(fresh("dbwire")) as store:
            store.collect(db, table, table="t")
        db.close()

    def by_hand(how: str) -> None:
        con = duckdb.connect(fresh(how), config={"extension_directory": ext_dir})
        if how == "attach":
            con.execute("LOAD postgres_scanner")
            literal = _pg_conninfo(url).replace("'", "''")  # ATTACH takes no parameters
            con.execute(f"ATTACH '{literal}' AS pg (TYPE postgres, READ_ONLY)")
            con.execute(f"CREATE TABLE t AS SELECT * FROM pg.public.{table}")
        else:
            _raw_copy(con, "duckdb-postgres", "pg", url, table)  # the full run's own peer
        con.close()

    ways: dict[str, Callable[[], None]] = {
        "dbwire": by_dbwire,
        "attach by hand": lambda: by_hand("attach"),
        "postgres_scan() by hand": lambda: by_hand("scan"),
    }
    found: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():
        way()
    for _ in range(rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            found[name].append(time.perf_counter() - started)
    return found


def paired_children(
    source: str, url: str, table: str, rounds: int, peer: str
) -> dict[str, list[dict[str, Any]]]:
    """dbwire's child and `peer`'s, `rounds` times each in A B B A order, on `table`."""
    tmp = Path(tempfile.mkdtemp(prefix="dbwire-bench-pair-"))
    ext_dir = _extension_dir(tmp)
    compile_dbwire()
    found: dict[str, list[dict[str, Any]]] = {"dbwire": [], peer: []}
    for r in range(rounds):
        for tool in ("dbwire", peer) if r % 2 == 0 else (peer, "dbwire"):
            out = tmp / f"{tool}-{r}.duckdb"
            result = _spawn(tool, source, url, table, out, ext_dir)
            if not result["ok"]:
                raise SystemExit(f"{tool}: {result['error']}")
            out.unlink(missing_ok=True)
            Path(f"{out}.wal").unlink(missing_ok=True)
            found[tool].append(result)
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child(*argv[1:7])
        return 0
    if argv[:1] == ["--pair"]:
        source, url, table = argv[1:4]
        rounds = int(argv[4]) if len(argv) > 4 else 10
        peer = argv[5] if len(argv) > 5 else ("duckdb-postgres" if source == "pg" else "connectorx")
        pairs = paired_children(source, url, table, rounds, peer)
        for key in ("copy_s", "whole_s", "peak_mb"):
            mine, theirs = (statistics.median(r[key] for r in pairs[t]) for t in ("dbwire", peer))
            ratio = _paired_ratio(pairs["dbwire"], pairs[peer], key)
            print(f"{key}: dbwire {mine:.3f}, {peer} {theirs:.3f}, per-round ratio {ratio:.3f}x")
        return 0
    if argv[:1] == ["--in-process"]:
        url, table = argv[1], argv[2]
        found = in_process(url, table, int(argv[3]) if len(argv) > 3 else 6)
        for name, seconds in found.items():
            shown = ", ".join(f"{s:.3f}" for s in seconds)
            paired = statistics.median(a / b for a, b in zip(found["dbwire"], seconds, strict=True))
            print(
                f"{name}: median {statistics.median(seconds):.3f} s ({shown}); "
                f"dbwire over it, per round: {paired:.3f}x"
            )
        return 0
    for row in run("--quick" in argv):
        print(row["operation"], row.get("status", ""), row.get("note", ""))
        for line in row.get("extra", {}).get("markdown", []):
            print("   ", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
