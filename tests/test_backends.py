"""The backend registry: built-ins, @register_backend, and third-party entry points."""

from __future__ import annotations

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
