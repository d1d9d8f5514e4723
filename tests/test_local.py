"""The local DuckDB store: opening, settings, offline extensions, attach/detach, secrets."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

import dbwire
from dbwire.errors import ConfigError, ConnectError, DbwireError, MissingDependencyError
from dbwire.store import extensions as _extensions
from dbwire.store.local import LocalStore, get_duckdb_connection, resolve_store_path

# No DuckDB download can succeed (or is even tried): only files already on disk count.
OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


# Extensions from one folder per module, never downloaded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("hermetic_duckdb")


def pg_exec(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.encode())
        return list(cur.fetchall()) if cur.description else []


def my_exec(url: str, sql: str) -> None:
    u = make_url(url)
    conn = pymysql.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, database=u.database
    )
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL app database (not public), dropped afterwards."""
    name = f"s_{uuid.uuid4().hex[:8]}"
    pg_exec(pg_url, f"CREATE SCHEMA {name}")
    yield name
    pg_exec(pg_url, f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[dbwire.Database]:
    db = dbwire.connect(pg_url, name=f"pg_{uuid.uuid4().hex[:6]}")
    yield db
    db.close()


def _secrets(store: LocalStore) -> list[str]:
    return [row[0] for row in store.execute("SELECT name FROM duckdb_secrets()").fetchall()]


# -- opening ---------------------------------------------------------------------------
def test_in_memory_store_is_also_the_duckdb_connection() -> None:
    with get_duckdb_connection() as store:
        assert store.path is None
        assert store.execute("SELECT 42").fetchone() == (42,)
        store.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)")
        assert store.fetchall() == [(5,)]  # delegated to the connection: CTAS row count
        assert store.sql("SELECT sum(i) FROM t").fetchall() == [(10,)]
        assert store.table("t").count("*").fetchall() == [(5,)]
        assert isinstance(store.connection, duckdb.DuckDBPyConnection)
        store.execute("SELECT ?::INT + 1", [1])
        assert store.fetchone() == (2,)
    assert store.closed
    with pytest.raises(DbwireError, match="closed"):
        store.execute("SELECT 1")


def test_file_and_directory_paths_create_folders(tmp_path: Path) -> None:
    file_path = tmp_path / "a" / "b" / "store.duckdb"
    with get_duckdb_connection(file_path) as store:
        store.execute("CREATE TABLE kept AS SELECT 7 AS v")
    assert file_path.is_file()
    with get_duckdb_connection(str(file_path)) as store:
        assert store.execute("SELECT v FROM kept").fetchone() == (7,)

    existing = tmp_path / "existing"
    existing.mkdir()
    with get_duckdb_connection(existing) as store:
        assert store.path == existing / "assessment.db"
    assert (existing / "assessment.db").is_file()
    # A path that does not exist and has no file suffix is a folder, as in the dma tool.
    with get_duckdb_connection(tmp_path / "new" / "export") as store:
        assert store.path == tmp_path / "new" / "export" / "assessment.db"
    assert (tmp_path / "new" / "export" / "assessment.db").is_file()
    assert resolve_store_path(None) is None
    assert resolve_store_path(f"{tmp_path}/x/") == tmp_path / "x" / "assessment.db"


def test_store_is_closed_when_the_block_raises(tmp_path: Path) -> None:
    path = tmp_path / "err.duckdb"
    with pytest.raises(RuntimeError), get_duckdb_connection(path) as store:
        store.execute("CREATE TABLE t (i INT)")
        raise RuntimeError("boom")
    assert store.closed
    # The file lock is gone: another process can open the file.
    code = f"import duckdb; duckdb.connect({str(path)!r}).execute('SELECT * FROM t')"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_settings_have_defaults_and_can_be_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with get_duckdb_connection() as store:
        settings = store.settings
        temp = Path(settings.temp_directory)
        assert temp.is_dir() and temp.name.startswith("dbwire-duckdb-")
        assert settings.threads >= 1
        limit_mib = int(settings.memory_limit.removesuffix("MiB"))
        total_mib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        assert 0 < limit_mib <= total_mib // 2 + 1
        row = store.execute(
            "SELECT current_setting('threads'), current_setting('temp_directory'), "
            "current_setting('extension_directory')"
        ).fetchone()
        assert row == (settings.threads, settings.temp_directory, settings.extension_directory)
    assert not temp.exists(), "the private temp folder of an in-memory store is removed"

    file_path = tmp_path / "s.duckdb"
    with get_duckdb_connection(file_path, memory_limit="300MB", threads=1) as store:
        assert store.settings.temp_directory == f"{file_path}.tmp"
        row = store.execute(
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        ).fetchone()
        assert row is not None and row[0] == 1 and row[1].startswith("28")  # 300 MB = 286 MiB

    monkeypatch.setenv("DBWIRE_DUCKDB_THREADS", "1")
    monkeypatch.setenv("DBWIRE_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    with get_duckdb_connection() as store:
        assert store.execute("SELECT current_setting('threads')").fetchone() == (1,)
        assert store.settings.temp_directory == str(tmp_path / "spill")


def test_a_file_open_in_another_process_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True);"
            " sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConnectError) as caught, get_duckdb_connection(path):
            pass
        message = str(caught.value)
        assert f"already open in process {holder.pid}" in message
        assert "read_only=True" in message and "IO Error" not in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


# -- extensions without internet -------------------------------------------------------------
def test_offline_attach_of_every_backend_uses_only_the_shipped_files(
    tmp_path: Path,
    pg_url: str,
    mysql_url: str,
    pg_schema: str,
) -> None:
    """No internet: autoinstall/autoload off, downloads off, and an empty extension folder."""
    pg_exec(pg_url, f"CREATE TABLE {pg_schema}.pets AS SELECT 1 AS id, 'rex' AS name")
    table = f"cars_{uuid.uuid4().hex[:6]}"
    my_exec(mysql_url, f"CREATE TABLE {table} (id INT PRIMARY KEY, model VARCHAR(20))")
    my_exec(mysql_url, f"INSERT INTO {table} VALUES (1, 'mini')")
    sqlite_path = tmp_path / "src.sqlite"
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("CREATE TABLE birds (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO birds VALUES (1, 'tit')")
    duck_path = tmp_path / "src.duckdb"
    with duckdb.connect(str(duck_path)) as conn:
        conn.execute("CREATE TABLE fish AS SELECT 1 AS id, 'cod' AS name")

    fresh = tmp_path / "empty-extension-dir"
    sources = {
        "pg": dbwire.connect(pg_url, name="offline_pg"),
        "my": dbwire.connect(mysql_url, name="offline_my"),
        "lite": dbwire.connect(f"sqlite:///{sqlite_path}", name="offline_lite"),
        "duck": dbwire.connect(f"duckdb:///{duck_path}", name="offline_duck"),
    }
    try:
        with get_duckdb_connection(extension_directory=fresh, config=OFFLINE) as store:
            for alias, db in sources.items():
                assert store.attach(db, alias=alias) == alias
            assert store.execute(f"SELECT name FROM pg.{pg_schema}.pets").fetchall() == [("rex",)]
            assert store.execute(f"SELECT model FROM my.{table}").fetchall() == [("mini",)]
            assert store.execute("SELECT name FROM lite.birds").fetchall() == [("tit",)]
            assert store.execute("SELECT name FROM duck.fish").fetchall() == [("cod",)]
            installed = store.execute(
                "SELECT extension_name, install_mode, installed_from FROM duckdb_extensions() "
                "WHERE extension_name IN ('postgres_scanner', 'mysql_scanner', 'sqlite_scanner')"
            ).fetchall()
        assert len(installed) == 3
        for name, mode, origin in installed:
            assert mode == "CUSTOM_PATH", name
            assert f"extensions/v{duckdb.__version__}/" in origin and "site-packages" in origin
        assert (fresh / f"v{duckdb.__version__}").is_dir()
    finally:
        for db in sources.values():
            db.close()
        my_exec(mysql_url, f"DROP TABLE {table}")


def test_a_missing_extension_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_db: dbwire.Database
) -> None:
    monkeypatch.setitem(
        _extensions.SHIPPED, "postgres_scanner", ("duckdb", ("no_such_wheel_module",), "postgres")
    )
    store = LocalStore.open(extension_directory=tmp_path / "ext", config=OFFLINE)
    with store, pytest.raises(MissingDependencyError) as caught:
        store.attach(pg_db)
    message = str(caught.value)
    assert "pip install 'dbwire[duckdb]'" in message
    assert repr(pg_db.name) in message and "postgres_scanner" in message


def test_an_extension_for_another_duckdb_version_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_db: dbwire.Database
) -> None:
    package = tmp_path / "pkgs" / "fake_duckdb_extension_pg"
    (package / "extensions" / "v0.9.0").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "extensions" / "v0.9.0" / "postgres.duckdb_extension").write_bytes(b"x")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    monkeypatch.setitem(
        _extensions.SHIPPED,
        "postgres_scanner",
        ("duckdb", ("fake_duckdb_extension_pg",), "postgres"),
    )
    store = LocalStore.open(extension_directory=tmp_path / "ext", config=OFFLINE)
    with store, pytest.raises(MissingDependencyError, match=r"for DuckDB 0\.9\.0 only"):
        store.attach(pg_db)


# -- attach lifecycle ------------------------------------------------------------------
def test_attach_is_idempotent_and_detach_drops_the_secret(
    pg_db: dbwire.Database, pg_url: str, pg_schema: str
) -> None:
    pg_exec(pg_url, f"CREATE TABLE {pg_schema}.t AS SELECT 1 AS i")
    with get_duckdb_connection() as store:
        assert store.attach(pg_db) == pg_db.name
        assert store.attach(pg_db) == pg_db.name
        assert store.attached == {pg_db.name: pg_db.name}
        assert len(_secrets(store)) == 1
        # Every schema of the PostgreSQL database is visible, not only public.
        schemas = {
            row[0]
            for row in store.execute(
                "SELECT schema_name FROM duckdb_schemas() WHERE database_name = $db",
                {"db": pg_db.name},
            ).fetchall()
        }
        assert {"public", pg_schema} <= schemas
        assert store.detach(pg_db.name) is True
        assert _secrets(store) == []
        assert pg_db.name not in {
            r[0] for r in store.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }
        assert store.detach(pg_db.name) is False  # cleanup may be retried


def test_reattach_after_the_config_changed_picks_up_the_change(pg_server: Any, pg_url: str) -> None:
    other = f"db_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE DATABASE {other} OWNER {pg_server.user}")
    other_url = make_url(pg_url).set(database=other).render_as_string(hide_password=False)
    pg_exec(other_url, "CREATE TABLE only_in_other AS SELECT 'moved' AS v")
    first = dbwire.connect(pg_url, name="moving")
    second = dbwire.connect(other_url, name="moving")
    try:
        with get_duckdb_connection() as store:
            store.attach(first)
            with pytest.raises(duckdb.CatalogException):
                store.execute("SELECT * FROM moving.only_in_other")
            store.attach(second)  # same name, new config: detach, drop secret, attach
            assert store.execute("SELECT v FROM moving.only_in_other").fetchall() == [("moved",)]
            assert len(_secrets(store)) == 1
            store.attach(second, readonly=False)  # a new mode is a change too
            store.execute("INSERT INTO moving.only_in_other VALUES ('written')")
    finally:
        first.close()
        second.close()
        pg_server.run_sql_admin(f"DROP DATABASE {other} WITH (FORCE)")


def test_readonly_attach_refuses_writes(
    pg_db: dbwire.Database, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    pg_exec(pg_url, f"CREATE TABLE {pg_schema}.w (i INT)")
    sqlite_path = tmp_path / "w.sqlite"
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("CREATE TABLE w (i INT)")
    lite = dbwire.connect(f"sqlite:///{sqlite_path}", name="w_lite")
    try:
        with get_duckdb_connection() as store:
            store.attach(pg_db)
            store.attach(lite)
            with pytest.raises(duckdb.Error, match="read-only"):
                store.execute(f"INSERT INTO {pg_db.name}.{pg_schema}.w VALUES (1)")
            with pytest.raises(duckdb.Error, match="read-only"):
                store.execute("INSERT INTO w_lite.w VALUES (1)")
            store.attach(pg_db, readonly=False)
            store.execute(f"INSERT INTO {pg_db.name}.{pg_schema}.w VALUES (2)")
        assert pg_exec(pg_url, f"SELECT i FROM {pg_schema}.w") == [(2,)]
    finally:
        lite.close()


CANARY = f"Canary-{uuid.uuid4().hex[:10]}"


def test_the_password_of_an_attached_source_is_never_visible(
    pg_server: Any, pg_url: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    role = f"canary_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{CANARY}'")
    url = make_url(pg_url).set(username=role, password=CANARY)
    good = dbwire.connect(url.render_as_string(hide_password=False), name="canary_ok")
    bad = dbwire.connect(
        url.set(password=CANARY[::-1] + CANARY).render_as_string(hide_password=False),
        name="canary_bad",
    )
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    try:
        with get_duckdb_connection(tmp_path / "c.duckdb") as store:
            store.execute("CALL enable_logging(level = 'trace')")
            store.attach(good)
            seen.append(repr(store))
            seen.append(str(store.execute("SELECT * FROM duckdb_secrets()").fetchall()))
            with pytest.raises(ConnectError) as refused:
                store.attach(bad)
            seen.append(str(refused.value))
            assert "password" in str(refused.value)  # the reason is kept, the secret is not
            logs = store.execute("SELECT message FROM duckdb_logs").fetchall()
            assert any("CREATE OR REPLACE TEMPORARY SECRET" in m for (m,) in logs)
            seen.append(str(logs))
            seen.append(str(store.execute("SELECT * FROM duckdb_settings()").fetchall()))
            # Even an error whose text would echo the password comes out scrubbed (this
            # statement is the test's own; DuckDB logs it, so it runs after the log check).
            with pytest.raises(duckdb.Error) as echoed:
                store.execute(f"SELECT '{CANARY}'::INTEGER")
            seen.append(str(echoed.value))
        seen.append(caplog.text)
        text = "\n".join(seen)
        assert "secret=redacted" in text or "password=redacted" in text
        assert CANARY not in text
        assert "***" in seen[-2]
    finally:
        good.close()
        bad.close()
        pg_server.run_sql_admin(f"DROP ROLE {role}")


def test_aliases_are_quoted_not_injected(tmp_path: Path) -> None:
    sqlite_path = tmp_path / "inj.sqlite"
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("CREATE TABLE t (i INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    db = dbwire.connect(f"sqlite:///{sqlite_path}", name="inj")
    evil = 'x" (TYPE sqlite); CREATE TABLE pwned (i INT); --'
    try:
        with get_duckdb_connection() as store:
            store.execute("CREATE TABLE keep AS SELECT 1 AS i")
            assert store.attach(db, alias=evil) == evil
            names = [
                r[0]
                for r in store.execute("SELECT database_name FROM duckdb_databases()").fetchall()
            ]
            assert evil in names
            assert store.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'"
            ).fetchone() == (0,)
            quoted = '"' + evil.replace('"', '""') + '"'
            assert store.execute(f"SELECT i FROM {quoted}.t").fetchall() == [(1,)]
            with pytest.raises(ConfigError, match="already has a database named 'memory'"):
                store.attach(db, alias="memory")
            with pytest.raises(ConfigError, match="alias"):
                store.attach(db, alias="")
    finally:
        db.close()


def test_what_cannot_be_attached_says_why(tmp_path: Path) -> None:
    memory = dbwire.connect("sqlite://", name="mem_lite")
    duck_path = tmp_path / "busy.duckdb"
    busy = dbwire.connect(f"duckdb:///{duck_path}", name="busy_duck")
    try:
        with get_duckdb_connection() as store:
            with pytest.raises(DbwireError, match="in-memory SQLite database"):
                store.attach(memory)
            busy.execute_query("CREATE TABLE t AS SELECT 1 AS i")  # the engine holds the file
            with pytest.raises(ConnectError, match="already open in this process"):
                store.attach(busy)
            busy.close()
            store.attach(dbwire.connect(f"duckdb:///{duck_path}", name="busy_duck"))
            assert store.execute("SELECT i FROM busy_duck.t").fetchall() == [(1,)]
    finally:
        memory.close()
        busy.close()
