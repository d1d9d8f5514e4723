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
    "MissingDependencyError",
    "PoolTimeoutError",
    "ReadOnlyError",
    "SourceInfo",
    "UnknownBackendError",
    "UnknownDatabaseError",
    "connect",
    "get_engine",
    "load_config",
    "register_backend",
]
