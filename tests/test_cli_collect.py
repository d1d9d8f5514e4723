"""`dbwire collect`, the installed command, against real servers: progress on a terminal,
nothing but the summary when piped, one JSON object per table with --json."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from rich.console import Console
from rich.progress import Progress

import dbwire
from dbwire.cli.store import _Bar
from dbwire.store.collect import CollectProgress
from servers import DatabaseServer

DBWIRE = Path(sys.executable).parent / "dbwire"


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory,
    pg_server: DatabaseServer,
    mysql_server: DatabaseServer,
) -> Iterator[tuple[Path, str, str]]:
    """A folder with dbwire.toml naming both servers, a PostgreSQL and a MariaDB table."""
    folder = tmp_path_factory.mktemp("cli-collect")
    name = f"cli_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {name} AS SELECT g AS id, md5(g::text) AS tag "  # type: ignore[arg-type]
            f"FROM generate_series(1, 50000) g; ANALYZE {name}"
        )
    my = dbwire.connect(mysql_server.url, name="setup")
    my.execute_query(f"CREATE TABLE {name} (id INT PRIMARY KEY, v DOUBLE)")
    my.execute_query(f"INSERT INTO {name} SELECT seq, seq / 3 FROM seq_1_to_5000")
    (folder / "dbwire.toml").write_text(
        f'[databases.pg]\nurl = "{pg_server.url}"\n\n[databases.my]\nurl = "{mysql_server.url}"\n'
    )
    yield folder, name, pg_server.url.split("://")[1].split("@")[0].split(":")[1]
    my.execute_query(f"DROP TABLE {name}")
    my.close()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")  # type: ignore[arg-type]


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBWIRE_", "PG"))}
    env.pop("DATABASE_URL", None)
    env.update(COLUMNS="200", NO_COLOR="1", TERM="xterm", XDG_CONFIG_HOME=str(folder / "xdg"))
    return env


def test_progress_on_a_terminal_shows_method_rows_rate_and_the_estimate(
    project: tuple[Path, str, str],
) -> None:
    folder, table, password = project
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read while it runs: a full pty buffer would block the child
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    args = ["collect", "pg", table, "--into", str(folder / "tty.duckdb"), "-t", "t"]
    proc = subprocess.run(
        [str(DBWIRE), *args],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=_env(folder),
        cwd=folder,
        timeout=120,
    )
    os.close(follower)
    reader.join(10)
    os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, shown
    assert proc.stdout == b""
    assert "\x1b[" in shown  # a live display, redrawn in place
    assert "collecting t via duckdb" in shown
    assert "50,000 rows" in shown and "rows/s" in shown
    assert "of ~50,000 (estimate)" in shown  # pg_class.reltuples, said to be an estimate
    assert "collected 50,000 rows from 'pg'" in shown
    assert password not in shown


def test_piped_prints_one_summary_line_and_no_progress(project: tuple[Path, str, str]) -> None:
    folder, table, _ = project
    args = ["collect", "my", table, "--into", str(folder / "pipe.duckdb"), "-t", "t"]
    proc = subprocess.run(
        [str(DBWIRE), *args], capture_output=True, text=True, env=_env(folder), cwd=folder
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n")
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert proc.stderr.startswith("collected 5,000 rows from 'my'")
    assert "(method: connectorx)" in proc.stderr


@pytest.mark.parametrize(("name", "method"), [("pg", "adbc"), ("my", None), ("pg", None)])
def test_json_is_one_object_per_table_for_scripts(
    project: tuple[Path, str, str], name: str, method: str | None
) -> None:
    folder, table, password = project
    into = folder / f"json-{name}-{method}.duckdb"
    args = ["collect", name, table, "--into", str(into), "-t", "s.copy", "--json"]
    if method:
        args += ["--method", method]
    proc = subprocess.run(
        [str(DBWIRE), *args], capture_output=True, text=True, env=_env(folder), cwd=folder
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    rows = 50_000 if name == "pg" else 5_000
    expected = method or ("duckdb" if name == "pg" else "connectorx")
    assert summary["rows"] == rows and summary["method"] == expected
    assert summary["seconds"] > 0 and summary["rows_per_s"] == pytest.approx(
        rows / summary["seconds"], rel=0.01
    )
    assert summary["target"] == f"{into}:s.copy" and summary["table"] == "s.copy"
    assert password not in proc.stdout


def test_a_bad_password_is_one_clear_error_line_with_no_secret(
    project: tuple[Path, str, str], tmp_path: Path
) -> None:
    folder, table, _ = project
    config = (folder / "dbwire.toml").read_text()
    my_url = config.split('[databases.my]\nurl = "')[1].split('"')[0]
    my_password = my_url.split("://")[1].split("@")[0].split(":")[1]
    bad = my_url.replace(my_password, "wrong-pass-xyz")
    (tmp_path / "dbwire.toml").write_text(f'[databases.my]\nurl = "{bad}"\n')
    proc = subprocess.run(
        [str(DBWIRE), "collect", "my", table, "--into", str(tmp_path / "x.duckdb"), "-t", "t"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
        timeout=25,  # connectorx by itself would retry the login for 30 s
    )
    assert proc.returncode != 0
    assert "'my'" in proc.stderr and "Traceback" not in proc.stderr
    assert "wrong-pass-xyz" not in proc.stderr + proc.stdout


def test_the_progress_line_gives_an_eta_from_the_estimate() -> None:
    console = Console(file=open(os.devnull, "w"), force_terminal=True)  # noqa: SIM115
    with Progress(console=console, auto_refresh=False) as progress:
        task = progress.add_task("", total=None)
        bar = _Bar(progress, task, "t", "adbc", 0.0)
        bar.report(CollectProgress("t", "adbc", rows=250_000, elapsed=1.0, estimate=1_000_000))
        text = progress.tasks[0].description
        assert "250,000 rows of ~1,000,000 (estimate)" in text
        assert "250,000 rows/s" in text and "ETA 0:00:03" in text
        assert progress.tasks[0].total == 1_000_000
        bar.report(CollectProgress("t", "duckdb", fraction=0.5, elapsed=2.0))
        text = progress.tasks[0].description
        assert "via duckdb" in text and "50%, ETA 0:00:02 (DuckDB's estimate)" in text
    console.file.close()
