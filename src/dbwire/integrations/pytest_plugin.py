"""pytest fixtures for applications built on dbwire (loaded through the `pytest11` entry point).

Every fixture is opt-in by name and every option is inert until set, because pytest loads
this module in every run of every project that has dbwire installed. Nothing heavy (SQLAlchemy,
drivers, the Manager) is imported until a fixture is used.

- `dbwire_manager`: the session's Manager (config from `--dbwire-config` / ini `dbwire_config`,
  else dbwire's usual discovery).
- `dbwire_db`: a factory, `dbwire_db("primary")` is that Database; `dbwire_database` is the
  default one (`--dbwire-database` / ini `dbwire_database`, else the only configured one).
- `db_session` / `async_db_session`: a Session on the default database whose every change is
  rolled back after the test, even what the code under test commits.
- ini `dbwire_fresh_database = true`: each database is copied for the test session, one copy
  per xdist worker (`<name>_test_<worker>`: PostgreSQL `CREATE DATABASE ... TEMPLATE`,
  MySQL/MariaDB tables and rows copied, a SQLite file backed up), used instead, and removed at
  the end.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session

    from dbwire.config import Config, DatabaseConfig
    from dbwire.database import Database
    from dbwire.manager import Manager

try:
    # pytest-asyncio is already imported by pytest when installed, so this costs nothing;
    # its decorator makes the async fixture work in its strict mode as well as in auto mode.
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # pragma: no cover - without pytest-asyncio no async test runs anyway
    _async_fixture = pytest.fixture

# PostgreSQL cuts identifiers at 63 bytes; the suffix must survive the cut.
_PG_NAME_LIMIT = 63
# How long to wait for the template to be free of other sessions (another worker cloning it).
_TEMPLATE_BUSY_SECONDS = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbwire", "dbwire database fixtures")
    group.addoption(
        "--dbwire-config",
        dest="dbwire_config",
        default=None,
        help="dbwire.toml for the dbwire fixtures (default: dbwire's usual discovery)",
    )
    group.addoption(
        "--dbwire-database",
        dest="dbwire_database",
        default=None,
        help="the database name db_session and dbwire_database use",
    )
    parser.addini("dbwire_config", "dbwire.toml for the dbwire fixtures", default="")
    parser.addini("dbwire_database", "the database name db_session uses", default="")
    parser.addini(
        "dbwire_fresh_database",
        "clone each PostgreSQL database from itself as template for the test session",
        type="bool",
        default=False,
    )


def _setting(config: pytest.Config, name: str) -> str | None:
    """A command-line option first, then the ini value; None when neither is set."""
    value = config.getoption(name, default=None) or config.getini(name)
    return str(value) if value else None


def worker_id() -> str:
    """The pytest-xdist worker id (gw0, gw1, ...), or 'main' without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


def fresh_name(template: str, worker: str) -> str:
    """The name of the session's clone of `template` for one worker, within 63 bytes."""
    suffix = f"_test_{worker}"
    head = template.encode()[: _PG_NAME_LIMIT - len(suffix.encode())]
    return head.decode(errors="ignore") + suffix


class _FreshDatabases:
    """The copies made for this test session (a database per worker), removed by drop_all().

    PostgreSQL clones with CREATE DATABASE ... TEMPLATE; MySQL/MariaDB, which has no
    templates, gets a new database with each table's structure and rows copied; a SQLite file
    is copied with SQLite's backup API. Anything else is used as configured, with a warning.
    """

    def __init__(self) -> None:
        self.made: list[DatabaseConfig] = []
        self.files: list[Path] = []

    def clone(self, cfg: DatabaseConfig) -> DatabaseConfig | None:
        """A copy of cfg pointing at a fresh copy of its database; None when there is no way."""
        backend = _backend_name(cfg)
        if backend == "sqlite":
            return self._copy_sqlite(cfg)
        if backend not in ("postgresql", "mysql"):
            return None
        from dbwire.database import Database

        with Database(cfg) as source:
            params = source.connect_params()
            template = params.database or ""
            fresh_cfg = cfg.model_copy(update={"database": fresh_name(template, worker_id())})
            with Database(fresh_cfg) as fresh:
                # A leftover of a run that was killed before its teardown.
                fresh.drop_database()
                name = fresh.connect_params().database or ""
                if backend == "postgresql":
                    _create_from_template(source, template, name)
                else:
                    fresh.create_database()
                    self.made.append(fresh_cfg)
                    source.backend.copy_tables(params, name)
                    return fresh_cfg
        self.made.append(fresh_cfg)
        return fresh_cfg

    def _copy_sqlite(self, cfg: DatabaseConfig) -> DatabaseConfig | None:
        import sqlite3
        import tempfile

        from sqlalchemy.engine import make_url

        database = make_url(cfg.url or "sqlite://").database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            return None  # nothing on disk to copy (an in-memory database is fresh anyway)
        source = Path(database).expanduser()
        folder = Path(tempfile.mkdtemp(prefix="dbwire-fresh-"))
        target = folder / f"{source.stem}_test_{worker_id()}{source.suffix}"
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        self.files.append(folder)
        return cfg.model_copy(update={"url": f"sqlite:///{target}"})

    def drop_all(self) -> None:
        import shutil

        from dbwire.database import Database

        while self.made:
            with Database(self.made.pop()) as fresh:
                fresh.drop_database()
        while self.files:
            shutil.rmtree(self.files.pop(), ignore_errors=True)


def _create_from_template(source: Database, template: str, name: str) -> None:
    """CREATE DATABASE name TEMPLATE template, waiting (bounded) while the template is busy."""
    from psycopg import errors, sql

    from dbwire.errors import ConnectError

    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template)
    )
    deadline = time.monotonic() + _TEMPLATE_BUSY_SECONDS
    backend: Any = source.backend
    while True:
        try:
            with backend._maintenance(source.connect_params()) as conn:
                conn.execute(statement)
            return
        except errors.ObjectInUse:
            # Another session is connected to the template (e.g. another worker's clone in
            # progress); PostgreSQL refuses rather than waits, so wait here, bounded.
            if time.monotonic() > deadline:
                raise ConnectError(
                    f"database {source.name!r}: could not clone {template!r} into {name!r}: "
                    f"the template stayed in use for {_TEMPLATE_BUSY_SECONDS:.0f} s. Fix: close "
                    "other connections to it while the tests start, or set "
                    "dbwire_fresh_database = false",
                    database=source.name,
                ) from None
            time.sleep(0.1)
        except Exception as exc:
            source._scrub_chain(exc)
            raise ConnectError(
                f"database {source.name!r}: could not create {name!r} from template "
                f"{template!r}: {source._driver_detail(exc)}. Fix: the user needs CREATEDB, or "
                "set dbwire_fresh_database = false",
                database=source.name,
            ) from None


@pytest.fixture(scope="session")
def dbwire_config(pytestconfig: pytest.Config) -> Config:
    """The dbwire Config of the test session (`--dbwire-config` / ini, else discovery)."""
    from dbwire.config import load_config

    path: str | None = pytestconfig.getoption("dbwire_config", default=None)
    if not path and pytestconfig.getini("dbwire_config"):
        # An ini path is relative to the ini file, as pytest's own ini paths are.
        base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
        path = str(base / str(pytestconfig.getini("dbwire_config")))
    return load_config(path)


@pytest.fixture(scope="session")
def dbwire_manager(pytestconfig: pytest.Config, dbwire_config: Config) -> Iterator[Manager]:
    """The session's Manager; with `dbwire_fresh_database = true`, over fresh clones."""
    from dbwire.manager import Manager

    config = dbwire_config
    fresh = _FreshDatabases()
    try:
        if pytestconfig.getini("dbwire_fresh_database"):
            databases = dict(config.databases)
            for name, cfg in databases.items():
                copy = fresh.clone(cfg)
                if copy is not None:
                    databases[name] = copy
                else:
                    warnings.warn(
                        f"dbwire_fresh_database: database {name!r} ({_backend_name(cfg)}) "
                        "cannot be copied (PostgreSQL, MySQL/MariaDB and SQLite files can); "
                        "the tests use it as configured",
                        stacklevel=1,
                    )
            config = config.model_copy(update={"databases": databases})
        manager = Manager(config)
        try:
            yield manager
        finally:
            manager.close_all()
    finally:
        fresh.drop_all()


def _backend_name(cfg: DatabaseConfig) -> str:
    from dbwire.database import Database

    with Database(cfg) as db:
        return str(db.backend.name)


@pytest.fixture(scope="session")
def dbwire_db(dbwire_manager: Manager) -> Callable[[str], Database]:
    """A factory: `dbwire_db("primary")` is the session's Database of that name."""
    return dbwire_manager.db


@pytest.fixture(scope="session")
def dbwire_database(pytestconfig: pytest.Config, dbwire_manager: Manager) -> Database:
    """The default Database: `--dbwire-database` / ini, else the only one configured."""
    from dbwire.errors import ConfigError

    name = _setting(pytestconfig, "dbwire_database")
    if name is None:
        names = dbwire_manager.list_databases()
        if len(names) != 1:
            raise ConfigError(
                f"dbwire pytest plugin: {len(names)} databases are configured "
                f"({', '.join(names) or 'none'}) and field 'dbwire_database' is not set. Fix: "
                "set dbwire_database = NAME in the pytest ini, or pass --dbwire-database NAME"
            )
        name = names[0]
    return dbwire_manager.db(name)


def _begin_outer(connection: Connection) -> Callable[[Connection], None]:
    """Prepare a connection for the outer transaction; returns what undoes the preparation.

    pysqlite (and aiosqlite over it) begins transactions lazily and on its own terms, which
    breaks SAVEPOINT; SQLAlchemy's documented fix is the driver's autocommit mode plus an
    explicit BEGIN. It is set per connection here, so the engine itself stays as configured.
    """
    if connection.dialect.name != "sqlite":
        return lambda _connection: None
    raw: Any = connection.connection.dbapi_connection
    before = raw.isolation_level
    # Set while no transaction is open: pysqlite commits an open one when this changes.
    raw.isolation_level = None

    def restore(conn: Connection) -> None:
        raw_now: Any = conn.connection.dbapi_connection
        raw_now.isolation_level = before

    return restore


def _emit_begin(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")


@pytest.fixture
def db_session(dbwire_database: Database) -> Iterator[Session]:
    """A Session rolled back after the test, including everything the test commits.

    The session joins an outer transaction of its own connection through SAVEPOINTs
    (SQLAlchemy's `join_transaction_mode="create_savepoint"`): commit() releases a savepoint,
    rollback() returns to it, and the outer transaction is rolled back at teardown.
    """
    connection = dbwire_database.engine.connect()
    try:
        restore = _begin_outer(connection)
        outer = connection.begin()
        _emit_begin(connection)
        session = dbwire_database.Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            if outer.is_active:
                outer.rollback()
            restore(connection)
    finally:
        connection.close()


@_async_fixture
async def async_db_session(dbwire_database: Database) -> AsyncIterator[AsyncSession]:
    """The async twin of db_session (needs pytest-asyncio)."""
    connection = await dbwire_database.async_engine.connect()
    try:
        # The same preparation as db_session, run on the sync face of the connection.
        restore = await connection.run_sync(_begin_outer)
        outer = await connection.begin()
        await connection.run_sync(_emit_begin)
        session = dbwire_database.AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint"
        )
        try:
            yield session
        finally:
            await session.close()
            if outer.is_active:
                await outer.rollback()
            await connection.run_sync(restore)
    finally:
        await connection.close()
