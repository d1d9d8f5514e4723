"""`dbwire init`, `dbwire collect` progress and summary, `dbwire shell`: the installed command."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servers import DatabaseServer

DBWIRE = Path(sys.executable).parent / "dbwire"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBWIRE_", "PG"))}
    env.pop("DATABASE_URL", None)
    env.update(COLUMNS="200", NO_COLOR="1", XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    return env


def _dbwire(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DBWIRE), *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=120,
    )


def test_init_writes_a_commented_config_that_loads(tmp_path: Path) -> None:
    made = _dbwire(tmp_path, "init")
    assert made.returncode == 0, made.stderr
    text = (tmp_path / "dbwire.toml").read_text()
    assert text.startswith("#") and "password" in text and "[databases.main]" in text
    listed = _dbwire(tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [d["name"] for d in json.loads(listed.stdout)["databases"]] == ["main"]
    again = _dbwire(tmp_path, "init")
    assert again.returncode == 2 and "--force" in again.stderr
    assert _dbwire(tmp_path, "init", "--force").returncode == 0


def test_collect_prints_one_summary_line_when_piped_and_json_on_request(tmp_path: Path) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO events VALUES (?, ?)", ((i, f"v{i}") for i in range(10_000)))
    (tmp_path / "dbwire.toml").write_text(f'[databases.src]\nurl = "sqlite:///{source}"\n')
    into = str(tmp_path / "out.duckdb")
    piped = _dbwire(tmp_path, "collect", "src", "SELECT * FROM events", "--into", into, "-t", "ev")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == ""
    lines = piped.stderr.splitlines()
    assert len(lines) == 1 and piped.stderr.endswith("\n") and "\n\n" not in piped.stderr
    assert lines[0].startswith("collected 10,000 rows from 'src'")
    assert "rows/s" in lines[0] and "(method: sqlalchemy)" in lines[0]
    as_json = _dbwire(tmp_path, "collect", "src", "events", "--into", into, "-t", "ev2", "--json")
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)
    assert summary["rows"] == 10_000 and summary["table"] == "ev2"
    # A whole SQLite table is read by DuckDB's own scanner.
    assert summary["method"] == "duckdb" and summary["rows_per_second"] > 0


def _ps() -> str:
    return subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("backend", ["pg", "mysql"])
def test_shell_logs_in_without_the_password_in_argv(
    tmp_path: Path,
    backend: str,
    pg_url: str,
    mysql_url: str,
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
) -> None:
    url, server, client = {
        "pg": (pg_url, pg_server, "psql"),
        "mysql": (mysql_url, mysql_server, "mariadb"),
    }[backend]
    (tmp_path / "dbwire.toml").write_text(f'[databases.main]\nurl = "{url}"\n')
    proc = subprocess.Popen(
        [str(DBWIRE), "shell", "main"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            listing = _ps()
            running = [line for line in listing.splitlines() if f"/{client} " in line + " "]
            if running or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert running, "the client never started"
        assert server.password not in listing  # while the shell runs: not in any argv
        out, err = proc.communicate("SELECT 'shell-ok' AS x;\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "shell-ok" in out
    assert server.password not in out + err
    assert not list(tmp_path.glob("**/client.cnf"))
