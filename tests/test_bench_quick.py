"""`python -m bench --quick` runs every benchmark case, so the benchmarks never rot.

Only that each case runs is checked here, never how fast: PASS and OVER are both fine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

CASES = {
    "floor",
    "connect",
    "session",
    "execute_query",
    "async_execute_query",
    "pre_ping",
    "async",
    "pool_min_size",
    "observe",
    "health",
    "threads",
    "config",
    "import",
    "sqlite",
    "collect",
}
# Cases that may report "pending" (a setting they measure is not there yet).
MAY_BE_PENDING: set[str] = {"pool_min_size"}
BACKENDS = {"postgresql", "mariadb", "sqlite", "duckdb"}
# Budgeted async execute_query rows: every backend with an async driver of its own.
ASYNC_BUDGETED = {
    ("postgresql", "asyncpg"),
    ("mariadb", "aiomysql"),
    ("sqlite", "aiosqlite"),
    ("duckdb", "duckdb in a thread"),
}


@pytest.mark.postgres
@pytest.mark.mysql
def test_quick_bench_makes_a_row_for_every_case(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    rows = results["rows"]
    assert {row["case"] for row in rows} >= CASES
    assert not [row for row in rows if row["status"] == "error"], run.stdout
    pending = {row["case"] for row in rows if row["status"] == "pending"}
    assert pending <= MAY_BE_PENDING, f"pending: {pending}\n{run.stdout}"
    for row in rows:
        if row["budget"] is not None and row["status"] != "pending":
            assert row["status"] in ("PASS", "OVER"), row
    _check_new_rows(rows)
    markdown = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert markdown.startswith("# dbwire benchmarks")
    assert "python -m bench --quick --out" in markdown
    assert "<= 1.5x the raw driver" in markdown
    assert "`pool_pre_ping=False`" in markdown


def _check_new_rows(rows: list[dict[str, Any]]) -> None:
    """The rows the budget is about are all there, with their baselines and budgets."""

    def extra(row: dict[str, Any], key: str) -> Any:
        return (row.get("extra") or {}).get(key)

    def budget_limit(row: dict[str, Any]) -> float | None:
        return None if row["budget"] is None else float(row["budget"]["limit"])

    # execute_query: every backend against its raw driver, budget 1.5x the floor.
    sync_query = [r for r in rows if r["case"] == "execute_query" and extra(r, "baseline") is None]
    assert {extra(r, "backend") for r in sync_query} == BACKENDS, sync_query
    assert all(budget_limit(r) == 1.5 and r["floor_ratio_paired"] for r in sync_query)
    async_query = [r for r in rows if r["case"] == "async_execute_query"]
    assert {extra(r, "backend") for r in async_query} == BACKENDS, async_query
    budgeted = {(extra(r, "backend"), extra(r, "driver")) for r in async_query if r["budget"]}
    assert budgeted == ASYNC_BUDGETED, budgeted
    # connect, session, async_session: the no-ping baseline is budgeted at 1.05x; the same
    # settings row is there for information.
    for case in ("connect", "session", "async"):
        fair = [r for r in rows if r["case"] == case and extra(r, "baseline") == "no_ping"]
        assert fair and all(budget_limit(r) == 1.05 for r in fair), (case, fair)
        servers = [r for r in fair if extra(r, "backend") in ("postgresql", "mariadb")]
        assert servers and all("pool_pre_ping=False" in r["baseline_name"] for r in servers)
        assert any(extra(r, "baseline") == "same_settings" for r in rows if r["case"] == case)
    floors = {extra(r, "driver") for r in rows if r["case"] == "async" and r["operation"] == "—"}
    assert floors == {"asyncpg", "aiomysql", "aiosqlite"}, floors
    # pool_min_size: measured when the config field exists, "not available" otherwise.
    min_size = [r for r in rows if r["case"] == "pool_min_size"]
    assert min_size
    for row in min_size:
        if row["status"] == "pending":
            assert "not available" in row["note"]
        else:
            assert row["dbwire"] and row["baseline"], row
    # observability: on includes at least stats, slow-query log and query log.
    (observe,) = [r for r in rows if r["case"] == "observe"]
    assert {"log_queries", "slow_query_ms"} <= set(extra(observe, "on")), observe
    assert budget_limit(observe) == 1.10
    (imported,) = [r for r in rows if r["case"] == "import"]
    assert imported["budget"]["metric"] == "delta_ms" and budget_limit(imported) == 50.0


# -- the report, without servers ---------------------------------------------------------
def _rows() -> list[Any]:
    from bench.harness import Budget, Comparison, compared

    fast = Comparison.of([100.0, 110.0, 90.0], [100.0, 100.0, 100.0], calls=(290.0, 260.0))
    slow = Comparison.of([200.0, 210.0, 190.0], [100.0, 100.0, 100.0])
    budget = Budget(1.5, "<= 1.5x the raw driver", metric="floor")
    return [
        compared(
            "execute_query",
            "fast",
            "raw",
            fast,
            floor=fast.b,
            budget=budget,
            paired_floor_ratio=fast.ratio,
        ),
        compared(
            "execute_query",
            "slow",
            "raw",
            slow,
            floor=slow.b,
            budget=budget,
            paired_floor_ratio=slow.ratio,
        ),
        compared(
            "nowhere",
            "slow, unexplained",
            "raw",
            slow,
            floor=slow.b,
            budget=budget,
            paired_floor_ratio=slow.ratio,
        ),
    ]


def test_rows_are_judged_against_the_paired_floor_and_carry_call_counts() -> None:
    fast, slow, _ = _rows()
    assert (fast.status, slow.status) == ("PASS", "OVER")
    assert slow.budget_value() == 2.0
    assert fast.extra["calls_per_op"] == [290.0, 260.0]
    assert "calls_per_op" not in slow.extra


def test_over_rows_show_their_explanation_or_say_none_was_written() -> None:
    import datetime as dt

    from bench import report
    from bench.explanations import EXPLANATIONS

    info = report.machine(None)
    info["load_average"] = [9.5, 9.0, 8.0]
    info["cpus"] = 2
    text = report.markdown(
        _rows(),
        command="python -m bench",
        when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        info=info,
        quick=False,
        samples=3,
        seconds=1.0,
    )
    assert "This run: 1 of 3 budget rows PASS; OVER: execute_query (slow), nowhere" in text
    assert EXPLANATIONS["execute_query"].strip().splitlines()[0] in text
    assert "No explanation written yet: profile it with `python -m bench nowhere --profile`" in text
    assert "**Made under load**" in text
    assert "| 290; 260 |" in text


def test_every_budget_case_has_an_explanation_ready_for_an_over_row() -> None:
    from bench.explanations import EXPLANATIONS

    budgeted = {
        "connect",
        "session",
        "async",
        "execute_query",
        "async_execute_query",
        "observe",
        "pre_ping",
        "health",
    }
    assert budgeted <= set(EXPLANATIONS)


def test_versus_table_shows_each_round_and_the_ratio_of_medians() -> None:
    from bench.versus import table

    def run(ratio: float | None) -> list[dict[str, Any]]:
        return [
            {"case": "session", "operation": "op", "baseline_name": "sa", "ratio": ratio},
            {"case": "floor", "operation": "—", "baseline_name": "raw", "ratio": None},
        ]

    text = table("abc1234", {"before": [run(1.0), run(1.2)], "now": [run(0.99), run(1.21)]})
    lines = text.splitlines()
    assert lines[0].startswith("| Row (abc1234's bench) |")
    assert len(lines) == 3, text  # the floor row has no ratio to compare
    assert lines[2] == "| session: op / sa | 1x, 1.2x | 0.99x, 1.21x | 1.00 |"
