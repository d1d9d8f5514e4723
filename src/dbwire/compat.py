"""Drop-in names of the in-house designs dbwire replaces: adopting dbwire is an import change.

Each shim is a thin layer over `Database` and `Manager`; the databases it hands out
come from the same registry as `dbwire.connect()`.

```python
from dbwire.compat import SourceInfo, get_engine, get_duckdb_connection   # dma
from dbwire.compat import DatabaseConnection, session_scope  # dm-dbcore
from dbwire.compat import DatabaseManager                    # worker-based apps
from dbwire.compat import PG, Manager                        # appinfra
```
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from dbwire.config import Config, DatabaseConfig, validate_database
from dbwire.database import Database, connect
from dbwire.errors import ConfigError, DbwireError
from dbwire.manager import ConfigSource
from dbwire.manager import Manager as _Manager
from dbwire.sources import SourceInfo, get_engine
from dbwire.store.local import get_duckdb_connection
from dbwire.types import HealthResult, PoolStatus

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
    from sqlalchemy.orm import Session as OrmSession
    from sqlalchemy.orm import sessionmaker

    from dbwire.session_forms import ScopeSession

__all__ = [
    "PG",
    "DatabaseConnection",
    "DatabaseManager",
    "Manager",
    "NotConnectedError",
    "SourceInfo",
    "get_duckdb_connection",
    "get_engine",
    "session_scope",
]


class NotConnectedError(DbwireError, AssertionError):
    """DatabaseConnection() was asked for the existing connection before there was one.

    Also an AssertionError: connection modules written for dm-dbcore catch that to
    decide whether to create the connection.
    """


# -- dm-dbcore ----------------------------------------------------------------------
class DatabaseConnection:
    """dm-dbcore's process-wide connection: `engine`, `metadata`, `Session` of one Database.

    `DatabaseConnection(database_connection_string=url, cache_name=file)` opens (or
    reuses) the Database for url, with its reflected metadata cached in file;
    `DatabaseConnection()` returns the one made last and raises NotConnectedError (an
    AssertionError) while there is none.
    """

    _current: ClassVar[DatabaseConnection | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()
    database: Database

    def __new__(
        cls,
        database_connection_string: str | None = None,
        cache_name: str | None = None,
        **overrides: Any,
    ) -> DatabaseConnection:
        with cls._lock:
            if database_connection_string is None:
                current = cls._current
                if current is None or current.database.closed:
                    raise NotConnectedError(
                        "no DatabaseConnection is open yet; create it first with "
                        "DatabaseConnection(database_connection_string=..., cache_name=...)"
                    )
                return current
            if cache_name is not None:
                overrides["metadata_cache"] = cache_name
            db = connect(database_connection_string, **overrides)
            current = cls._current
            if current is not None and current.database is db:
                return current
            made = super().__new__(cls)
            made.database = db
            cls._current = made
            return made

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy Engine."""
        return self.database.engine

    @property
    def metadata(self) -> MetaData:
        """The reflected MetaData, cached in cache_name when one was given."""
        return self.database.metadata

    @property
    def Session(self) -> sessionmaker[ScopeSession]:
        """The session factory."""
        return self.database.Session

    def get_session(self) -> OrmSession:
        """A new Session the caller must close."""
        return self.database.get_session()

    def close(self) -> None:
        """Close the Database; DatabaseConnection() then raises until a new one is made."""
        self.database.close()

    def __repr__(self) -> str:
        return f"<DatabaseConnection {self.database!r}>"


def session_scope(db: DatabaseConnection | Database) -> AbstractContextManager[OrmSession]:
    """dm-dbcore's transactional scope: commit on success, rollback on error, always closed."""
    database = db.database if isinstance(db, DatabaseConnection) else db
    return database.session()


# -- worker-based applications (a DatabaseManager singleton) ------------------------
class _WorkerClosed:
    """close_worker()'s result: the sync pools are already closed; awaiting it also closes
    this event loop's async pools. Not a coroutine, so nothing warns if it is not awaited.
    """

    def __init__(self, close_async: Callable[[], Awaitable[None]]) -> None:
        self._close_async = close_async

    def __await__(self) -> Generator[Any, None, None]:
        return self._close_async().__await__()


def _no_request_parameters(func: Callable[..., Any]) -> Callable[..., Any]:
    # FastAPI turns every parameter of a dependency into a request parameter; a client
    # must not be able to switch auto_commit off with ?auto_commit=false.
    func.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    )
    return func


class DatabaseManager:
    """One application database for every worker: get_instance(), init/close_worker(),
    and the FastAPI dependencies get_db / get_async_db.

    The database is the configured one called `name` (default "default", which
    DATABASE_URL defines), or the only one configured.
    """

    _instance: ClassVar[DatabaseManager | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        config: ConfigSource | None = None,
        name: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.manager = _Manager(config, environ=environ)
        names = self.manager.list_databases()
        if name is None:
            name = "default" if "default" in names or len(names) != 1 else names[0]
        self.manager.config.database(name)  # UnknownDatabaseError names the configured ones
        self.name = name

    @classmethod
    def get_instance(cls) -> DatabaseManager:
        """The process-wide instance, created on first use (thread-safe)."""
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    @property
    def db(self) -> Database:
        """The Database this manager serves."""
        return self.manager.db(self.name)

    @property
    def engine(self) -> Engine:
        """The sync Engine."""
        return self.db.engine

    @property
    def async_engine(self) -> AsyncEngine:
        """The async Engine of the running event loop."""
        return self.db.async_engine

    def init_worker(self) -> None:
        """First thing in a worker: drop pools inherited from the parent, connect on use."""
        self.manager.init_worker()

    def close_worker(self) -> _WorkerClosed:
        """Close the worker's pooled connections; `await` it to close async pools too."""
        self.manager.close_worker()
        return _WorkerClosed(self.manager.aclose_worker)

    @_no_request_parameters
    def get_db(self, auto_commit: bool = True) -> Iterator[OrmSession]:
        """FastAPI dependency: a Session committed after the endpoint (unless auto_commit
        is False), rolled back if it raises, always closed."""
        with self.db.session(auto_commit=auto_commit) as session:
            yield session

    @_no_request_parameters
    async def get_async_db(self, auto_commit: bool = True) -> AsyncIterator[AsyncSession]:
        """The async twin of get_db()."""
        async with self.db.async_session(auto_commit=auto_commit) as session:
            yield session


# -- appinfra ------------------------------------------------------------------------
def _level_name(level: str | int | None) -> str | None:
    if level is None:
        return None
    return logging.getLevelName(level) if isinstance(level, int) else level.upper()


def _as_config(config: Mapping[str, Any] | DatabaseConfig | str) -> DatabaseConfig:
    if isinstance(config, DatabaseConfig):
        return config
    if isinstance(config, str):
        return validate_database({"url": config}, name="default", origin="PG()")
    if isinstance(config, Mapping):
        fields = dict(config)
        name = str(fields.pop("name", "default"))
        return validate_database(fields, name=name, origin="PG()")
    raise ConfigError(
        f"PG(logger, config): config must be a mapping of database settings, a "
        f"DatabaseConfig or a URL, not {type(config).__name__}"
    )


class PG:
    """appinfra's PostgreSQL interface over a dbwire Database (any backend works).

    `PG(logger, config, query_lg_level="debug")`; config holds the database settings
    (`url`, `readonly`, `pool_size`, ...). Every other Database attribute is reachable too.
    """

    def __init__(
        self,
        lg: logging.Logger | Mapping[str, Any] | DatabaseConfig | str,
        cfg: logging.Logger | Mapping[str, Any] | DatabaseConfig | str | None = None,
        query_lg_level: str | int | None = None,
        *,
        database: Database | None = None,
    ) -> None:
        if database is None:
            if not isinstance(lg, logging.Logger):
                lg, cfg = cfg or logging.getLogger("dbwire"), lg
            if not isinstance(lg, logging.Logger) or cfg is None or isinstance(cfg, logging.Logger):
                raise TypeError("PG(logger, config): give one logging.Logger and one config")
            overrides: dict[str, Any] = {}
            level = _level_name(query_lg_level)
            if level is not None:
                overrides = {"log_queries": True, "query_log_level": level}
            database = connect(_as_config(cfg), logger=lg, **overrides)
        self.db = database
        self.lg = database.logger

    def connect(self) -> Connection:
        """A Core Connection from the pool; close it (or use it in `with`)."""
        return self.db.connect()

    def session(self) -> OrmSession:
        """A new ORM Session: use it in `with` (closed at the end) or commit and close it."""
        return self.db.Session()

    def health_check(self) -> HealthResult:
        """HealthResult(name, status, response_time_ms, error, backend); subscriptable."""
        return self.db.health_check()

    def get_pool_status(self) -> PoolStatus:
        """Size, checked in, checked out and overflow of the pool."""
        return self.db.get_pool_status()

    def migrate(self, *args: Any, **kwargs: Any) -> Any:
        """Alembic upgrade on this database (Database.migrate)."""
        return self.db.migrate(*args, **kwargs)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy Engine."""
        return self.db.engine

    def close(self) -> None:
        """Close the pool; the Database cannot be used again."""
        self.db.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names PG does not define: the rest of the Database API.
        return getattr(self.db, name)

    def __repr__(self) -> str:
        return f"<PG {self.db!r}>"


class Manager:
    """appinfra's Manager: dbwire's Manager whose db(name) is a PG, so the seed's manual
    `session = db.session(); ...; session.close()` works as well as `with db.session()`.

    `Manager(logger, config)` with config `{"dbs": {...}}` or `{"databases": {...}}`.
    """

    def __init__(
        self,
        config: ConfigSource | logging.Logger | None = None,
        logger: ConfigSource | logging.Logger | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        first, second = (logger, config) if isinstance(config, logging.Logger) else (config, logger)
        if isinstance(first, logging.Logger) or not (
            second is None or isinstance(second, logging.Logger)
        ):
            raise TypeError("Manager(logger, config): give one config and one logging.Logger")
        self.manager = _Manager(first, second, environ=environ)

    @property
    def config(self) -> Config:
        """The loaded configuration."""
        return self.manager.config

    def db(self, name: str) -> PG:
        """The database called name, as a PG."""
        return PG(self.manager.logger, database=self.manager.db(name))

    def __getattr__(self, name: str) -> Any:
        # setup(), health_check(), get_stats(), list_databases(), close_all(), errors ...
        return getattr(self.manager, name)

    def __repr__(self) -> str:
        return repr(self.manager)
