"""TableSchema and get_schema(): the tables and views of a database with their columns."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.engine.reflection import ObjectKind

from dbwire.types import ColumnSchema, ForeignKeySchema, TableSchema

if TYPE_CHECKING:
    from dbwire.backends.base import Backend
    from dbwire.target import Target

logger = logging.getLogger("dbwire")


def get_schema(db: Target) -> list[TableSchema]:
    """Every table and view of the database's application schemas, with columns.

    PostgreSQL: all schemas but pg_catalog, information_schema, pg_toast* and pg_temp*.
    MySQL/MariaDB: the configured database (all non-system ones when none is configured).
    SQLite: the main database. Backends without a SQLAlchemy engine (s3) list their own.
    """
    own = db.backend.get_schema()
    if own is not None:
        return own
    with db.connect() as conn:
        return reflect(conn, db.backend)


async def async_get_schema(db: Target) -> list[TableSchema]:
    """The async twin of get_schema()."""
    if not db.backend.has_engine:
        return await asyncio.to_thread(get_schema, db)
    backend = db.backend
    async with db.async_connect() as conn:
        return await conn.run_sync(lambda sync_conn: reflect(sync_conn, backend))


def _application_schemas(inspector: Inspector, backend: Backend) -> list[str | None]:
    """The schemas to reflect, as the backend describes its namespaces."""
    default = inspector.default_schema_name
    if backend.database_is_schema and default:
        return [default]
    system = backend.system_schemas
    if system is None:
        return [None]
    names = inspector.get_schema_names()
    return [
        name
        for name in names
        if name not in system and not name.startswith(backend.system_schema_prefixes)
    ]


def reflect(conn: Connection, backend: Backend) -> list[TableSchema]:
    """TableSchema for every table and view the connection's inspector reports."""
    if not backend.inspector_reflects:
        return _reflect_duckdb(conn)
    inspector = inspect(conn)
    server_types = _server_types(conn, conn.dialect.name)
    found: list[TableSchema] = []
    for schema in _application_schemas(inspector, backend):
        shown = schema if schema is not None else inspector.default_schema_name
        for kind, object_kind in (("table", ObjectKind.TABLE), ("view", ObjectKind.ANY_VIEW)):
            columns = _columns(inspector, schema, kind, object_kind)
            keys = _keys(inspector, schema, list(columns)) if kind == "table" else {}
            for table, cols in sorted(columns.items()):
                primary, foreign = keys.get(table, ((), ()))
                found.append(
                    TableSchema(
                        name=table,
                        schema=shown,
                        columns=tuple(
                            ColumnSchema(
                                name=col["name"],
                                type=server_types.get((shown, table, col["name"]))
                                or _type_name(col["type"], conn),
                                nullable=bool(col.get("nullable", True)),
                                default=_default(col.get("default")),
                                primary_key=col["name"] in primary,
                            )
                            for col in cols
                        ),
                        kind=kind,
                        foreign_keys=tuple(
                            ForeignKeySchema(
                                column=column,
                                referenced_schema=fk.get("referred_schema") or shown,
                                referenced_table=fk["referred_table"],
                                referenced_column=referenced,
                            )
                            for fk in foreign
                            for column, referenced in zip(
                                fk["constrained_columns"], fk["referred_columns"], strict=False
                            )
                        ),
                    )
                )
    return found


def _default(value: Any) -> str | None:
    return None if value is None else str(value)


# The server's own spelling of every column type (SQLAlchemy's generic names drop details
# such as PostgreSQL's `with time zone` spelling or MySQL's `unsigned`).
_SERVER_TYPES: dict[str, str] = {
    "postgresql": (
        "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
        "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ),
    "mysql": (
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')"
    ),
}


def _server_types(conn: Connection, dialect: str) -> dict[tuple[str | None, str, str], str]:
    from sqlalchemy import text

    sql = _SERVER_TYPES.get("mysql" if dialect == "mariadb" else dialect)
    if sql is None:
        return {}
    return {(s, t, c): str(type_) for s, t, c, type_ in conn.execute(text(sql))}


def _pk_columns(constraint: Any) -> list[str]:
    return list((constraint or {}).get("constrained_columns") or ())


_Keys = dict[str, tuple[tuple[str, ...], tuple[Any, ...]]]


def _keys(inspector: Inspector, schema: str | None, tables: list[str]) -> _Keys:
    """Primary-key columns and foreign keys of each table: batched where the dialect can."""
    try:
        pks = inspector.get_multi_pk_constraint(schema=schema, kind=ObjectKind.TABLE)
        fks = inspector.get_multi_foreign_keys(schema=schema, kind=ObjectKind.TABLE)
        return {
            table: (
                tuple(_pk_columns(pks.get((schema, table)))),
                tuple(fks.get((schema, table)) or ()),
            )
            for table in tables
        }
    except NotImplementedError:
        pass
    return {
        table: (
            tuple(
                inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or ()
            ),
            tuple(inspector.get_foreign_keys(table, schema=schema)),
        )
        for table in tables
    }


def _reflect_duckdb(conn: Connection) -> list[TableSchema]:
    """DuckDB's own catalog: duckdb-engine's inspector queries PostgreSQL catalog tables
    (pg_collation) that DuckDB does not have, under SQLAlchemy 2.1."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT c.schema_name, c.table_name, c.column_name, c.data_type, c.is_nullable, "
            "v.view_name IS NOT NULL AS is_view, c.column_default "
            "FROM duckdb_columns() c LEFT JOIN duckdb_views() v "
            "ON v.database_name = c.database_name AND v.schema_name = c.schema_name "
            "AND v.view_name = c.table_name "
            "WHERE c.database_name = current_database() AND NOT c.internal "
            "AND c.schema_name NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY is_view, c.schema_name, c.table_name, c.column_index"
        )
    ).all()
    constraints = conn.execute(
        text(
            "SELECT schema_name, table_name, constraint_type, constraint_column_names, "
            "referenced_table, referenced_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() "
            "AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
        )
    ).all()
    primary: dict[tuple[str, str], set[str]] = {}
    foreign: dict[tuple[str, str], list[ForeignKeySchema]] = {}
    for schema, table, kind, columns, referenced_table, referenced_columns in constraints:
        if kind == "PRIMARY KEY":
            primary.setdefault((schema, table), set()).update(columns)
            continue
        # DuckDB refuses foreign keys across schemas: the referenced table is in this one.
        foreign.setdefault((schema, table), []).extend(
            ForeignKeySchema(column, schema, referenced_table, referenced)
            for column, referenced in zip(columns, referenced_columns, strict=False)
        )
    grouped: dict[tuple[bool, str, str], list[ColumnSchema]] = {}
    for schema, table, column, type_, nullable, is_view, default in rows:
        grouped.setdefault((bool(is_view), schema, table), []).append(
            ColumnSchema(
                name=column,
                type=str(type_),
                nullable=bool(nullable),
                default=_default(default),
                primary_key=column in primary.get((schema, table), ()),
            )
        )
    return [
        TableSchema(
            name=t,
            schema=s,
            columns=tuple(cols),
            kind="view" if v else "table",
            foreign_keys=tuple(foreign.get((s, t), ())),
        )
        for (v, s, t), cols in grouped.items()
    ]


def _columns(
    inspector: Inspector, schema: str | None, kind: str, object_kind: ObjectKind
) -> dict[str, list[Any]]:
    """Columns of every table (or view) of a schema: one query where the dialect can."""
    try:
        multi = inspector.get_multi_columns(schema=schema, kind=object_kind)
        return {table: list(cols) for (_, table), cols in multi.items()}
    except Exception as exc:
        # duckdb-engine inherits PostgreSQL's batched reflection, which queries catalog
        # tables DuckDB lacks (pg_collation); one query per table works everywhere.
        logger.debug("batched reflection failed (%s); reflecting table by table", exc)
    names = (
        inspector.get_table_names(schema=schema)
        if kind == "table"
        else inspector.get_view_names(schema=schema)
    )
    return {name: list(inspector.get_columns(name, schema=schema)) for name in names}


def _type_name(type_: Any, conn: Connection) -> str:
    try:
        return str(type_.compile(dialect=conn.dialect))
    except Exception:  # a type the dialect cannot render (NullType): show SQLAlchemy's name
        return repr(type_)
