"""RESULTS.md and results.json: the table, the budget, the machine, and the OVER rows' causes."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.context import REPO
from bench.explanations import EXPLANATIONS
from bench.harness import Row, format_ratio, format_time, row_from_json

LIBRARIES = (
    "dbwire",
    "SQLAlchemy",
    "psycopg",
    "asyncpg",
    "PyMySQL",
    "aiomysql",
    "aiosqlite",
    "duckdb",
    "duckdb_engine",
    "greenlet",
    "pydantic",
)

BUDGET_LINES = (
    (
        "`db.connect()`, `db.session()`, `db.async_session()`",
        "<= 1.05x SQLAlchemy with the same pool and `pool_pre_ping=False` (the layer's own "
        "cost); the comparison with dbwire's own settings is a second row, for information",
    ),
    (
        '`db.execute_query("SELECT 1")`, `db.async_execute_query("SELECT 1")`',
        "<= 1.5x the raw driver's `SELECT 1` on an open connection: PostgreSQL (psycopg, "
        "asyncpg), MariaDB (PyMySQL, aiomysql), SQLite (sqlite3, aiosqlite), DuckDB",
    ),
    (
        "observability on (stats, slow-query log, query log, and what else the build has)",
        "<= 1.10x off",
    ),
    ("`import dbwire`", "<= 50 ms over `import sqlalchemy`"),
    ("checkout with pre-ping on", "<= 1.05x a checkout with pre-ping off"),
    ("`manager.health_check()` of 20 databases", "<= 1.5x the slowest single check"),
    (
        "`store.collect()` 1M and 5M rows (fresh process per tool)",
        "copy <= 1.0x the fastest peer, whole process <= 1.2x, 5M peak RSS <= 1.1x the "
        "lowest-memory correct peer",
    ),
)


def machine(server_version: str | None, mysql_version: str | None = None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "postgresql": server_version,
        "mariadb": mysql_version,
        "git": _git_head(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git_head() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    head = out.stdout.strip()
    return f"{head} plus uncommitted changes in src/" if head and dirty else head or None


def render(out: Path) -> Path:
    """Write RESULTS.md again from OUT/results.json (new explanations, no new measurements)."""
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    md_path = out / "RESULTS.md"
    md_path.write_text(
        markdown(
            [row_from_json(row) for row in document["rows"]],
            command=document["command"],
            when=dt.datetime.fromisoformat(document["date"]),
            info=document["machine"],
            quick=document["quick"],
            samples=document["samples_per_side"],
            seconds=document["seconds"],
        ),
        encoding="utf-8",
    )
    return md_path


def write(
    out: Path,
    rows: list[Row],
    *,
    command: str,
    quick: bool,
    samples: int,
    server_version: str | None,
    seconds: float,
    mysql_version: str | None = None,
    load_at_start: list[float] | None = None,
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    when = dt.datetime.now(dt.UTC).replace(microsecond=0)
    info = machine(server_version, mysql_version)
    if load_at_start is not None:
        info["load_at_start"] = load_at_start
    document = {
        "command": command,
        "date": when.isoformat(),
        "quick": quick,
        "samples_per_side": samples,
        "seconds": round(seconds, 1),
        "machine": info,
        "rows": [row.as_json() for row in rows],
    }
    json_path = out / "results.json"
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    md_path = out / "RESULTS.md"
    md_path.write_text(
        markdown(
            rows,
            command=command,
            when=when,
            info=info,
            quick=quick,
            samples=samples,
            seconds=seconds,
        ),
        encoding="utf-8",
    )
    return md_path, json_path


def markdown(
    rows: list[Row],
    *,
    command: str,
    when: dt.datetime,
    info: dict[str, Any],
    quick: bool,
    samples: int,
    seconds: float,
) -> str:
    lines = [
        "# dbwire benchmarks",
        "",
        f"Made by `{command}` on {when:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s"
        + (" (quick mode: the numbers only show that each case runs)." if quick else "."),
        "Run it again from the repository root with `.venv/bin/python -m bench` "
        "(or name cases: `python -m bench session execute_query`; `--list` shows them).",
        "",
        "## Budget",
        "",
        "Checked by every run, which prints PASS or OVER per row and never fails the test pass.",
        "",
        "This run: " + _summary(rows),
        "",
        "| What | Budget |",
        "|---|---|",
        *(f"| {what} | {limit} |" for what, limit in BUDGET_LINES),
        "",
        "## Machine",
        "",
        f"- {info['cpus']} CPUs ({info['cpu_model'] or 'unknown model'}), {info['platform']}",
        f"- Python {info['python']}; "
        + ", ".join(f"{name} {version}" for name, version in info["libraries"].items() if version),
        f"- PostgreSQL {info['postgresql'] or '(not started)'} and MariaDB "
        f"{info.get('mariadb') or '(not started)'}, throwaway servers on loopback "
        "(tests/servers/); dbwire at commit " + (info["git"] or "unknown"),
        *_load_average_lines(info),
        *_load_lines(info),
        "",
        "## Results",
        "",
        f"Median time per operation over {samples} samples per side after a warm-up, dbwire and "
        "its baseline interleaved (A B B A ...) in one process; spread is p10-p90. *ratio* is "
        "the median of the per-pair ratios (each dbwire sample over the baseline sample taken "
        "next to it), which cancels load that comes and goes, so it can differ from the ratio "
        "of the two medians when other processes load the machine. *x floor* is dbwire (or the "
        "baseline, on floor rows) over the raw driver floor: psycopg for sync PostgreSQL rows, "
        "the backend's own async driver for async rows (asyncpg, aiomysql, aiosqlite), "
        "sqlite3 for SQLite rows; on the execute_query and async_execute_query rows the "
        "baseline *is* the raw driver's `SELECT 1` on an open connection, timed next to "
        "dbwire, so ratio and x floor are the same paired number.",
        "",
        "*calls/op* is the Python function calls per operation of dbwire and of the baseline "
        "(cProfile, a few dozen runs after the timing): a count does not move with the "
        "machine's load, so it shows how much work dbwire adds where a time cannot; "
        "`python -m bench.calls` lists the functions behind the difference.",
        "",
        "| Case | dbwire operation | Baseline | dbwire median | baseline median | ratio | "
        "x floor | spread (dbwire; baseline) | calls/op (dbwire; baseline) | Budget | Result |",
        "|---|---|---|--:|--:|--:|--:|---|--:|---|---|",
    ]
    for row in rows:
        lines.append(_table_row(row))
    notes = [row for row in rows if row.note and row.status not in ("OVER", "pending", "error")]
    if notes:
        lines += ["", "Notes:", ""]
        for row in notes:
            what = row.operation if row.operation != "—" else row.baseline_name
            lines.append(f"- **{row.case}**, {what}: {row.note}")
    side_by_side = [row for row in rows if row.extra.get("markdown")]
    if side_by_side:  # tables a case made itself (collect: rows/s and peak MB per tool)
        lines += ["", "## Side by side", ""]
        for row in side_by_side:
            lines += [*row.extra["markdown"], ""]
    lines += ["", "## OVER rows: cause and fix", ""]
    over_cases = list(dict.fromkeys(row.case for row in rows if row.status in ("OVER", "error")))
    if not over_cases:
        lines.append("None: every budget row is PASS.")
    written: dict[str, str] = {}  # explanation -> the case under which it was written out
    for case in over_cases:
        case_rows = [row for row in rows if row.case == case and row.status in ("OVER", "error")]
        lines += [f"### {case}", ""]
        for row in case_rows:
            value = row.budget_value()
            shown = "" if value is None else f" is {_budget_shown(row, value)}"
            lines.append(
                f"- {row.operation}: {row.status}{shown}"
                + (f" (budget {row.budget.text})" if row.budget else "")
                + (f"; {row.note}" if row.note else "")
            )
        lines.append("")
        explanation = next((row.explanation for row in case_rows if row.explanation), None)
        explanation = explanation or EXPLANATIONS.get(case)
        if any(row.status == "error" for row in case_rows):
            lines += ["The case failed; its traceback is in the run's output.", ""]
        if explanation and explanation in written:
            lines += [f"The same cause as **{written[explanation]}** above.", ""]
        elif explanation:
            written[explanation] = case
            lines += [explanation.strip(), ""]
        elif not any(row.status == "error" for row in case_rows):
            lines += [
                f"No explanation written yet: profile it with `python -m bench {case} --profile`.",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def _load_average_lines(info: dict[str, Any]) -> list[str]:
    """The load averages, at the start where recorded (the end's count the bench's own
    last cases: the collect rows' DuckDB copies keep every CPU busy)."""
    cpus = info.get("cpus")
    end = ", ".join(f"{x:.2f}" for x in info["load_average"])
    start = info.get("load_at_start")
    if start is None:
        return [f"- Load average at the end of the run: {end} (1, 5, 15 min) on {cpus} CPUs"]
    begun = ", ".join(f"{x:.2f}" for x in start)
    return [
        f"- Load average (1, 5, 15 min) on {cpus} CPUs: {begun} when the run began; {end} at "
        "its end, which counts the bench's own last cases"
    ]


def _load_lines(info: dict[str, Any]) -> list[str]:
    """Say so when other processes loaded the machine before the run began (the end's
    load average counts the bench itself; runs made before the start was recorded are
    judged by it)."""
    load = info.get("load_at_start") or info.get("load_average") or [0.0]
    cpus = info.get("cpus") or 1
    if load[0] < 0.5 * cpus:
        return []
    return [
        f"- **Made under load**: other processes kept the {cpus} CPUs busy (load "
        f"{load[0]:.2f}). The paired ratios cancel most of it (each pair's two samples are "
        "taken next to each other); the absolute medians and spreads are inflated by it."
    ]


def _summary(rows: list[Row]) -> str:
    judged = [row for row in rows if row.status in ("PASS", "OVER")]
    over = [row for row in judged if row.status == "OVER"]
    pending_rows = [row for row in rows if row.status == "pending"]
    text = f"{len(judged) - len(over)} of {len(judged)} budget rows PASS"
    if over:
        text += "; OVER: " + ", ".join(f"{row.case} ({row.operation})" for row in over)
    if pending_rows:
        text += "; pending: " + ", ".join(row.case for row in pending_rows)
    return text + "."


def _table_row(row: Row) -> str:
    spread = "; ".join(
        f"{format_time(stats.p10)}-{format_time(stats.p90)}"
        for stats in (row.dbwire, row.baseline)
        if stats is not None
    )
    budget = row.budget.text if row.budget else ""
    if row.budget is not None and (value := row.budget_value()) is not None:
        budget = f"{budget} (is {_budget_shown(row, value)})"
    result = {"PASS": "PASS", "OVER": "**OVER**", "info": "", "pending": "pending"}.get(
        row.status, f"**{row.status}**"
    )
    cells = [
        row.case,
        row.operation,
        row.baseline_name,
        format_time(row.dbwire.median) if row.dbwire else "—",
        format_time(row.baseline.median) if row.baseline else "—",
        format_ratio(row.ratio),
        format_ratio(row.floor_ratio),
        spread or "—",
        _calls(row),
        budget or "—",
        result if row.status != "pending" else f"pending: {row.note.removeprefix('pending: ')}",
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _calls(row: Row) -> str:
    calls = row.extra.get("calls_per_op")
    if not calls:
        return "—"
    return f"{calls[0]:,.0f}; {calls[1]:,.0f}"


def _budget_shown(row: Row, value: float) -> str:
    if row.budget is not None and row.budget.metric == "delta_ms":
        return f"{value:+.1f} ms"
    return format_ratio(value)


def console_line(row: Row) -> str:
    status = {"info": "", "pending": "PENDING"}.get(row.status, row.status)
    parts = [f"{row.case:<13}", f"{status:<7}", row.operation]
    numbers = []
    if row.dbwire is not None:
        numbers.append(f"dbwire {format_time(row.dbwire.median)}")
    if row.baseline is not None:
        numbers.append(f"baseline {format_time(row.baseline.median)}")
    if row.ratio is not None:
        numbers.append(f"ratio {format_ratio(row.ratio)}")
    if row.floor_ratio is not None:
        numbers.append(f"floor {format_ratio(row.floor_ratio)}")
    if row.extra.get("calls_per_op"):
        numbers.append(f"calls/op {_calls(row)}")
    if row.budget is not None and (value := row.budget_value()) is not None:
        numbers.append(f"budget {row.budget.text} (is {_budget_shown(row, value)})")
    line = "  ".join(parts)
    if numbers:
        line += "\n" + " " * 23 + ", ".join(numbers)
    if row.note and row.status in ("pending", "error"):
        line += "\n" + " " * 23 + row.note
    return line


def print_line(row: Row) -> None:
    print(console_line(row), flush=True)
    sys.stdout.flush()
