"""The backend registry: built-ins, @register_backend, and third-party entry points."""

from __future__ import annotations

import sqlite3
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import text

import dbwire
from dbwire.backends import get_backend, registry
from dbwire.backends.sqlite import SQLiteBackend, regexp


def test_entry_point_backend_is_used_without_edits_to_dbwire(tmp_path: Path) -> None:
    # tests/plugin_dist is a separate distribution the test command installs in the venv.
    names = {ep.name for ep in entry_points(group="dbwire.backends")}
    assert "testlite" in names, "run the README test command: it installs tests/plugin_dist"
    db = dbwire.connect(f"testlite:///{tmp_path / 'plugin.db'}", name="plugin")
    try:
        assert type(db.backend).__module__ == "dbwire_testlite"
        with db.session() as s:
            s.execute(text("CREATE TABLE t (x INTEGER)"))
            s.execute(text("INSERT INTO t VALUES (42)"))
        assert db.execute_query("SELECT x FROM t") == (["x"], [{"x": 42}])
        assert "testlite" in registry.known()
    finally:
        db.close()


def test_register_backend_decorator(tmp_path: Path) -> None:
    @dbwire.register_backend
    class InHouseBackend(SQLiteBackend):
        name: ClassVar[str] = "inhouse"
        schemes: ClassVar[tuple[str, ...]] = ("inhouse",)

    assert get_backend("inhouse") is InHouseBackend
    db = dbwire.connect(f"inhouse:///{tmp_path / 'x.db'}", name="inhouse")
    try:
        assert db.execute_query("SELECT 1 AS one") == (["one"], [{"one": 1}])
    finally:
        db.close()


@pytest.mark.parametrize(
    ("scheme", "backend"),
    [
        ("postgresql", "postgresql"),
        ("postgres", "postgresql"),
        ("postgresql+asyncpg", "postgresql"),
        ("mysql", "mysql"),
        ("mariadb", "mariadb"),
        ("sqlite", "sqlite"),
        ("duckdb", "duckdb"),
    ],
)
def test_builtin_schemes(scheme: str, backend: str) -> None:
    assert get_backend(scheme).name == backend


def test_sqlite_regexp_function(tmp_path: Path) -> None:
    db = dbwire.connect(f"sqlite:///{tmp_path / 'r.db'}", name="regexp")
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE w (word TEXT)"))
            s.execute(text("INSERT INTO w VALUES ('apple'), ('banana'), (NULL)"))
        _, rows = db.execute_query("SELECT word FROM w WHERE word REGEXP '^b.n'")
        assert rows == [{"word": "banana"}]
        # A bad pattern never matches instead of failing the query (seed 002's behaviour).
        assert db.execute_query("SELECT word FROM w WHERE word REGEXP '('")[1] == []
    finally:
        db.close()
    assert regexp("a", None) is False


def test_sqlite_file_pragmas(tmp_path: Path) -> None:
    db = dbwire.connect(f"sqlite:///{tmp_path / 'p.db'}", name="pragmas")
    try:
        with db.connect() as conn:
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        with db.session() as s:
            s.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            s.execute(text("CREATE TABLE child (pid INTEGER REFERENCES parent(id))"))
        with pytest.raises(Exception, match="FOREIGN KEY"), db.session() as s:
            s.execute(text("INSERT INTO child VALUES (99)"))
    finally:
        db.close()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer, as far as SQLite can tell: a write transaction left open."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    return holder


def test_sqlite_connect_waits_out_a_writer_before_switching_to_wal(tmp_path: Path) -> None:
    # SQLite refuses the WAL switch at once, busy handler or not, while another connection
    # is writing; two pytest-xdist workers opening one file hit exactly this.
    path = tmp_path / "busy.db"
    holder = _hold_write_lock(path)
    releaser = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    releaser.start()
    db = dbwire.connect(f"sqlite:///{path}", name="busy")
    try:
        with db.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        releaser.join()
        holder.close()
        db.close()


def test_sqlite_connect_goes_on_without_wal_when_a_writer_never_lets_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SQLiteBackend, "busy_timeout_ms", 300)
    path = tmp_path / "held.db"
    holder = _hold_write_lock(path)
    db = dbwire.connect(f"sqlite:///{path}", name="held")
    try:
        started = time.monotonic()
        with db.connect() as conn:
            # readers still read the committed state beside a rollback-journal writer
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
        assert time.monotonic() - started < 3.0  # bounded by busy_timeout, not forever
        holder.execute("COMMIT")
        db.dispose_pools(close=True)
        with db.connect() as conn:  # the next connection makes the switch
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        holder.close()
        db.close()


def test_source_info_get_engine(pg_server: object, pg_url: str) -> None:
    info = dbwire.SourceInfo(
        db_type="POSTGRES",
        username=pg_server.user,  # type: ignore[attr-defined]
        password=pg_server.password,  # type: ignore[attr-defined]
        hostname=pg_server.host,  # type: ignore[attr-defined]
        port=pg_server.port,  # type: ignore[attr-defined]
    )
    engine = dbwire.get_engine(info, database=pg_server.database)  # type: ignore[attr-defined]
    assert engine is dbwire.get_engine(info, database=pg_server.database)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == "dbwire"
    assert pg_server.password not in repr(info)  # type: ignore[attr-defined]
    assert pg_server.password not in repr(engine.url)  # type: ignore[attr-defined]
    with pytest.raises(dbwire.UnknownBackendError, match="ORACLE"):
        dbwire.get_engine(dbwire.SourceInfo(db_type="ORACLE"), database="x")
