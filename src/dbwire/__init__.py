"""dbwire: one place for every database connection of an application."""

from dbwire.backends import Backend, register_backend
from dbwire.config import Config, DatabaseConfig, load_config
from dbwire.database import Database, connect
from dbwire.errors import (
    ConfigError,
    ConnectError,
    CredentialsError,
    DatabaseClosedError,
    DbwireError,
    MissingDependencyError,
    PoolTimeoutError,
    ReadOnlyError,
    UnknownBackendError,
    UnknownDatabaseError,
)
from dbwire.health import HealthResult, PoolStatus
from dbwire.local import LocalStore, get_duckdb_connection
from dbwire.manager import Manager
from dbwire.migrate import migrate, seed
from dbwire.observe import QueryStats
from dbwire.schema import TableSchema
from dbwire.sources import SourceInfo, get_engine

__version__ = "0.1.0"

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
