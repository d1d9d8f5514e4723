"""Target: what the Database's leaves (health, lifecycle, schema, migrate, translate) need.

A Protocol, so those modules take "something with an engine, a config and a backend"
without importing database.py, and database.py can call them without an import loop.
`dbwire.Database` is the one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
    from sqlalchemy.orm import Session as OrmSession

    from dbwire.backends.base import Backend, ConnectParams
    from dbwire.config import DatabaseConfig

QueryResult = tuple[list[str], list[dict[str, Any]]]


class Target(Protocol):
    """One configured database, as seen by the modules that check, wait on or reflect it."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> DatabaseConfig: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def url(self) -> str: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def async_engine(self) -> AsyncEngine: ...

    def known_secrets(self) -> list[str]: ...

    def connect_params(self) -> ConnectParams: ...

    def execute_query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult: ...

    async def async_execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> QueryResult: ...

    def connect(self, readonly: bool = False) -> Connection: ...

    def async_connect(self, readonly: bool = False) -> AsyncConnection: ...

    def session(
        self, readonly: bool = False, auto_commit: bool = True
    ) -> AbstractContextManager[OrmSession]: ...
