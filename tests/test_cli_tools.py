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


def test_init_alembic_writes_a_project_that_migrates_with_no_edit(tmp_path: Path) -> None:
    made = _dbwire(tmp_path, "init", "--alembic", "migrations")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "migrations" / "env.py").exists()
    assert "dbwire migrate main --scripts migrations" in made.stdout
    # The generated alembic.ini is what `alembic revision` needs; no edit of env.py.
    alembic = Path(sys.executable).parent / "alembic"
    revision = subprocess.run(
        [str(alembic), "-c", "migrations/alembic.ini", "revision", "-m", "users", "--rev-id", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=60,
    )
    assert revision.returncode == 0, revision.stderr
    script = next((tmp_path / "migrations" / "versions").glob("1_*.py"))
    body, upgrade, rest = script.read_text().partition('"""Upgrade schema."""\n    pass')
    assert upgrade, body  # alembic's generic template, as `alembic revision` writes it
    create = "op.create_table('users', sa.Column('id', sa.Integer, primary_key=True))"
    script.write_text(body + create + rest)
    db_file = tmp_path / "app.db"
    (tmp_path / "dbwire.toml").write_text(f'[databases.main]\nurl = "sqlite:///{db_file}"\n')
    migrated = _dbwire(tmp_path, "migrate", "main", "--scripts", "migrations")
    assert migrated.returncode == 0, migrated.stderr
    with sqlite3.connect(db_file) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"users", "alembic_version"} <= tables
    # A second init into the same directory refuses instead of overwriting env.py.
    again = _dbwire(tmp_path, "init", "--force", "--alembic", "migrations")
    assert again.returncode == 2 and "env.py already exists" in again.stderr


def test_shell_opens_sqlite3_on_the_configured_file(tmp_path: Path) -> None:
    db_file = tmp_path / "app.db"
    with sqlite3.connect(db_file) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('from-the-file')")
    (tmp_path / "dbwire.toml").write_text(f'[databases.main]\nurl = "sqlite:///{db_file}"\n')
    run = subprocess.run(
        [str(DBWIRE), "shell", "main"],
        input="SELECT v FROM t;\n",
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "from-the-file" in run.stdout


def test_shell_without_the_client_names_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "dbwire.toml").write_text(
        f'[databases.main]\nurl = "duckdb:///{tmp_path / "x.duckdb"}"\n'
    )
    env = _env(tmp_path)
    env["PATH"] = str(tmp_path / "empty-bin")  # no duckdb CLI on this PATH, whatever the host has
    run = subprocess.run(
        [str(DBWIRE), "shell", "main"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert run.returncode == 1, run.stderr  # the config is right; the machine lacks a tool
    assert "needs duckdb on PATH" in run.stderr and "Fix: install it" in run.stderr


def test_schema_of_a_missing_schema_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    db_file = tmp_path / "app.db"
    with sqlite3.connect(db_file) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
    (tmp_path / "dbwire.toml").write_text(f'[databases.main]\nurl = "sqlite:///{db_file}"\n')
    missing = _dbwire(tmp_path, "schema", "main", "--schema", "mian")
    assert missing.returncode == 2
    assert "no schema 'mian'" in missing.stderr and "did you mean 'main'" in missing.stderr
    present = _dbwire(tmp_path, "schema", "main", "--schema", "main")
    assert present.returncode == 0 and "t" in present.stdout


def test_param_json_form_binds_typed_values(tmp_path: Path) -> None:
    (tmp_path / "dbwire.toml").write_text(
        f'[databases.main]\nurl = "sqlite:///{tmp_path / "app.db"}"\n'
    )
    sql = "SELECT typeof(:n) AS n, typeof(:s) AS s, typeof(:f) AS f, typeof(:z) AS z"
    run = _dbwire(
        tmp_path, "query", "main", sql, "-F", "csv",
        "--param", "n:=42", "--param", "s=42", "--param", "f:=1.5", "--param", "z:=null",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1] == "integer,text,real,null"
    bad = _dbwire(tmp_path, "query", "main", "SELECT :n", "--param", "n:=forty")
    assert bad.returncode == 2 and "takes a JSON value" in bad.stderr
