"""The local DuckDB store: LocalStore, attaching databases, collecting into it, offline extensions.

It sits above the Database and the backends: it takes Databases and asks each backend how
it attaches (`Backend.duckdb_attach()`); nothing below imports it.
"""

from __future__ import annotations

from dbwire.store.local import (
    LocalStore,
    StoreSettings,
    get_duckdb_connection,
    resolve_store_path,
)
from dbwire.store.quoting import quote_ident, quote_literal
from dbwire.types import DuckDBAttach

__all__ = [
    "DuckDBAttach",
    "LocalStore",
    "StoreSettings",
    "get_duckdb_connection",
    "quote_ident",
    "quote_literal",
    "resolve_store_path",
]
