"""`echo = true` prints every statement dbwire runs, as SQLAlchemy's echo does, execute_query's
one-round-trip path included (it steps aside for SQLAlchemy, which owns the echo log); with
echo off nothing is printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, sys
import dbwire

cfg = dbwire.load_config({"databases": {"e": {"url": sys.argv[1], "echo": sys.argv[2] == "on"}}})
db = dbwire.connect("e", config=cfg)
assert db.execute_query("SELECT 4242 AS x")[1] == [{"x": 4242}]

async def main():
    assert (await db.async_execute_query("SELECT 4343 AS y"))[1] == [{"y": 4343}]
    await db.aclose()

asyncio.run(main())
db.close()
"""


def _run(url: str, echo: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url, echo],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("backend", ["sqlite", "duckdb", "postgresql", "mysql"])
def test_execute_query_is_echoed_sync_and_async_only_when_asked(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend in ("sqlite", "duckdb"):
        url = f"{backend}:///{tmp_path / 'echo.db'}"
    else:
        url = request.getfixturevalue("pg_url" if backend == "postgresql" else "mysql_url")
    echoed = _run(url, "on")
    assert "SELECT 4242 AS x" in echoed and "SELECT 4343 AS y" in echoed
    quiet = _run(url, "off")
    assert "4242" not in quiet and "4343" not in quiet
