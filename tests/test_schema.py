"""get_schema(): application tables and views with their columns, on every SQL backend."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from sqlalchemy.engine import make_url

import dbwire
from dbwire import TableSchema
from dbwire.types import ColumnSchema


def _pg(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture
def pg_objects(pg_url: str) -> Iterator[str]:
    schema = f"sch_{uuid.uuid4().hex[:8]}"
    _pg(
        pg_url,
        f"CREATE SCHEMA {schema}; "
        f"CREATE TABLE {schema}.orders (id BIGINT PRIMARY KEY, note TEXT, total NUMERIC(10,2)); "
        f"CREATE VIEW {schema}.big_orders AS SELECT id FROM {schema}.orders WHERE total > 100",
    )
    yield schema
    _pg(pg_url, f"DROP SCHEMA {schema} CASCADE")


def _by_name(tables: list[TableSchema]) -> dict[str, TableSchema]:
    return {t.qualified_name: t for t in tables}


def test_postgres_lists_every_application_schema(pg_url: str, pg_objects: str) -> None:
    db = dbwire.connect(pg_url, name="schema_pg")
    try:
        tables = _by_name(db.get_schema())
    finally:
        db.close()
    orders = tables[f"{pg_objects}.orders"]
    assert orders.kind == "table"
    assert orders.columns == (
        ColumnSchema("id", "BIGINT", False),
        ColumnSchema("note", "TEXT", True),
        ColumnSchema("total", "NUMERIC(10, 2)", True),
    )
    view = tables[f"{pg_objects}.big_orders"]
    assert view.kind == "view" and [c.name for c in view.columns] == ["id"]
    assert not any(t.schema in ("pg_catalog", "information_schema") for t in tables.values())
    assert orders.to_dict()["columns"][0] == {"name": "id", "type": "BIGINT", "nullable": False}


async def test_async_get_schema_matches_the_sync_one(pg_url: str, pg_objects: str) -> None:
    db = dbwire.connect(pg_url, name="schema_pg_async")
    try:
        found = _by_name(await db.async_get_schema())
        assert found == _by_name(db.get_schema())
        assert f"{pg_objects}.orders" in found
    finally:
        await db.aclose()


def test_mysql_lists_the_configured_database_only(mysql_url: str) -> None:
    table = f"items_{uuid.uuid4().hex[:6]}"
    db = dbwire.connect(mysql_url, name="schema_my")
    try:
        db.execute_query(f"CREATE TABLE {table} (id INT PRIMARY KEY, label VARCHAR(10) NOT NULL)")
        tables = _by_name(db.get_schema())
        database = make_url(mysql_url).database
        assert tables[f"{database}.{table}"].columns == (
            ColumnSchema("id", "INTEGER(11)", False),
            ColumnSchema("label", "VARCHAR(10)", False),
        )
        assert {t.schema for t in tables.values()} == {database}
    finally:
        db.execute_query(f"DROP TABLE {table}")
        db.close()


def test_sqlite_and_duckdb_files(tmp_path: Path) -> None:
    lite_path = tmp_path / "s.sqlite"
    with sqlite3.connect(lite_path) as conn:
        conn.execute("CREATE TABLE a (id INTEGER NOT NULL, name TEXT)")
        conn.execute("CREATE VIEW av AS SELECT name FROM a")
    duck_path = tmp_path / "s.duckdb"
    with duckdb.connect(str(duck_path)) as conn:
        conn.execute("CREATE SCHEMA extra; CREATE TABLE extra.b (x DOUBLE, y VARCHAR)")
        conn.execute("CREATE TABLE main_t (i INTEGER)")
    lite = dbwire.connect(f"sqlite:///{lite_path}", name="schema_lite")
    duck = dbwire.connect(f"duckdb:///{duck_path}", name="schema_duck")
    try:
        lite_tables = _by_name(lite.get_schema())
        assert lite_tables["main.a"].columns == (
            ColumnSchema("id", "INTEGER", False),
            ColumnSchema("name", "TEXT", True),
        )
        assert lite_tables["main.av"].kind == "view"
        duck_tables = duck.get_schema()
        names = {t.name: t for t in duck_tables}
        assert {"b", "main_t"} <= set(names)
        assert [c.type for c in names["b"].columns] == ["DOUBLE", "VARCHAR"]
        assert not any(t.schema == "information_schema" for t in duck_tables)
    finally:
        lite.close()
        duck.close()
