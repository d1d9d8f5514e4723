"""Seed 000's vocabulary: SourceInfo and get_engine(), an engine for a source database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from dbwire.config import validate_database
from dbwire.database import connect
from dbwire.errors import UnknownBackendError

# The dma tool's db_type names, mapped to dbwire backends.
_DB_TYPES = {
    "POSTGRES": "postgresql",
    "POSTGRESQL": "postgresql",
    "MYSQL": "mysql",
    "MARIADB": "mariadb",
    "SQLITE": "sqlite",
    "DUCKDB": "duckdb",
}


@dataclass(frozen=True)
class SourceInfo:
    """Connection parameters of a source database, as the dma tool passes them."""

    db_type: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    hostname: str | None = None
    port: int | None = None


def get_engine(src_info: SourceInfo, database: str | None = None, **overrides: Any) -> Engine:
    """The pooled engine for a source database (one per target per process)."""
    backend = _DB_TYPES.get(src_info.db_type.upper())
    if backend is None:
        raise UnknownBackendError(
            f"unknown db_type {src_info.db_type!r}; known: {', '.join(sorted(_DB_TYPES))}"
        )
    name = overrides.pop("name", f"{backend}-{src_info.hostname or 'local'}-{database or ''}")
    config = validate_database(
        {
            "backend": backend,
            "user": src_info.username,
            "password": SecretStr(src_info.password) if src_info.password else None,
            "host": src_info.hostname,
            "port": src_info.port,
            "database": database,
        },
        name=name,
        origin="SourceInfo",
    )
    return connect(config, **overrides).engine
