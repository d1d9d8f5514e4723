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
from dbwire.types import ColumnSchema, ForeignKeySchema


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
        ColumnSchema("id", "bigint", False, primary_key=True),
        ColumnSchema("note", "text", True),
        ColumnSchema("total", "numeric(10,2)", True),
    )
    view = tables[f"{pg_objects}.big_orders"]
    assert view.kind == "view" and [c.name for c in view.columns] == ["id"]
    assert not any(t.schema in ("pg_catalog", "information_schema") for t in tables.values())
    assert orders.to_dict()["columns"][0] == {
        "name": "id",
        "type": "bigint",
        "nullable": False,
        "default": None,
        "primary_key": True,
    }


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
            ColumnSchema("id", "int(11)", False, primary_key=True),
            ColumnSchema("label", "varchar(10)", False),
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


# -- keys, defaults and the server's own type names ------------------------------------


def _col(table: TableSchema, name: str) -> ColumnSchema:
    return next(c for c in table.columns if c.name == name)


def test_postgres_two_schemas_keys_defaults_and_timestamptz(pg_url: str) -> None:
    a, b = f"sa_{uuid.uuid4().hex[:6]}", f"sb_{uuid.uuid4().hex[:6]}"
    _pg(
        pg_url,
        f"CREATE SCHEMA {a}; CREATE SCHEMA {b}; "
        f"CREATE TABLE {a}.users (id BIGINT PRIMARY KEY, "
        "created timestamptz NOT NULL DEFAULT now(), seen timestamp); "
        f"CREATE TABLE {b}.orders (id INT PRIMARY KEY, status TEXT DEFAULT 'new', "
        f"user_id BIGINT REFERENCES {a}.users(id)); "
        f"CREATE TABLE {b}.lines (order_id INT REFERENCES {b}.orders(id), n INT, "
        "PRIMARY KEY (order_id, n))",
    )
    db = dbwire.connect(pg_url, name="schema_pg_keys")
    try:
        tables = _by_name(db.get_schema())
        users, orders, lines = tables[f"{a}.users"], tables[f"{b}.orders"], tables[f"{b}.lines"]
        assert _col(users, "id") == ColumnSchema("id", "bigint", False, None, True)
        assert _col(users, "created").type == "timestamp with time zone"
        assert _col(users, "created").default == "now()"
        assert not _col(users, "created").primary_key
        assert _col(users, "seen").type == "timestamp without time zone"
        assert _col(orders, "status").default is not None
        assert "'new'" in str(_col(orders, "status").default)
        assert orders.foreign_keys == (ForeignKeySchema("user_id", a, "users", "id"),)
        assert [c.name for c in lines.columns if c.primary_key] == ["order_id", "n"]
        assert lines.foreign_keys == (ForeignKeySchema("order_id", b, "orders", "id"),)
        assert users.foreign_keys == ()
        assert list(orders.to_dict()["foreign_keys"]) == [
            {
                "column": "user_id",
                "referenced_schema": a,
                "referenced_table": "users",
                "referenced_column": "id",
            }
        ]
    finally:
        db.close()
        _pg(pg_url, f"DROP SCHEMA {b} CASCADE; DROP SCHEMA {a} CASCADE")


def test_mariadb_keys_defaults_and_server_types(mysql_url: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    parent, child = f"parent_{suffix}", f"child_{suffix}"
    db = dbwire.connect(mysql_url, name="schema_my_keys")
    try:
        db.execute_query(
            f"CREATE TABLE {parent} (id INT UNSIGNED PRIMARY KEY, "
            "label VARCHAR(10) NOT NULL DEFAULT 'x', at TIMESTAMP NULL)"
        )
        db.execute_query(
            f"CREATE TABLE {child} (id INT PRIMARY KEY, parent_id INT UNSIGNED, "
            f"FOREIGN KEY (parent_id) REFERENCES {parent}(id))"
        )
        database = make_url(mysql_url).database
        tables = _by_name(db.get_schema())
        p, c = tables[f"{database}.{parent}"], tables[f"{database}.{child}"]
        assert _col(p, "id") == ColumnSchema("id", "int(10) unsigned", False, None, True)
        assert _col(p, "label").default is not None and "x" in str(_col(p, "label").default)
        assert _col(p, "at").type == "timestamp"
        assert c.foreign_keys == (ForeignKeySchema("parent_id", database, parent, "id"),)
    finally:
        db.execute_query(f"DROP TABLE IF EXISTS {child}")
        db.execute_query(f"DROP TABLE IF EXISTS {parent}")
        db.close()


def test_sqlite_and_duckdb_keys_and_defaults(tmp_path: Path) -> None:
    ddl = (
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR DEFAULT 'p');"
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))"
    )
    lite_path, duck_path = tmp_path / "k.sqlite", tmp_path / "k.duckdb"
    with sqlite3.connect(lite_path) as conn:
        conn.executescript(ddl)
    with duckdb.connect(str(duck_path)) as conn:
        conn.execute(ddl + "; CREATE TABLE stamps (ts TIMESTAMPTZ DEFAULT now())")
    for url, schema in ((f"sqlite:///{lite_path}", "main"), (f"duckdb:///{duck_path}", "main")):
        db = dbwire.connect(url, name=f"schema_keys_{url.split(':')[0]}")
        try:
            tables = _by_name(db.get_schema())
            parent, child = tables[f"{schema}.parent"], tables[f"{schema}.child"]
            assert _col(parent, "id").primary_key and not _col(parent, "name").primary_key
            assert "p" in str(_col(parent, "name").default)
            assert child.foreign_keys == (ForeignKeySchema("parent_id", schema, "parent", "id"),)
            if url.startswith("duckdb"):
                assert _col(tables["main.stamps"], "ts").type == "TIMESTAMP WITH TIME ZONE"
        finally:
            db.close()
