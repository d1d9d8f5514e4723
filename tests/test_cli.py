"""The `dbwire` command: the installed script for check's table and exit codes, and every
command's output scanned for passwords.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dbwire.cli import app
from servers import DatabaseServer, free_port

DBWIRE = Path(sys.executable).parent / "dbwire"
SECRET = "hunter2-cli-secret"


@dataclass
class Run:
    """One finished command: exit code and both streams."""

    args: list[str]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Setup:
    """A config file with working and broken databases, and the passwords it involves."""

    config: Path
    broken: Path
    secrets: list[str]


@pytest.fixture
def setup(
    tmp_path: Path,
    pg_server: DatabaseServer,
    pg_url: str,
    mysql_server: DatabaseServer,
    mysql_url: str,
) -> Iterator[Setup]:
    lite = tmp_path / "cli.db"
    with sqlite3.connect(lite) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two, too')")
    config = tmp_path / "dbwire.toml"
    config.write_text(
        f"""
[databases.main]
url = "{pg_url}"
pool_size = 3

[databases.shop]
url = "{mysql_url}"

[databases.local]
url = "sqlite:///{lite}"

[databases.gone]
url = "postgresql://app:{SECRET}@127.0.0.1:{free_port()}/app"
health_timeout = 2
"""
    )
    broken = tmp_path / "broken.toml"
    broken.write_text(f'[databases.main]\nurl = "{pg_url}"\npool_sise = 3\n')
    yield Setup(config, broken, [pg_server.password, mysql_server.password, SECRET])


def run_installed(*argv: list[str]) -> list[Run]:
    """Run the installed `dbwire` script once per argv, all at the same time."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    procs = [
        (
            args,
            subprocess.Popen(
                [str(DBWIRE), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            ),
        )
        for args in argv
    ]
    runs = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=60)
        runs.append(Run(args, proc.returncode, out, err))
    return runs


def run_inline(*args: str) -> Run:
    """Run a command in this process (fast), as the script would."""
    result = CliRunner().invoke(app, list(args))
    return Run(list(args), result.exit_code, result.stdout, result.stderr)


def assert_no_secret(setup: Setup, *runs: Run) -> None:
    for run in runs:
        for secret in setup.secrets:
            assert secret not in run.text, f"a password leaked from dbwire {' '.join(run.args)}"


def test_check_with_the_installed_command(setup: Setup) -> None:
    assert DBWIRE.is_file(), f"{DBWIRE} missing: pip install -e . --no-deps"
    cfg = str(setup.config)
    healthy, mixed, as_json, bad_config, unknown_name = run_installed(
        ["check", "main", "shop", "local", "--config", cfg],
        ["check", "--config", cfg],
        ["check", "--config", cfg, "--json"],
        ["check", "--config", str(setup.broken)],
        ["check", "nope", "--config", cfg],
    )
    assert healthy.code == 0, healthy.text
    header = healthy.out.splitlines()[2]
    for column in ("database", "status", "latency", "pool", "error"):
        assert column in header
    rows = {line.split("│")[1].strip(): line for line in healthy.out.splitlines() if "│" in line}
    assert set(rows) == {"main", "shop", "local"}
    assert all("healthy" in row and " ms" in row for row in rows.values())
    assert "0 out / 1 in / size 3" in rows["main"]  # pool: the check's connection, returned

    assert mixed.code == 1, mixed.text
    gone = next(line for line in mixed.out.splitlines() if "│ gone" in line)
    assert "UNHEALTHY" in gone and "could not connect" in mixed.out

    assert as_json.code == 1
    report = json.loads(as_json.out)
    assert {name: entry["status"] for name, entry in report.items()} == {
        "main": "healthy",
        "shop": "healthy",
        "local": "healthy",
        "gone": "unhealthy",
    }
    assert report["main"]["pool"]["size"] == 3

    for config_error in (bad_config, unknown_name):
        assert config_error.code == 2, config_error.text
        assert config_error.out == ""
        assert config_error.err.startswith("error: ")
        assert len(config_error.err.strip().splitlines()) == 1
        assert "Traceback" not in config_error.text
    assert "unknown field 'pool_sise'" in bad_config.err
    assert "no database named 'nope'" in unknown_name.err
    assert_no_secret(setup, healthy, mixed, as_json, bad_config, unknown_name)


def test_url_masked_explained_and_shown_on_request(setup: Setup, pg_server: DatabaseServer) -> None:
    cfg = str(setup.config)
    masked, explained, shown, as_json = run_installed(
        ["url", "main", "--config", cfg],
        ["url", "main", "--config", cfg, "--explain"],
        ["url", "main", "--config", cfg, "--show-password"],
        ["url", "gone", "--config", cfg, "--explain", "--json"],
    )
    assert masked.code == 0
    assert masked.out.strip() == (
        f"postgresql://{pg_server.user}:***@127.0.0.1:{pg_server.port}/{pg_server.database}"
    )
    assert explained.code == 0
    fields = {
        cells[1].strip(): (cells[2].strip(), cells[3].strip())
        for line in explained.out.splitlines()
        if (cells := line.split("│")) and len(cells) == 5
    }
    assert fields["host"][0] == "127.0.0.1"
    assert fields["port"] == (str(pg_server.port), f"url ({setup.config}:3)")
    assert fields["password"][0] == "***"
    assert fields["pool_size"] == ("3", f"{setup.config}:4")
    assert fields["max_overflow"] == ("10", "postgresql backend default")
    assert shown.code == 0 and pg_server.password in shown.out  # asked for by name
    data = json.loads(as_json.out)
    assert data["url"].startswith("postgresql://app:***@127.0.0.1:")
    assert {"field": "password", "value": "***"}.items() <= next(
        f for f in data["fields"] if f["field"] == "password"
    ).items()
    assert_no_secret(setup, masked, explained, as_json)


def test_wait_and_errors_with_the_installed_command(setup: Setup) -> None:
    cfg = str(setup.config)
    ready, timed_out, bad_sql, bad_sql_debug = run_installed(
        ["wait", "main", "--timeout", "10", "--config", cfg],
        ["wait", "gone", "--timeout", "0.5", "--config", cfg],
        ["query", "main", "SELECT * FROM no_such_table", "--config", cfg],
        ["query", "main", "SELECT * FROM no_such_table", "--config", cfg, "--debug"],
    )
    assert ready.code == 0 and ready.out.startswith("main: ready after ")
    assert timed_out.code == 1
    assert "did not accept connections within 0.5s" in timed_out.err
    assert len(timed_out.err.strip().splitlines()) == 1
    assert bad_sql.code == 1
    assert bad_sql.err.strip() == (
        "error: database 'main': (psycopg.errors.UndefinedTable) relation \"no_such_table\" "
        "does not exist (--debug shows the traceback)"
    )
    assert "Traceback" in bad_sql_debug.err and bad_sql_debug.code == 1
    assert_no_secret(setup, ready, timed_out, bad_sql, bad_sql_debug)


def test_list(setup: Setup) -> None:
    table = run_inline("list", "--config", str(setup.config))
    assert table.code == 0
    assert "postgresql://dbwire:***@" in table.out and "mysql://dbwire:***@" in table.out
    data = json.loads(run_inline("list", "--config", str(setup.config), "--json").out)
    assert [d["name"] for d in data["databases"]] == ["main", "shop", "local", "gone"]
    assert data["databases"][3]["url"].startswith("postgresql://app:***@")
    assert_no_secret(setup, table)


@pytest.mark.parametrize("target", ["main", "shop", "local"])
def test_query_in_every_format(setup: Setup, target: str) -> None:
    cfg = str(setup.config)
    sql = "SELECT 1 AS n, 'two, too' AS word"
    table = run_inline("query", target, sql, "--config", cfg)
    assert table.code == 0, table.text
    assert "two, too" in table.out and "(1 row)" in table.err
    as_json = run_inline("query", target, sql, "--config", cfg, "--format", "json")
    assert json.loads(as_json.out) == [{"n": 1, "word": "two, too"}]
    assert json.loads(run_inline("query", target, sql, "-c", cfg, "--json").out)[0]["n"] == 1
    as_csv = run_inline("query", target, sql, "--config", cfg, "--format", "csv")
    assert as_csv.out == 'n,word\n1,"two, too"\n'
    assert_no_secret(setup, table, as_json, as_csv)


def test_schema(setup: Setup) -> None:
    cfg = str(setup.config)
    data = json.loads(run_inline("schema", "local", "--config", cfg, "--json").out)
    assert data == {
        "items": [
            {
                "name": "id",
                "type": "INTEGER",
                "nullable": True,
                "default": None,
                "primary_key": True,
            },
            {
                "name": "name",
                "type": "TEXT",
                "nullable": False,
                "default": None,
                "primary_key": False,
            },
        ]
    }
    shown = run_inline("schema", "local", "--config", cfg)
    assert shown.code == 0 and "items" in shown.out and "PK" in shown.out
    pg = run_inline("schema", "main", "--config", cfg, "--json")
    assert pg.code == 0 and isinstance(json.loads(pg.out), dict)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_inline("list", "--config", str(tmp_path / "nope.toml"))
    assert result.code == 2
    assert result.err.startswith("error: config file") and "does not exist" in result.err
