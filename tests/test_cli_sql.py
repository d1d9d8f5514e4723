"""`dbwire sql`: lazy attach, reserved names, and the prompt driven through tmux."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from servers import DatabaseServer, free_port

DBWIRE = Path(sys.executable).parent / "dbwire"
SECRET = "canary-cli-sql-pw"


def _setup(tmp_path: Path, pg_url: str) -> Path:
    lite = tmp_path / "lite.db"
    with sqlite3.connect(lite) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    config = tmp_path / "dbwire.toml"
    config.write_text(
        f'[databases.primary]\nurl = "sqlite:///{lite}"\n'
        f'[databases.pg]\nurl = "{pg_url}"\n'
        f'[databases.gone]\nurl = "postgresql://app:{SECRET}@127.0.0.1:{free_port()}/app"\n'
        "connect_timeout = 2\n"
    )
    return config


def _sql(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [str(DBWIRE), "sql", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_reserved_name_is_quoted_and_only_named_databases_attach(
    tmp_path: Path, pg_url: str, pg_server: DatabaseServer
) -> None:
    cfg = str(_setup(tmp_path, pg_url))
    # The README's form: `primary` is reserved in DuckDB, and works unquoted; nothing
    # else is attached, so the database that is down is not even tried.
    run = _sql("SELECT count(*) AS n FROM primary.main.items", "-c", cfg, "-f", "csv")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "n\n2\n"
    assert "gone" not in run.stderr and "warning" not in run.stderr
    both = _sql(
        "SELECT i.name, p.v FROM primary.main.items i JOIN (SELECT * FROM pg.pg_catalog.pg_class"
        " LIMIT 0) c ON true RIGHT JOIN (SELECT 1 AS v) p ON true",
        "-c",
        cfg,
        "-f",
        "csv",
    )
    assert both.returncode == 0, both.stderr
    down = _sql("SELECT * FROM gone.public.x", "-c", cfg)
    assert down.returncode == 1
    warnings = [line for line in down.stderr.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: 'gone' not attached:")
    only = _sql("SELECT 1 AS one", "-c", cfg, "--only", "primary,pg", "-f", "csv")
    assert only.returncode == 0 and "gone" not in only.stderr
    unknown = _sql("SELECT 1", "-c", cfg, "--only", "nosuch")
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
    for r in (run, both, down, only, unknown):
        assert SECRET not in r.stdout + r.stderr
        assert pg_server.password not in r.stdout + r.stderr


def _pane(socket: str, session: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-t", session, "-S", "-200"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _wait_for(socket: str, session: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        pane = _pane(socket, session)
        if text in pane or time.monotonic() > deadline:
            return pane
        time.sleep(0.2)


def test_prompt_help_tables_describe_and_ctrl_c_through_tmux(tmp_path: Path, pg_url: str) -> None:
    cfg = _setup(tmp_path, pg_url)
    socket, session = f"dbwire-test-{uuid.uuid4().hex[:8]}", "sql"
    command = f"NO_COLOR=1 {DBWIRE} sql -c {cfg}; echo EXITED=$?; sleep 60"
    subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "200",
            "-y",
            "60",
            command,
        ],
        check=True,
    )

    def keys(text: str, key: str | None = None) -> None:
        # tmux reads an argument ending in ';' as its own command separator: add a space.
        tmux = ["tmux", "-L", socket, "send-keys", "-t", session]
        if text:
            subprocess.run([*tmux, "-l", text + " " if text.endswith(";") else text], check=True)
        if key:
            subprocess.run([*tmux, key], check=True)

    try:
        assert ".help for help" in _wait_for(socket, session, "dbwire> ")
        keys(".help", "Enter")
        assert "cancel the line" in _wait_for(socket, session, "cancel the line")
        keys("SELECT * FROM primary.main.items;", "Enter")
        _wait_for(socket, session, "two")
        keys(".tables", "Enter")
        pane = _wait_for(socket, session, "items │")
        assert "primary" in pane and "items" in pane and "not attached yet: gone, pg" in pane
        keys("\\d primary.main.items", "Enter")
        assert "column_name" in _wait_for(socket, session, "column_name")
        # Ctrl-C drops a half-typed statement and keeps the prompt.
        keys("SELECT 'never-run' AS", "Enter")
        _wait_for(socket, session, "...> ")
        keys("", "C-c")
        _wait_for(socket, session, "^C")
        keys("SELECT 40 + 2 AS answer;", "Enter")
        pane = _wait_for(socket, session, "42")
        assert "42" in pane and "never-run" not in pane.split("^C")[-1]
        assert "EXITED" not in pane
        keys(".quit", "Enter")
        pane = _wait_for(socket, session, "EXITED=")
        assert "EXITED=0" in pane
        assert "Traceback" not in pane
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False)
