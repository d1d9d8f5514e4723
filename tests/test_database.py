"""Database on every backend: transactions, read-only, sharing, execute_query; sync and async."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import exc as sqlalchemy_exc
from sqlalchemy import text

import dbwire
from dbwire import Database, DatabaseConfig, ReadOnlyError

TARGETS = ["sqlite-memory", "sqlite-file", "duckdb-memory", "duckdb-file", "postgresql", "mariadb"]


def _target_url(request: pytest.FixtureRequest, target: str, tmp_path: Path) -> str:
    if target == "sqlite-memory":
        return "sqlite://"
    if target == "sqlite-file":
        return f"sqlite:///{tmp_path / 'app.db'}"
    if target == "duckdb-memory":
        return "duckdb:///:memory:"
    if target == "duckdb-file":
        return f"duckdb:///{tmp_path / 'app.duckdb'}"
    if target == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    url = str(request.getfixturevalue("mysql_url"))
    return url.replace("mysql://", "mariadb://", 1)


class TableDatabase(Database):
    """A Database with a scratch table of its own."""

    table: str


@pytest.fixture(params=TARGETS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TableDatabase]:
    """A fresh Database on each backend, with a table `items(id, name)` of its own."""
    url = _target_url(request, request.param, tmp_path)
    database = TableDatabase(DatabaseConfig(name=f"t_{request.param}", url=url))
    table = database.table = f"items_{uuid.uuid4().hex[:8]}"
    with database.session() as s:
        s.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(50))"))
    yield database
    if not database.closed:
        with database.session() as s:
            s.execute(text(f"DROP TABLE {table}"))
        database.close()


def _count(db: TableDatabase) -> int:
    with db.session() as s:
        return int(s.execute(text(f"SELECT count(*) FROM {db.table}")).scalar_one())


def test_committed_row_is_visible_from_a_new_session(db: TableDatabase) -> None:
    with db.session() as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    with db.session() as s:
        names = s.execute(text(f"SELECT name FROM {db.table}")).scalars().all()
    assert names == ["a"]


def test_exception_in_session_leaves_no_row(db: TableDatabase) -> None:
    with pytest.raises(RuntimeError, match="boom"), db.session() as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
        raise RuntimeError("boom")
    assert _count(db) == 0


def test_auto_commit_false_discards_uncommitted_work(db: TableDatabase) -> None:
    with db.session(auto_commit=False) as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    assert _count(db) == 0
    with db.session(auto_commit=False) as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (2, 'b')"))
        s.commit()
    assert _count(db) == 1


def test_write_in_readonly_session_fails_and_leaves_no_row(db: TableDatabase) -> None:
    with pytest.raises(ReadOnlyError) as info, db.session(readonly=True) as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    assert db.name in str(info.value)
    assert "read-only" in str(info.value)
    assert _count(db) == 0
    # The connection went back to the pool writable: a normal session still writes.
    with db.session() as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (2, 'b')"))
    assert _count(db) == 1


def test_readonly_session_stays_readonly_after_a_commit(db: TableDatabase) -> None:
    with pytest.raises(ReadOnlyError), db.session(readonly=True, auto_commit=False) as s:
        s.execute(text(f"SELECT count(*) FROM {db.table}"))
        s.commit()  # a second transaction begins below; it must be read-only too
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    assert _count(db) == 0


def test_readonly_core_connection(db: TableDatabase) -> None:
    with pytest.raises(ReadOnlyError), db.connect(readonly=True) as conn:
        conn.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    assert _count(db) == 0


def test_execute_query_shape(db: TableDatabase) -> None:
    db.execute_query(
        f"INSERT INTO {db.table} VALUES (:id, :name)",
        {"id": 1, "name": "a"},
    )
    columns, rows = db.execute_query(f"SELECT id, name FROM {db.table} ORDER BY id")
    assert columns == ["id", "name"]
    assert rows == [{"id": 1, "name": "a"}]


def test_data_is_visible_from_another_thread(db: TableDatabase) -> None:
    with db.session() as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(_count(db)))
    worker.start()
    worker.join()
    assert seen == [1]


def test_session_scope_and_get_session_are_the_seed_vocabulary(db: TableDatabase) -> None:
    with db.session_scope() as s:
        s.execute(text(f"INSERT INTO {db.table} VALUES (1, 'a')"))
    session = db.get_session()
    try:
        assert session.execute(text(f"SELECT count(*) FROM {db.table}")).scalar_one() == 1
    finally:
        session.close()


def test_scoped_session_is_thread_local(db: TableDatabase) -> None:
    registry = db.scoped_session()
    mine = registry()
    others: list[object] = []
    worker = threading.Thread(target=lambda: (others.append(registry()), registry.remove()))
    worker.start()
    worker.join()
    assert registry() is mine
    assert others and others[0] is not mine
    registry.remove()


# -- async -------------------------------------------------------------------------------


def test_async_commit_rollback_and_readonly(db: TableDatabase) -> None:
    table = db.table

    async def scenario() -> None:
        async with db.async_session() as s:
            await s.execute(text(f"INSERT INTO {table} VALUES (1, 'a')"))
        with pytest.raises(RuntimeError):
            async with db.async_session() as s:
                await s.execute(text(f"INSERT INTO {table} VALUES (2, 'b')"))
                raise RuntimeError("boom")
        with pytest.raises(ReadOnlyError):
            async with db.async_session(readonly=True) as s:
                await s.execute(text(f"INSERT INTO {table} VALUES (3, 'c')"))
        async with db.async_session() as s:
            ids = (await s.execute(text(f"SELECT id FROM {table} ORDER BY id"))).scalars().all()
        assert ids == [1]
        columns, rows = await db.async_execute_query(f"SELECT id, name FROM {table}")
        assert (columns, rows) == (["id", "name"], [{"id": 1, "name": "a"}])
        async with db.async_connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        await db.async_engine.dispose()

    asyncio.run(scenario())
    # What async committed, sync sees (same database, other driver).
    assert _count(db) == 1


# -- whole-database read-only ------------------------------------------------------------


@pytest.mark.parametrize("target", ["sqlite-file", "duckdb-file", "postgresql", "mariadb"])
def test_readonly_database_refuses_writes(
    request: pytest.FixtureRequest, tmp_path: Path, target: str
) -> None:
    url = _target_url(request, target, tmp_path)
    table = f"ro_{uuid.uuid4().hex[:8]}"
    writer = Database(DatabaseConfig(name="writer", url=url))
    with writer.session() as s:
        s.execute(text(f"CREATE TABLE {table} (id INTEGER)"))
        s.execute(text(f"INSERT INTO {table} VALUES (1)"))
    writer.close()  # DuckDB: a process opens a file either read-write or read-only
    reader = Database(DatabaseConfig(name="reader", url=url, readonly=True))
    try:
        with pytest.raises(ReadOnlyError, match="'reader'"), reader.session() as s:
            s.execute(text(f"INSERT INTO {table} VALUES (2)"))
        with pytest.raises(ReadOnlyError), reader.connect() as conn:
            conn.execute(text(f"DELETE FROM {table}"))
        assert reader.execute_query(f"SELECT count(*) AS n FROM {table}")[1] == [{"n": 1}]
    finally:
        reader.close()
    cleanup = Database(DatabaseConfig(name="cleanup", url=url))
    with cleanup.session() as s:
        s.execute(text(f"DROP TABLE {table}"))
    cleanup.close()


@pytest.mark.parametrize("url", ["sqlite://", "duckdb:///:memory:"])
def test_readonly_in_memory_database_refuses_writes(url: str) -> None:
    reader = Database(DatabaseConfig(name="memory-ro", url=url, readonly=True))
    try:
        with pytest.raises(ReadOnlyError), reader.session() as s:
            s.execute(text("CREATE TABLE nope (id INTEGER)"))
        assert reader.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
    finally:
        reader.close()


# -- identity ------------------------------------------------------------------------------


def test_connect_returns_the_same_database_for_the_same_config(tmp_path: Path) -> None:
    config = {"databases": {"main": {"url": f"sqlite:///{tmp_path / 'a.db'}"}}}
    first = dbwire.connect("main", config=config)
    assert dbwire.connect("main", config=config) is first
    assert dbwire.connect("main", config=config, pool_size=3) is not first
    first.close()
    assert dbwire.connect("main", config=config) is not first


def test_pool_options_reach_the_engine(pg_url: str) -> None:
    db = Database(
        DatabaseConfig(
            name="pooled",
            url=pg_url,
            pool_size=3,
            max_overflow=2,
            pool_timeout=7,
            pool_recycle=120,
            pool_pre_ping=False,
            echo=True,
        )
    )
    try:
        pool = db.engine.pool
        assert pool.size() == 3
        assert pool._max_overflow == 2
        assert pool._timeout == 7
        assert pool._recycle == 120
        assert pool._pre_ping is False
        assert db.engine.echo is True
    finally:
        db.close()


def test_server_backends_default_to_pre_ping_and_recycle(pg_url: str) -> None:
    db = Database(DatabaseConfig(name="defaults", url=pg_url))
    always = Database(DatabaseConfig(name="always", url=pg_url, pre_ping_idle=0))
    try:
        # dbwire's idle-window ping replaces SQLAlchemy's ping-every-checkout by default
        # (tests/reliability/test_server_recovery.py proves the recovery it keeps) ...
        assert db.engine.pool._pre_ping is False
        assert db._idle_ping and db.config.pre_ping_idle == 1.0
        assert db.engine.pool._recycle == 3600
        # ... and pre_ping_idle = 0 gives SQLAlchemy's behaviour back.
        assert always.engine.pool._pre_ping is True
        assert not always._idle_ping
    finally:
        db.close()
        always.close()


def test_repr_masks_the_password(pg_url: str, pg_server: object) -> None:
    db = dbwire.connect(pg_url, name="masked")
    password = pg_server.password
    assert password not in repr(db)
    assert "***" in repr(db)
    assert "name='masked'" in repr(db) and "backend='postgresql'" in repr(db)
    db.close()


def test_closed_database_refuses_use(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="gone", url=f"sqlite:///{tmp_path / 'g.db'}"))
    db.close()
    with pytest.raises(dbwire.DatabaseClosedError, match="'gone' is closed"):
        _ = db.engine


def test_metadata_is_reflected_and_refreshed(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="meta", url=f"sqlite:///{tmp_path / 'm.db'}"))
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE first (id INTEGER PRIMARY KEY)"))
        assert set(db.metadata.tables) == {"first"}
        with db.session() as s:
            s.execute(text("CREATE TABLE second (id INTEGER PRIMARY KEY)"))
        assert set(db.metadata.tables) == {"first"}  # cached
        assert set(db.refresh_metadata().tables) == {"first", "second"}
    finally:
        db.close()


def test_metadata_cache_file_survives_a_new_process_and_refreshes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cache = tmp_path / "cache" / "meta.pickle"
    first = Database(DatabaseConfig(name="meta", url=url, metadata_cache=str(cache)))
    with first.session() as s:
        s.execute(text("CREATE TABLE one (id INTEGER PRIMARY KEY)"))
    assert set(first.metadata.tables) == {"one"}
    assert cache.is_file()
    with first.session() as s:
        s.execute(text("CREATE TABLE two (id INTEGER PRIMARY KEY)"))
    first.close()
    # A new Database (as a new process would) reads the cache instead of reflecting.
    second = Database(DatabaseConfig(name="meta", url=url, metadata_cache=str(cache)))
    try:
        assert set(second.metadata.tables) == {"one"}
        assert set(second.refresh_metadata().tables) == {"one", "two"}
    finally:
        second.close()
    third = Database(DatabaseConfig(name="meta", url=url, metadata_cache=str(cache)))
    try:
        assert set(third.metadata.tables) == {"one", "two"}  # the refresh rewrote the file
    finally:
        third.close()
    # A cache written for another URL is ignored, not trusted.
    other = Database(
        DatabaseConfig(name="meta", url=f"sqlite:///{tmp_path / 'd.db'}", metadata_cache=str(cache))
    )
    try:
        assert set(other.metadata.tables) == set()
    finally:
        other.close()


def test_metadata_reflects_on_every_backend(db: TableDatabase) -> None:
    # DuckDB needs dbwire's dialect fixes: SQLAlchemy 2.1's PostgreSQL reflection queries
    # catalogs DuckDB does not have (pg_collation, REGCLASS).
    table = db.refresh_metadata().tables[db.table]
    assert [c.name for c in table.columns] == ["id", "name"]
    assert [c.name for c in table.primary_key.columns] == ["id"]
    assert table.columns["name"].nullable


def test_execute_query_direct_path_keeps_core_semantics(pg_url: str) -> None:
    # On psycopg, execute_query() runs on the pooled driver connection in autocommit.
    db = Database(DatabaseConfig(name="direct", url=pg_url))
    try:
        assert db.execute_query(
            "SELECT '100%' AS pct, 'a:b' AS colon, CAST(:n AS int) AS n", {"n": "7"}
        ) == (
            ["pct", "colon", "n"],
            [{"pct": "100%", "colon": "a:b", "n": 7}],
        )
        db.execute_query("CREATE TABLE direct_t (x int)")
        db.execute_query("INSERT INTO direct_t VALUES (:x)", {"x": 1})  # committed at once
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM direct_t")).scalar_one() == 1
        with pytest.raises(sqlalchemy_exc.ProgrammingError, match="no_such_table"):
            db.execute_query("SELECT * FROM no_such_table")
        before = db.get_stats()
        db.execute_query("SELECT 1")
        assert db.get_stats().queries == before.queries + 1
        assert db.get_stats().errors >= 1
        # The connection went back to the pool in its normal (transactional) mode.
        with db.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
        db.execute_query("DROP TABLE direct_t")
    finally:
        db.close()
