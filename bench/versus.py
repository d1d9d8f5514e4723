"""`python -m bench.versus REV [CASE ...]`: this tree's dbwire against an earlier one's, same bench.

A row's ratio is dbwire over its baseline (SQLAlchemy, tomllib, a raw driver), so "as good as
before" means the ratio did not grow. Comparing RESULTS.md files made on different days says
little on a shared machine, and later benches changed their baselines; so this runs REV's *own*
bench code twice in one sitting, once importing REV's `src/` and once this tree's, with this
tree's venv for both (the same SQLAlchemy and drivers), in alternating rounds (A B B A ...).
Each run is a fresh process; the table shows every round's ratio, so the spread between two
rounds of the same code is the noise against which a difference can be read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = [
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
]


def _worktree(rev: str, where: Path) -> Path:
    """REV checked out (detached) under where; reused when it is already there."""
    tree = where / f"dbwire-{rev}"
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
    return tree


def _run(tree: Path, src: Path, cases: list[str], out: Path, quick: bool) -> list[dict[str, Any]]:
    """REV's bench (cwd tree) with dbwire imported from src, rows from its results.json."""
    env = dict(os.environ, PYTHONPATH=str(src))
    subprocess.run(
        [sys.executable, "-m", "bench", *cases, "--out", str(out), *(["--quick"] * quick)],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rows: list[dict[str, Any]] = json.loads((out / "results.json").read_text())["rows"]
    return rows


def _key(row: dict[str, Any]) -> str:
    return f"{row['case']}: {row['operation']} / {row['baseline_name']}"


def table(rev: str, rounds: dict[str, list[list[dict[str, Any]]]]) -> str:
    """Markdown: one line per row with a ratio, each round's ratio for both trees."""
    lines = [
        f"| Row ({rev}'s bench) | {rev} ratio (rounds) | now ratio (rounds) | now / {rev} |",
        "|---|---|---|--:|",
    ]
    keys = [_key(row) for row in rounds["before"][0] if row.get("ratio") is not None]
    for key in keys:
        per = {
            side: [row["ratio"] for run in runs for row in run if _key(row) == key]
            for side, runs in rounds.items()
        }
        if not per["before"] or not per["now"]:
            continue
        before, now = statistics.median(per["before"]), statistics.median(per["now"])
        shown = {
            side: ", ".join(f"{value:.3g}x" for value in values) for side, values in per.items()
        }
        lines.append(f"| {key} | {shown['before']} | {shown['now']} | {now / before:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__)
    parser.add_argument("rev", help="the earlier commit, e.g. 582dab9")
    parser.add_argument("cases", nargs="*", help=f"REV's bench cases (default: {DEFAULT_CASES})")
    parser.add_argument("--rounds", type=int, default=2, help="runs per tree (default 2)")
    parser.add_argument("--quick", action="store_true", help="REV's smoke iteration counts")
    parser.add_argument("--out", type=Path, help="write the table here too (markdown)")
    args = parser.parse_args(argv)
    cases = args.cases or DEFAULT_CASES
    scratch = Path(tempfile.mkdtemp(prefix="dbwire-versus-"))
    tree = _worktree(args.rev, scratch)
    sources = {"before": tree / "src", "now": ROOT / "src"}
    rounds: dict[str, list[list[dict[str, Any]]]] = {"before": [], "now": []}
    order = [
        side for i in range(args.rounds) for side in (("before", "now"), ("now", "before"))[i % 2]
    ]
    try:
        for i, side in enumerate(order):
            print(f"round {i + 1}/{len(order)}: {side}", file=sys.stderr, flush=True)
            rounds[side].append(_run(tree, sources[side], cases, scratch / f"run{i}", args.quick))
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
            check=False,
            capture_output=True,
        )
    text = table(args.rev, rounds)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
