"""dbwire: one place for every database connection of an application.

The names below load on first use (PEP 562): `import dbwire` costs almost nothing, and
a program that only checks health never imports the ORM, DuckDB or the CLI.
"""

import importlib as _importlib
import typing as _typing

from dbwire.errors import (
    ConfigError,
    ConnectError,
    CredentialsError,
    DatabaseClosedError,
    DbwireError,
    MissingDependencyError,
    ReadOnlyError,
    UnknownBackendError,
    UnknownDatabaseError,
)

if _typing.TYPE_CHECKING:
    from dbwire.backends import Backend, register_backend
    from dbwire.config import Config, DatabaseConfig, load_config
    from dbwire.database import Database, connect
    from dbwire.errors import PoolTimeoutError
    from dbwire.manager import Manager
    from dbwire.migrate import migrate
    from dbwire.observe import QueryStats
    from dbwire.seeding import seed
    from dbwire.sources import SourceInfo, get_engine
    from dbwire.store import LocalStore, get_duckdb_connection
    from dbwire.types import HealthResult, PoolHolder, PoolStatus, TableSchema

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Backend": "dbwire.backends",
    "register_backend": "dbwire.backends",
    "Config": "dbwire.config",
    "DatabaseConfig": "dbwire.config",
    "load_config": "dbwire.config",
    "Database": "dbwire.database",
    "connect": "dbwire.database",
    "HealthResult": "dbwire.types",
    "PoolHolder": "dbwire.types",
    "PoolStatus": "dbwire.types",
    "LocalStore": "dbwire.store",
    "get_duckdb_connection": "dbwire.store",
    "Manager": "dbwire.manager",
    "migrate": "dbwire.migrate",
    "seed": "dbwire.seeding",
    "QueryStats": "dbwire.observe",
    "TableSchema": "dbwire.types",
    "SourceInfo": "dbwire.sources",
    "get_engine": "dbwire.sources",
    # its base class is SQLAlchemy's: loading it imports SQLAlchemy
    "PoolTimeoutError": "dbwire.errors",
}


# public submodules reachable as attributes, e.g. dbwire.credentials.resolve_pg(...)
_SUBMODULES = {"backends", "credentials", "integrations", "lifecycle", "migrate"}


def __getattr__(name: str) -> _typing.Any:
    if name in _SUBMODULES:
        return _importlib.import_module(f"dbwire.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dbwire' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = [
    "Backend",
    "Config",
    "ConfigError",
    "ConnectError",
    "CredentialsError",
    "Database",
    "DatabaseClosedError",
    "DatabaseConfig",
    "DbwireError",
    "HealthResult",
    "LocalStore",
    "Manager",
    "MissingDependencyError",
    "PoolHolder",
    "PoolStatus",
    "PoolTimeoutError",
    "QueryStats",
    "ReadOnlyError",
    "SourceInfo",
    "TableSchema",
    "UnknownBackendError",
    "UnknownDatabaseError",
    "connect",
    "get_duckdb_connection",
    "get_engine",
    "load_config",
    "migrate",
    "register_backend",
    "seed",
]
