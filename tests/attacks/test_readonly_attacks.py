"""Read-only under attack: every known way to write from read-only mode is refused, on
every backend, sync and async, and the data (rows, tables, files) is unchanged afterwards.

Layer 2 (the statement guard) is checked through the public API: each attack must fail
with ReadOnlyError "before it reached the server". Layer 1 (the database's own read-only
mechanism) is checked apart, by sending attacks through the raw DBAPI cursor, where the
guard cannot see them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from typer.testing import CliRunner

from dbwire import Database, DatabaseConfig, ReadOnlyError
from dbwire.backends import readonly_guard
from dbwire.cli import app
from servers import DatabaseServer

BACKENDS = ["postgresql", "mariadb", "sqlite", "duckdb"]
MODES = ["session", "connect", "database", "execute_query"]

# Attacks: name -> statements; {t} is the victim table, {f} a file that must not appear.
COMMON: dict[str, list[str]] = {
    "commit_then_insert": ["COMMIT", "INSERT INTO {t} VALUES (2)"],
    "rollback_then_insert": ["ROLLBACK", "INSERT INTO {t} VALUES (2)"],
    "commit_insert_one_string": ["COMMIT; INSERT INTO {t} VALUES (2)"],
    "read_then_drop_one_string": ["SELECT 1; DROP TABLE {t}"],
    "comment_hides_nothing": ["/* read */ SELECT 1 -- x\n; DELETE FROM {t}"],
    "drop_table": ["DROP TABLE {t}"],
    "truncate": ["TRUNCATE TABLE {t}"],
    "create_table": ["CREATE TABLE {t}_new (id INTEGER)"],
    "delete_in_cte": ["WITH d AS (DELETE FROM {t} RETURNING id) SELECT * FROM d"],
    "insert_select": ["INSERT INTO {t} SELECT id + 10 FROM {t}"],
    "update": ["UPDATE {t} SET id = 5"],
}
SERVER: dict[str, list[str]] = {
    "set_transaction_read_write_first": [
        "SET TRANSACTION READ WRITE",
        "INSERT INTO {t} VALUES (2)",
    ],
    "start_transaction_read_write": ["START TRANSACTION READ WRITE", "INSERT INTO {t} VALUES (2)"],
    "begin_then_insert": ["BEGIN", "INSERT INTO {t} VALUES (2)"],
}
PER_BACKEND: dict[str, dict[str, list[str]]] = {
    "postgresql": {
        "transaction_read_only_off": [
            "SET transaction_read_only = off",
            "INSERT INTO {t} VALUES (2)",
        ],
        "default_read_only_off": [
            "SET default_transaction_read_only = off",
            "COMMIT",
            "INSERT INTO {t} VALUES (2)",
        ],
        "session_characteristics": [
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
            "COMMIT",
            "INSERT INTO {t} VALUES (2)",
        ],
        "set_config": [
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "END",
            "INSERT INTO {t} VALUES (2)",
        ],
        "quoted_set_config": ["SELECT \"set_config\"('transaction_read_only', 'off', true)"],
        "begin_read_write": ["ABORT", "BEGIN READ WRITE", "INSERT INTO {t} VALUES (2)"],
        "reset_all": ["RESET ALL"],
        "lock_table": ["LOCK TABLE {t} IN ACCESS EXCLUSIVE MODE"],
        "select_into": ["SELECT * INTO {t}_copy FROM {t}"],
        "create_table_as": ["CREATE TABLE {t}_copy AS SELECT * FROM {t}"],
        "explain_analyze_delete": ["EXPLAIN ANALYZE DELETE FROM {t}"],
        "dollar_quote_hides_nothing": ["SELECT $$;$$; DROP TABLE {t}"],
        "backslash_literal": ["SELECT 'a\\'; DROP TABLE {t}; -- '"],
        "copy_to_file": ["COPY {t} TO '{f}'"],
        "do_block": ["DO $$BEGIN EXECUTE 'DROP TABLE {t}'; END$$"],
        "advisory_lock": ["SELECT pg_advisory_lock(42)"],
    },
    "mariadb": {
        "transaction_read_only_off": [
            "SET SESSION transaction_read_only = OFF",
            "COMMIT",
            "INSERT INTO {t} VALUES (2)",
        ],
        "session_read_write": [
            "SET SESSION TRANSACTION READ WRITE",
            "COMMIT",
            "INSERT INTO {t} VALUES (2)",
        ],
        "lock_tables_write": ["LOCK TABLES {t} WRITE", "INSERT INTO {t} VALUES (2)"],
        "rename_table": ["RENAME TABLE {t} TO {t}_moved"],
        "replace_into": ["REPLACE INTO {t} VALUES (1)"],
        "into_outfile": ["SELECT * FROM {t} INTO OUTFILE '{f}'"],
        "executable_comment": ["/*!40101 DROP TABLE {t} */"],
        "executable_comment_after_select": ["SELECT 1 /*!40101 ; DROP TABLE {t} */"],
        "mysql_dash_dash": ["SELECT 1 --1; DROP TABLE {t}"],
        "backslash_literal": ["SELECT 'a\\'; DROP TABLE {t}; -- '"],
        "get_lock": ["SELECT GET_LOCK('x', 0)"],
        "handler": ["HANDLER {t} OPEN"],
    },
    "sqlite": {
        "query_only_off": ["PRAGMA query_only=0", "INSERT INTO {t} VALUES (2)"],
        "query_only_call_form": ["PRAGMA query_only(0)", "INSERT INTO {t} VALUES (2)"],
        "attach_creates_file": ["ATTACH DATABASE '{f}' AS other"],
        "vacuum_into": ["VACUUM INTO '{f}'"],
        "unknown_pragma": ["PRAGMA wal_checkpoint"],
        "bracket_hides_nothing": ["SELECT [a;b] FROM (SELECT 1 AS [a;b]); DROP TABLE {t}"],
        "replace_into": ["REPLACE INTO {t} VALUES (1)"],
    },
    "duckdb": {
        "copy_to_file": ["COPY {t} TO '{f}'"],
        "copy_query_to_file": ["COPY (SELECT * FROM {t}) TO '{f}'"],
        "attach_creates_file": ["ATTACH '{f}' AS other"],
        "detach": ["DETACH DATABASE IF EXISTS other"],
        "temp_table": ["CREATE TEMP TABLE scratch (id INTEGER)"],
        "export_database": ["EXPORT DATABASE '{f}'"],
        "install": ["INSTALL httpfs"],
        "load": ["LOAD httpfs"],
        "set": ["SET threads = 1"],
        "checkpoint": ["CHECKPOINT"],
        "pragma_setting": ["PRAGMA enable_profiling"],
        "begin_transaction": ["BEGIN TRANSACTION", "INSERT INTO {t} VALUES (2)"],
    },
}


def _attacks(backend: str) -> dict[str, list[str]]:
    attacks = dict(COMMON)
    if backend in ("postgresql", "mariadb"):
        attacks.update(SERVER)
    attacks.update(PER_BACKEND[backend])
    return attacks


CASES = [
    pytest.param(backend, name, id=f"{backend}-{name}")
    for backend in BACKENDS
    for name in _attacks(backend)
]


@dataclass
class Target:
    """A table with one row, a writable Database on it, and files that must stay absent."""

    backend: str
    url: str
    table: str
    file: Path
    writer: Database
    reopen: bool  # DuckDB: a process opens a file read-write or read-only, never both
    tables_before: set[str] = field(default_factory=set)

    def sql(self, statement: str) -> str:
        return statement.format(t=self.table, f=self.file)

    def reader(self) -> Database:
        """A Database with readonly = true on the same data."""
        if self.reopen:
            self.writer.close()
        name = f"ro_{self.backend}_{uuid.uuid4().hex[:6]}"
        return Database(DatabaseConfig(name=name, url=self.url, readonly=True))

    def checker(self) -> Database:
        if self.reopen and self.writer.closed:
            self.writer = Database(DatabaseConfig(name="check", url=self.url))
        return self.writer

    def tables(self) -> set[str]:
        with self.checker().connect() as conn:
            return set(inspect(conn).get_table_names())

    def assert_unchanged(self) -> None:
        db = self.checker()
        with db.connect() as conn:
            ids = conn.execute(text(f"SELECT id FROM {self.table}")).scalars().all()
        assert ids == [1], f"rows of {self.table} changed: {ids}"
        assert self.tables() == self.tables_before
        assert not self.file.exists(), f"{self.file} was written"


def _url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    if backend == "mariadb":
        return str(request.getfixturevalue("mysql_url")).replace("mysql://", "mariadb://", 1)
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return f"duckdb:///{tmp_path / 'app.duckdb'}"


def _make_target(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Target]:
    url = _url(request, backend, tmp_path)
    table = f"victim_{uuid.uuid4().hex[:8]}"
    writer = Database(DatabaseConfig(name=f"w_{backend}", url=url))
    with writer.session() as s:
        s.execute(text(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)"))
        s.execute(text(f"INSERT INTO {table} VALUES (1)"))
    # A path the server can write too (MariaDB's INTO OUTFILE runs as the server's user).
    out = Path("/tmp") / f"dbwire-ro-{uuid.uuid4().hex}" if backend == "mariadb" else None
    target = Target(
        backend=backend,
        url=url,
        table=table,
        file=out or tmp_path / "escaped.out",
        writer=writer,
        reopen=backend == "duckdb",
    )
    target.tables_before = target.tables()
    yield target
    db = target.checker()
    with db.session() as s:
        for name in target.tables() - (target.tables_before - {table}):
            s.execute(text(f"DROP TABLE {name}"))
    db.close()


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from _make_target(request, request.param, tmp_path)


def _assert_refused(info: pytest.ExceptionInfo[ReadOnlyError], db: Database) -> None:
    message = str(info.value)
    assert f"database {db.name!r} is read-only: refused" in message
    assert "before it reached the server" in message
    assert info.value.database == db.name


def _attack_sync(target: Target, mode: str, statements: list[str]) -> None:
    db = target.writer if mode in ("session", "connect") else target.reader()
    try:
        if mode == "execute_query":
            for statement in statements:
                with pytest.raises(ReadOnlyError) as info:
                    db.execute_query(target.sql(statement))
                _assert_refused(info, db)
        elif mode == "connect":
            with db.connect(readonly=True) as conn:
                for statement in statements:
                    with pytest.raises(ReadOnlyError) as info:
                        conn.execute(text(target.sql(statement)))
                    _assert_refused(info, db)
                conn.commit()
        else:
            with db.session(readonly=mode == "session") as s:
                for statement in statements:
                    with pytest.raises(ReadOnlyError) as info:
                        s.execute(text(target.sql(statement)))
                    _assert_refused(info, db)
    finally:
        if db is not target.writer:
            db.close()


async def _attack_async(target: Target, mode: str, statements: list[str]) -> None:
    db = target.writer if mode in ("session", "connect") else target.reader()
    try:
        if mode == "execute_query":
            for statement in statements:
                with pytest.raises(ReadOnlyError) as info:
                    await db.async_execute_query(target.sql(statement))
                _assert_refused(info, db)
        elif mode == "connect":
            async with db.async_connect(readonly=True) as conn:
                for statement in statements:
                    with pytest.raises(ReadOnlyError) as info:
                        await conn.execute(text(target.sql(statement)))
                    _assert_refused(info, db)
                await conn.commit()
        else:
            async with db.async_session(readonly=mode == "session") as s:
                for statement in statements:
                    with pytest.raises(ReadOnlyError) as info:
                        await s.execute(text(target.sql(statement)))
                    _assert_refused(info, db)
    finally:
        await db.async_engine.dispose()
        if db is not target.writer:
            db.close()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("target", "attack"), CASES, indirect=["target"])
def test_attack_is_refused_and_changes_nothing(target: Target, attack: str, mode: str) -> None:
    _attack_sync(target, mode, _attacks(target.backend)[attack])
    target.assert_unchanged()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("target", "attack"), CASES, indirect=["target"])
def test_async_attack_is_refused_and_changes_nothing(
    target: Target, attack: str, mode: str
) -> None:
    asyncio.run(_attack_async(target, mode, _attacks(target.backend)[attack]))
    target.assert_unchanged()


# -- layer 1: the database's own mechanism, with the guard out of the way --------------------


def _raw(conn: Any, statement: str) -> None:
    """Send a statement through the DBAPI cursor, where the guard does not look."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


# backend -> statements sent raw after which a write must still be refused by the server
LAYER1_READONLY_DATABASE = {
    "postgresql": ["COMMIT"],
    "mariadb": ["COMMIT"],
    "sqlite": ["PRAGMA query_only=0"],
    "duckdb": ["COMMIT"],
}


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_readonly_database_refuses_writes_sent_behind_the_guard(target: Target) -> None:
    """COMMIT then a write, on the raw cursor of a readonly = true database: the login's
    session default (PostgreSQL, MariaDB) or the read-only open (SQLite, DuckDB) holds."""
    reader = target.reader()
    try:
        with reader.connect() as conn:
            conn.execute(text("SELECT 1"))
            for statement in LAYER1_READONLY_DATABASE[target.backend]:
                try:
                    _raw(conn, statement)
                except Exception as exc:  # SQLite's authorizer refuses the PRAGMA itself
                    assert reader.backend.is_readonly_violation(exc), exc
            with pytest.raises(Exception) as info:
                _raw(conn, target.sql("INSERT INTO {t} VALUES (2)"))
            assert reader.backend.is_readonly_violation(info.value), info.value
    finally:
        reader.close()
    target.assert_unchanged()


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_readonly_database_refuses_ddl_sent_behind_the_guard(target: Target) -> None:
    """MariaDB's DDL commits implicitly; on a readonly = true database the next
    transaction is read-only too, so the server refuses the DDL itself."""
    reader = target.reader()
    try:
        for statement in ("CREATE TABLE {t}_new (id INTEGER)", "DROP TABLE {t}"):
            with reader.connect() as conn:
                conn.execute(text("SELECT 1"))
                with pytest.raises(Exception) as info:
                    _raw(conn, target.sql(statement))
                assert reader.backend.is_readonly_violation(info.value), info.value
    finally:
        reader.close()
    target.assert_unchanged()


@pytest.mark.parametrize("target", ["postgresql", "mariadb"], indirect=True)
def test_readonly_transaction_cannot_be_switched_to_read_write(target: Target) -> None:
    """In a read-only session the transaction is already running read-only when the first
    statement arrives, so the server refuses SET TRANSACTION READ WRITE itself."""
    with target.writer.connect(readonly=True) as conn:
        conn.execute(text("SELECT 1"))  # begins the read-only transaction
        with pytest.raises(Exception) as info:
            _raw(conn, "SET TRANSACTION READ WRITE")
        assert "read-write" in str(info.value).lower() or "transaction" in str(info.value)
    target.assert_unchanged()


@pytest.mark.parametrize("statement", ["ATTACH DATABASE '{f}' AS other", "VACUUM INTO '{f}'"])
@pytest.mark.parametrize("readonly_database", [True, False], ids=["database", "session"])
@pytest.mark.parametrize("target", ["sqlite"], indirect=True)
def test_sqlite_authorizer_stops_files_behind_the_guard(
    target: Target, readonly_database: bool, statement: str
) -> None:
    """query_only and mode=ro guard the main file only: ATTACH would create (and write)
    another. SQLite's authorizer refuses it at prepare time."""
    db = target.reader() if readonly_database else target.writer
    try:
        with db.connect(readonly=not readonly_database) as conn:
            conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.DatabaseError, match=r"not authorized|authorization denied"):
                _raw(conn, target.sql(statement))
    finally:
        if readonly_database:
            db.close()
    target.assert_unchanged()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_data_modifying_cte_is_refused_by_postgresql_itself(target: Target) -> None:
    """Behind the guard, PostgreSQL's read-only transaction stops a DELETE inside WITH."""
    with target.writer.connect(readonly=True) as conn:
        conn.execute(text("SELECT 1"))
        with pytest.raises(Exception) as info:
            _raw(conn, target.sql("WITH d AS (DELETE FROM {t} RETURNING id) SELECT * FROM d"))
        assert target.writer.backend.is_readonly_violation(info.value)
    target.assert_unchanged()


# -- ordinary reads still run ------------------------------------------------------------------

READS: dict[str, list[str]] = {
    "common": [
        "SELECT id FROM {t}",
        "  \n\tSELECT id FROM {t}",
        "-- a comment\nSELECT id FROM {t}",
        "/* a comment */ SELECT id FROM {t};",
        "WITH x AS (SELECT id FROM {t}) SELECT id FROM x",
        "SELECT 'a;b' AS s, id FROM {t}",
        'SELECT id AS "odd;name" FROM {t}',
        "SELECT count(*) FROM {t} WHERE id = 1 -- ; DROP TABLE {t}",
        "EXPLAIN SELECT id FROM {t}",
    ],
    "postgresql": [
        "(SELECT id FROM {t})",
        "VALUES (1)",
        "TABLE {t}",
        "SHOW transaction_read_only",
        "SELECT $$a;b$$ AS s",
        "SELECT E'it\\'s; fine' AS s",
        "/* nested /* comment */ still */ SELECT 1",
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id FROM {t}",
        "SELECT pg_advisory_xact_lock(7)",
    ],
    "mariadb": [
        "(SELECT id FROM {t})",
        "VALUES (1)",
        "SHOW TABLES",
        "DESCRIBE {t}",
        "DESC {t}",
        "SELECT 'it''s; fine', 'back\\slash' AS s",
        "SELECT 1 # a hash comment ; DROP",
        "SELECT 1 -- a comment ; DROP",
    ],
    "sqlite": [
        "VALUES (1)",
        "PRAGMA table_info({t})",
        "PRAGMA main.table_info('{t}')",
        "PRAGMA query_only",
        "SELECT [id] FROM [{t}]",
    ],
    "duckdb": [
        "(SELECT id FROM {t})",
        "VALUES (1)",
        "SHOW TABLES",
        "DESCRIBE {t}",
        "SUMMARIZE {t}",
        "FROM {t}",
        "PRAGMA table_info('{t}')",
        "SELECT $$a;b$$ AS s",
    ],
}

READ_CASES = [
    pytest.param(backend, statement, id=f"{backend}-{index}")
    for backend in BACKENDS
    for index, statement in enumerate(READS["common"] + READS[backend])
]


@pytest.mark.parametrize(("target", "statement"), READ_CASES, indirect=["target"])
def test_ordinary_reads_still_run(target: Target, statement: str) -> None:
    sql = target.sql(statement)
    with target.writer.session(readonly=True) as s:
        s.execute(text(sql)).all()
    with target.writer.connect(readonly=True) as conn:
        conn.execute(text(sql)).all()

    async def run_async() -> None:
        async with target.writer.async_session(readonly=True) as s:
            (await s.execute(text(sql))).all()
        await target.writer.async_engine.dispose()

    asyncio.run(run_async())
    reader = target.reader()
    try:
        reader.execute_query(sql)
    finally:
        reader.close()
    target.assert_unchanged()


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_orm_reflection_savepoints_and_health_work_read_only(target: Target) -> None:
    class Base(DeclarativeBase):
        pass

    class Victim(Base):
        __tablename__ = target.table
        id: Mapped[int] = mapped_column(primary_key=True)

    with target.writer.session(readonly=True) as s:
        assert s.get(Victim, 1) is not None
        if target.backend != "duckdb":  # DuckDB has no savepoints
            with s.begin_nested():
                assert s.query(Victim).count() == 1
    with target.writer.connect(readonly=True) as conn:
        assert target.table in inspect(conn).get_table_names()
    reader = target.reader()
    try:
        assert target.table in {t.name for t in reader.get_schema()}
        assert target.table in reader.metadata.tables
        assert reader.health_check().healthy, reader.health_check().error
        assert reader.execute_query(target.sql("SELECT id FROM {t}"))[1] == [{"id": 1}]
    finally:
        reader.close()
    target.assert_unchanged()


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_readonly_session_leaves_the_pool_writable(target: Target) -> None:
    with pytest.raises(ReadOnlyError), target.writer.session(readonly=True) as s:
        s.execute(text(target.sql("COMMIT")))
    with target.writer.session() as s:
        s.execute(text(target.sql("INSERT INTO {t} VALUES (2)")))
    with target.writer.session() as s:
        s.execute(text(target.sql("DELETE FROM {t} WHERE id = 2")))
    target.assert_unchanged()


@pytest.mark.parametrize("target", BACKENDS, indirect=True)
def test_driver_sql_and_orm_connection_paths_are_guarded_too(target: Target) -> None:
    """exec_driver_sql() and the ORM session's own Connection go through the same cursor
    hook as text()."""
    attack = target.sql("COMMIT; INSERT INTO {t} VALUES (2)")
    with target.writer.connect(readonly=True) as conn:
        with pytest.raises(ReadOnlyError) as info:
            conn.exec_driver_sql(attack)
        _assert_refused(info, target.writer)
    with target.writer.session(readonly=True) as s:
        with pytest.raises(ReadOnlyError) as info:
            s.connection().exec_driver_sql(target.sql("DELETE FROM {t}"))
        _assert_refused(info, target.writer)
    target.assert_unchanged()


def test_refusal_names_no_secret_from_the_statement() -> None:
    with pytest.raises(ReadOnlyError) as info:
        readonly_guard.check_statement("SELECT 1; 'hunter2'", database="db", dialect="postgresql")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ReadOnlyError) as info:
        readonly_guard.check_statement(
            "ALTER ROLE app PASSWORD 'hunter2'", database="db", dialect="postgresql"
        )
    assert "hunter2" not in str(info.value) and "refused ALTER" in str(info.value)


# -- the classifier, fuzzed ---------------------------------------------------------------------

_PIECES = [
    "SELECT", "select", "WITH", "VALUES", "SHOW", "EXPLAIN", "DESCRIBE", "PRAGMA", "FROM",
    "INSERT", "DELETE", "UPDATE", "INTO", "DROP", "COMMIT", "ROLLBACK", "SET", "ATTACH",
    "COPY", "TO", "FOR", "query_only", "table_info", "set_config", "x", "1",
    " ", "\n", "\t", ";", "(", ")", "'", '"', "`", "[", "]", "$$", "$a$", "E'", "\\",
    "--", "-- ", "#", "/*", "*/", "/*!", "=", ",", ".", "é",
]  # fmt: skip
_READ_STARTS = [
    "SELECT ", "select 1", "WITH x AS (SELECT 1) SELECT ", "EXPLAIN SELECT ", "VALUES (1)",
    "/* c */ SELECT ", "-- c\nSELECT ", "(SELECT ", "SHOW ", "PRAGMA table_info(x)", "FROM x",
    "SELECT 'a;b'", "SELECT $$;$$", "SELECT 1 ",
]  # fmt: skip
_SQL = st.one_of(
    st.lists(st.sampled_from(_PIECES), max_size=14).map("".join),
    st.text(max_size=40),
    # Reads with something after them: most of these pass the guard, so the oracles
    # below see many allowed strings, not only the refused ones.
    st.tuples(st.sampled_from(_READ_STARTS), st.lists(st.sampled_from(_PIECES), max_size=8)).map(
        lambda parts: parts[0] + "".join(parts[1])
    ),
)
_DIALECTS = ["postgresql", "mysql", "mariadb", "sqlite", "duckdb", "oracle"]


def _first_keyword(sql: str, dialect: str) -> str | None:
    """An independent reading of the first keyword: skip blanks, comments and '('."""
    nested = dialect in ("postgresql", "duckdb", "oracle")
    i, n = 0, len(sql)
    while i < n:
        if sql[i] in " \t\n\r\f\v(":
            i += 1
        elif sql.startswith("--", i) or (sql[i] == "#" and dialect in ("mysql", "mariadb")):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if nested and sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    word = []
    while i < n and (sql[i].isalnum() or sql[i] == "_"):
        word.append(sql[i])
        i += 1
    return "".join(word).upper() or None


_SAVEPOINTS = {"SAVEPOINT", "RELEASE", "ROLLBACK"}  # ROLLBACK only as ROLLBACK ... TO
_ALLOWED_FIRST = {
    "postgresql": {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"} | _SAVEPOINTS,
    "mysql": {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"}
    | _SAVEPOINTS,
    "sqlite": {"SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA"} | _SAVEPOINTS,
    "duckdb": {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC"}
    | {"PRAGMA", "SUMMARIZE", "FROM"}
    | _SAVEPOINTS,
    "oracle": {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"} | _SAVEPOINTS,
}
_ALLOWED_FIRST["mariadb"] = _ALLOWED_FIRST["mysql"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sql=_SQL, dialect=st.sampled_from(_DIALECTS))
def test_guard_raises_only_readonly_error_and_allows_only_reads(sql: str, dialect: str) -> None:
    try:
        readonly_guard.check_statement(sql, database="fuzz", dialect=dialect)
    except ReadOnlyError as exc:
        assert "fuzz" in str(exc)
        return
    first = _first_keyword(sql, dialect)
    assert first in _ALLOWED_FIRST[dialect], (sql, dialect, first)
    if first == "ROLLBACK":
        assert " TO " in f" {sql.upper()} ".replace("\n", " ")


@settings(max_examples=800, deadline=None)
@given(sql=_SQL)
@example(sql="SELECT 0;;")  # an empty second statement: sqlite3 refuses it, so does the guard
def test_what_the_guard_allows_sqlite_itself_parses_as_one_read(sql: str) -> None:
    """SQLite's own parser and authorizer as the oracle: an allowed string is one
    statement that asks for nothing but reads."""
    try:
        readonly_guard.check_statement(sql, database="fuzz", dialect="sqlite")
    except ReadOnlyError:
        return
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE x (x INTEGER)")
    actions: list[int] = []
    read_actions = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
    read_actions |= {sqlite3.SQLITE_PRAGMA, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}

    def authorizer(action: int, *_args: Any) -> int:
        actions.append(action)
        return sqlite3.SQLITE_OK

    conn.set_authorizer(authorizer)
    try:
        conn.execute(sql)
    except sqlite3.ProgrammingError as exc:
        assert "one statement" not in str(exc), sql
    except sqlite3.Error:
        pass  # not valid SQL: the server would refuse it anyway
    finally:
        conn.close()
    assert set(actions) <= read_actions, (sql, actions)


@settings(max_examples=800, deadline=None)
@given(sql=_SQL)
def test_what_the_guard_allows_duckdb_itself_parses_as_one_read(sql: str) -> None:
    try:
        readonly_guard.check_statement(sql, database="fuzz", dialect="duckdb")
    except ReadOnlyError:
        return
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return  # not valid SQL: DuckDB would refuse it anyway
    reads = {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
    }
    assert len(statements) <= 1, sql
    assert all(s.type in reads for s in statements), (sql, [s.type for s in statements])


# -- dbwire check: can the login of a read-only database write? -------------------------------


@pytest.fixture
def select_only_logins(
    pg_server: DatabaseServer, mysql_server: DatabaseServer, pg_url: str, mysql_url: str
) -> Iterator[dict[str, str]]:
    """A PostgreSQL and a MariaDB login that may only SELECT one table; their URLs."""
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    role, database, password = f"reader_{suffix}", f"ro_{suffix}", f"pw{suffix}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    pg_server.run_sql_admin(f"CREATE DATABASE {database}")
    # PUBLIC may connect and create temp tables by default: take that away, give CONNECT.
    pg_server.run_sql_admin(f"REVOKE ALL ON DATABASE {database} FROM PUBLIC")
    pg_server.run_sql_admin(f"GRANT CONNECT ON DATABASE {database} TO {role}")
    admin = urlsplit(pg_server.admin_url)
    with psycopg.connect(admin._replace(path=f"/{database}").geturl(), autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute("CREATE TABLE facts (id INTEGER)")
        conn.execute(f"GRANT SELECT ON facts TO {role}")
    pg = urlsplit(pg_url)
    pg_reader = pg._replace(
        netloc=f"{role}:{password}@{pg.hostname}:{pg.port}", path=f"/{database}"
    ).geturl()

    my = urlsplit(mysql_url)
    my_db = my.path.lstrip("/")
    hosts = ("%", "127.0.0.1", "localhost")
    mysql_server.run_sql_admin(f"CREATE TABLE `{my_db}`.facts_{suffix} (id INTEGER)")
    for host in hosts:
        mysql_server.run_sql_admin(f"CREATE USER '{role}'@'{host}' IDENTIFIED BY '{password}'")
        mysql_server.run_sql_admin(f"GRANT SELECT ON `{my_db}`.facts_{suffix} TO '{role}'@'{host}'")
    maria_reader = my._replace(
        scheme="mariadb", netloc=f"{role}:{password}@{my.hostname}:{my.port}"
    ).geturl()
    yield {"pg_reader": pg_reader, "maria_reader": maria_reader}
    for host in hosts:
        mysql_server.run_sql_admin(f"DROP USER '{role}'@'{host}'")
    mysql_server.run_sql_admin(f"DROP TABLE `{my_db}`.facts_{suffix}")
    pg_server.run_sql_admin(f"DROP DATABASE {database} WITH (FORCE)")
    pg_server.run_sql_admin(f"DROP ROLE {role}")


def test_login_can_write_tells_privileges_from_transaction_only(
    select_only_logins: dict[str, str], pg_url: str, mysql_url: str, tmp_path: Path
) -> None:
    sqlite_file, duckdb_file = tmp_path / "a.db", tmp_path / "b.duckdb"
    sqlite3.connect(sqlite_file).execute("CREATE TABLE t (id INTEGER)").connection.close()
    duckdb.connect(str(duckdb_file)).execute("CREATE TABLE t (id INTEGER)").close()
    maria_url = mysql_url.replace("mysql://", "mariadb://", 1)
    expected = {
        "pg_writer": (pg_url, True),
        "pg_reader": (select_only_logins["pg_reader"], False),
        "maria_writer": (maria_url, True),
        "maria_reader": (select_only_logins["maria_reader"], False),
        "sqlite_ro": (f"sqlite:///{sqlite_file}", False),
        "duckdb_ro": (f"duckdb:///{duckdb_file}", False),
    }
    for name, (url, can_write) in expected.items():
        db = Database(DatabaseConfig(name=name, url=url, readonly=True))
        try:
            assert db.login_can_write() is can_write, name
        finally:
            db.close()
    writable = Database(DatabaseConfig(name="rw", url=f"sqlite:///{sqlite_file}"))
    try:
        assert writable.login_can_write() is True
    finally:
        writable.close()

    config = tmp_path / "dbwire.toml"
    lines = []
    for name, (url, _) in expected.items():
        lines += [f"[databases.{name}]", f'url = "{url}"', "readonly = true", ""]
    lines += ["[databases.rw]", f'url = "sqlite:///{tmp_path / "rw.db"}"']
    config.write_text("\n".join(lines))
    as_json = CliRunner().invoke(app, ["check", "--config", str(config), "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert {name: entry["readonly"] for name, entry in report.items()} == {
        "pg_writer": "transaction only",
        "pg_reader": "privileges",
        "maria_writer": "transaction only",
        "maria_reader": "privileges",
        "sqlite_ro": "privileges",
        "duckdb_ro": "privileges",
        "rw": None,
    }
    table = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert table.exit_code == 0, table.output
    rows = {line.split("│")[1].strip(): line for line in table.stdout.splitlines() if "│" in line}
    assert "read-only" in table.stdout.splitlines()[2]
    assert "by transaction only" in rows["pg_writer"]
    assert "by privileges" in rows["pg_reader"] and "by privileges" in rows["maria_reader"]
    assert "by " not in rows["rw"]
    for url, _ in expected.values():
        password = urlsplit(url).password
        assert not password or password not in as_json.stdout + table.stdout


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sql=_SQL)
def test_what_the_guard_allows_postgresql_itself_runs_as_one_read(
    pg_server: DatabaseServer, sql: str
) -> None:
    """PostgreSQL as the oracle: an allowed string, sent with the simple query protocol
    (which runs every statement in it), yields one result of a read and never trips the
    read-only transaction."""
    import psycopg

    try:
        readonly_guard.check_statement(sql, database="fuzz", dialect="postgresql")
    except ReadOnlyError:
        return
    with psycopg.connect(pg_server.url) as conn:
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL statement_timeout = 2000")
        cursor = conn.cursor()
        try:
            cursor.execute(sql.encode())  # bytes: no placeholder parsing, as the driver sends it
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            pytest.fail(f"the guard allowed a write: {sql!r} ({exc})")
        except (psycopg.Error, ValueError):
            return  # not valid SQL here: PostgreSQL refuses it anyway
        tags = [cursor.pgresult.command_status if cursor.pgresult else None]
        while cursor.nextset():
            tags.append(cursor.pgresult.command_status if cursor.pgresult else None)
        conn.rollback()
    assert len(tags) == 1, (sql, tags)
    tag = (tags[0] or b"").split(b" ")[0]
    assert tag in {b"SELECT", b"SHOW", b"EXPLAIN", b"SAVEPOINT", b"RELEASE", b"ROLLBACK"}, (
        sql,
        tags,
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sql=_SQL)
@example(sql="SELECT 1 --1; DROP TABLE nope")  # '--1' is minus minus one, not a comment
@example(sql="SELECT 'a\\'; DROP TABLE nope; -- '")
@example(sql="SELECT!0;--")  # MariaDB runs a final `--` as one more statement
def test_what_the_guard_allows_mariadb_itself_runs_as_one_read(
    mysql_server: DatabaseServer, sql: str
) -> None:
    """MariaDB as the oracle, with multi-statements switched on and the session read-only:
    an allowed string yields one result and never trips the read-only mode."""
    import pymysql
    from pymysql.constants import CLIENT

    try:
        readonly_guard.check_statement(sql, database="fuzz", dialect="mariadb")
    except ReadOnlyError:
        return
    url = urlsplit(mysql_server.url)
    conn = pymysql.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.path.lstrip("/"),
        client_flag=CLIENT.MULTI_STATEMENTS,
    )
    results = 0
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SET SESSION max_statement_time = 2")
            try:
                cursor.execute(sql)
                results = 1
                while cursor.nextset():
                    results += 1
            except pymysql.err.MySQLError as exc:
                assert exc.args[0] not in (1792, 1290), f"the guard allowed a write: {sql!r}"
                if results == 0:
                    return  # the first statement is not valid SQL: MariaDB refuses it anyway
                raise
    finally:
        conn.close()
    assert results == 1, (sql, results)
