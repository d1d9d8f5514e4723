"""`python -m bench --quick` runs every benchmark case, so the benchmarks never rot.

Only that each case runs is checked here, never how fast: PASS and OVER are both fine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CASES = {
    "floor",
    "connect",
    "session",
    "execute_query",
    "pre_ping",
    "async",
    "observe",
    "health",
    "threads",
    "config",
    "import",
    "sqlite",
    "collect",
}
# Cases that may report "pending" (a module they measure is not there yet): none now.
MAY_BE_PENDING: set[str] = set()


@pytest.mark.postgres
def test_quick_bench_makes_a_row_for_every_case(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
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
    markdown = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert markdown.startswith("# dbwire benchmarks")
    assert "python -m bench --quick --out" in markdown
