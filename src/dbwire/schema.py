"""TableSchema and get_schema(): the tables and views of a database with their columns."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Inspector
from sqlalchemy.engine.reflection import ObjectKind

from dbwire.types import ColumnSchema, TableSchema

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
    found: list[TableSchema] = []
    for schema in _application_schemas(inspector, backend):
        shown = schema if schema is not None else inspector.default_schema_name
        for kind, object_kind in (("table", ObjectKind.TABLE), ("view", ObjectKind.ANY_VIEW)):
            columns = _columns(inspector, schema, kind, object_kind)
            for table, cols in sorted(columns.items()):
                found.append(
                    TableSchema(
                        name=table,
                        schema=shown,
                        columns=tuple(
                            ColumnSchema(
                                name=col["name"],
                                type=_type_name(col["type"], conn),
                                nullable=bool(col.get("nullable", True)),
                            )
                            for col in cols
                        ),
                        kind=kind,
                    )
                )
    return found


def _reflect_duckdb(conn: Connection) -> list[TableSchema]:
    """DuckDB's own catalog: duckdb-engine's inspector queries PostgreSQL catalog tables
    (pg_collation) that DuckDB does not have, under SQLAlchemy 2.1."""
    from sqlalchemy import text

    rows = conn.execute(
        text(
            "SELECT c.schema_name, c.table_name, c.column_name, c.data_type, c.is_nullable, "
            "v.view_name IS NOT NULL AS is_view "
            "FROM duckdb_columns() c LEFT JOIN duckdb_views() v "
            "ON v.database_name = c.database_name AND v.schema_name = c.schema_name "
            "AND v.view_name = c.table_name "
            "WHERE c.database_name = current_database() AND NOT c.internal "
            "AND c.schema_name NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY is_view, c.schema_name, c.table_name, c.column_index"
        )
    ).all()
    grouped: dict[tuple[bool, str, str], list[ColumnSchema]] = {}
    for schema, table, column, type_, nullable, is_view in rows:
        grouped.setdefault((bool(is_view), schema, table), []).append(
            ColumnSchema(name=column, type=str(type_), nullable=bool(nullable))
        )
    return [
        TableSchema(name=t, schema=s, columns=tuple(cols), kind="view" if v else "table")
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
