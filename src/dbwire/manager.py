"""Manager: many named Databases from one configuration, with setup, health, stats and workers."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, overload

from dbwire import instances, lifecycle
from dbwire.config import Config, DatabaseConfig, load_config, validate_database
from dbwire.database import Database
from dbwire.errors import ConfigError, ConnectError, DbwireError, describe
from dbwire.health import check_many, describe_error
from dbwire.types import UNHEALTHY, HealthResult

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession as OrmAsyncSession
    from sqlalchemy.orm import Session as OrmSession

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | Config


class Manager:
    """The named databases of one configuration.

    Databases are built on first use (or by setup()), engines lazily inside them; one
    Manager may be shared by many threads, and is fork-safe like every Database.

    ```python
    manager = Manager.from_config("dbwire.toml")
    manager.setup()                    # a failing database is recorded in manager.errors
    with manager.db("primary").session() as s: ...
    ```
    """

    @overload
    def __init__(
        self,
        config: ConfigSource | None = None,
        logger: logging.Logger | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        config: logging.Logger,
        logger: ConfigSource | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None: ...

    def __init__(
        self,
        config: ConfigSource | logging.Logger | None = None,
        logger: ConfigSource | logging.Logger | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Load the configuration (a path, a dict with `databases` or `dbs`, or a Config;
        None finds it like load_config()). Seed 003's `Manager(logger, config)` order works too.
        """
        if isinstance(config, logging.Logger) or not (
            logger is None or isinstance(logger, logging.Logger)
        ):
            config, logger = logger, config
        if isinstance(config, logging.Logger) or not (
            logger is None or isinstance(logger, logging.Logger)
        ):
            raise TypeError("Manager(config, logger=None): give one config and one logging.Logger")
        self.name = "manager"
        self.config: Config = config if isinstance(config, Config) else load_config(config, environ)
        self.logger: logging.Logger = logger or logging.getLogger("dbwire")
        #: Databases that failed the last setup(), with the reason.
        self.errors: dict[str, DbwireError] = {}
        self._dbs: dict[str, Database] = {}
        self._build_errors: dict[str, DbwireError] = {}
        self._lock = threading.RLock()
        self._successful_setups = 0
        self._failed_setups = 0
        lifecycle.track(self)

    @classmethod
    def from_config(
        cls,
        config: ConfigSource | None = None,
        logger: logging.Logger | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Manager:
        """A Manager for a config file path, a dict, or a Config (None: find it)."""
        return cls(config, logger, environ=environ)

    # -- lookup ----------------------------------------------------------------
    def list_databases(self) -> list[str]:
        """The configured database names, in configuration order."""
        return list(self.config.databases)

    def db(self, name: str) -> Database:
        """The Database called name; UnknownDatabaseError lists the configured names."""
        found = self._dbs.get(name)
        if found is not None and not found.closed:
            return found
        return self._build(name)

    def __contains__(self, name: object) -> bool:
        return name in self.config.databases

    def __iter__(self) -> Iterator[str]:
        return iter(self.list_databases())

    def _build(self, name: str) -> Database:
        with self._lock:
            found = self._dbs.get(name)
            if found is not None and not found.closed:
                return found
            failed = self._build_errors.get(name)
            if failed is not None:
                raise failed
            config = self.config.database(name)  # UnknownDatabaseError names the known ones
            try:
                # The same Database dbwire.connect() hands out for this target; one closed
                # elsewhere is replaced.
                db = instances.shared(config, lambda c: Database(c, logger=self.logger))
            except DbwireError as exc:
                self._build_errors[name] = exc
                raise
            self._dbs[name] = db
            return db

    def _built_or_error(self) -> dict[str, Database | BaseException]:
        found: dict[str, Database | BaseException] = {}
        for name in self.list_databases():
            try:
                found[name] = self.db(name)
            except DbwireError as exc:
                found[name] = exc
        return found

    def _with_engines(self) -> dict[str, Database | BaseException]:
        """Every database with its sync engine built, one after the other.

        Engines are built here, not in the threads that connect: several threads
        importing one SQLAlchemy dialect at once can fail (the MySQL dialects import each
        other), and building an engine does no I/O.
        """
        found = self._built_or_error()
        for name, db in found.items():
            if isinstance(db, Database):
                try:
                    db.engine  # noqa: B018 - built for its side effect
                except DbwireError as exc:
                    found[name] = exc
        return found

    # -- run-time changes (dbwire serve) -------------------------------------------
    def add_database(self, name: str, config: DatabaseConfig | Mapping[str, Any]) -> Database:
        """Add a database at run time and build it (no connect yet); ConfigError if the name
        is taken or a field is bad. The Database comes from the one shared registry."""
        with self._lock:
            if name in self.config.databases:
                raise ConfigError(
                    f"database {name!r} already exists; remove it first or pick another name",
                    database=name,
                )
            if isinstance(config, DatabaseConfig):
                database = config
                if config.name != name:
                    database = config.model_copy(update={"name": name})
            else:
                database = validate_database(config, name=name, origin="arguments")
            before = self.config
            databases = {**self.config.databases, name: database}
            self.config = self.config.model_copy(update={"databases": databases})
            self._build_errors.pop(name, None)
            try:
                return self.db(name)
            except DbwireError:
                self.config = before  # a database that cannot be built is not added
                self._build_errors.pop(name, None)
                raise

    def remove_database(self, name: str) -> bool:
        """Close a database and forget it; False when no database has that name (idempotent)."""
        with self._lock:
            if name not in self.config.databases:
                return False
            databases = {k: v for k, v in self.config.databases.items() if k != name}
            self.config = self.config.model_copy(update={"databases": databases})
            db = self._dbs.pop(name, None)
            self._build_errors.pop(name, None)
            self.errors.pop(name, None)
        if db is not None:
            db.close()  # also drops it from the shared registry (instances.forget)
        return True

    # -- setup -----------------------------------------------------------------
    def setup(self) -> None:
        """Build and connect every database at once, each with connect_retries and backoff.

        A failure does not stop the others: it is logged and recorded in `errors`.
        """
        outcomes: dict[str, BaseException | None] = {}

        def connect(name: str, db: Database | BaseException) -> None:
            if isinstance(db, BaseException):
                outcomes[name] = db
            else:
                outcomes[name] = lifecycle.connect_with_retries(db)

        threads = [
            threading.Thread(target=connect, args=item, name=f"dbwire-setup-{item[0]}")
            for item in self._with_engines().items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        errors: dict[str, DbwireError] = {}
        for name in self.list_databases():
            error = outcomes.get(name)
            if error is None:
                self.logger.info("database %r: ready", name)
                continue
            errors[name] = self._as_dbwire_error(name, error)
            self.logger.error("database %r: setup failed: %s", name, errors[name])
        with self._lock:
            self.errors = errors
            self._failed_setups = len(errors)
            self._successful_setups = len(outcomes) - len(errors)

    def _as_dbwire_error(self, name: str, error: BaseException) -> DbwireError:
        if isinstance(error, DbwireError):
            return error
        db = self._dbs.get(name)
        detail = describe_error(db, error) if db is not None else describe(error, first_line=True)
        return ConnectError(
            f"database {name!r}: could not connect: {detail}. Fix: check that the server is "
            "running and reachable, or wait for it with manager.wait()",
            database=name,
        )

    def wait(self, timeout: float = 30.0, names: list[str] | None = None) -> dict[str, float]:
        """Wait, for all databases at once, until each accepts connections; seconds per name.

        Raises ConnectError naming every database that was not ready in time.
        """
        targets = names if names is not None else self.list_databases()
        for name in targets:
            self.config.database(name)  # UnknownDatabaseError before anything starts
        built = self._with_engines()
        waited: dict[str, float] = {}
        failed: dict[str, BaseException] = {}

        def wait_one(name: str) -> None:
            db = built[name]
            try:
                if isinstance(db, BaseException):
                    raise db
                waited[name] = db.wait(timeout)
            except Exception as exc:
                failed[name] = exc

        threads = [threading.Thread(target=wait_one, args=(name,)) for name in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failed:
            first = next(iter(failed.values()))
            lines = "; ".join(f"{name}: {failed[name]}" for name in targets if name in failed)
            raise ConnectError(
                f"not ready within {timeout:g}s: {', '.join(sorted(failed))} ({lines})",
                database=next(iter(failed)),
            ) from first
        return waited

    # -- health and stats ------------------------------------------------------
    @overload
    def health_check(
        self, name: None = None, *, timeout: float | None = None
    ) -> dict[str, HealthResult]: ...

    @overload
    def health_check(self, name: str, *, timeout: float | None = None) -> HealthResult: ...

    def health_check(
        self, name: str | None = None, *, timeout: float | None = None
    ) -> dict[str, HealthResult] | HealthResult:
        """Check one database, or all of them concurrently: {name: HealthResult}.

        With one database hanging, all of them answer in about one timeout.
        """
        if name is not None:
            return check_many(self._one(name), timeout)[name]
        return check_many(self._built_or_error(), timeout)

    def _one(self, name: str) -> dict[str, Database | BaseException]:
        self.config.database(name)  # UnknownDatabaseError for a name not configured
        try:
            return {name: self.db(name)}
        except DbwireError as exc:
            return {name: exc}

    async def async_health_check(
        self, name: str | None = None, *, timeout: float | None = None
    ) -> dict[str, HealthResult]:
        """Check databases concurrently through their async engines: {name: HealthResult}."""
        targets = self._one(name) if name is not None else self._built_or_error()

        async def one(key: str, db: Database | BaseException) -> HealthResult:
            if isinstance(db, BaseException):
                return HealthResult(key, UNHEALTHY, 0.0, str(db), None)
            return await db.async_health_check(timeout)

        results = await asyncio.gather(*(one(k, v) for k, v in targets.items()))
        return {result.name: result for result in results}

    def get_stats(self) -> dict[str, Any]:
        """Setup counts and, per database, query counters and pool occupancy."""
        databases: dict[str, Any] = {}
        for name, db in self._built_or_error().items():
            if isinstance(db, BaseException):
                databases[name] = {"error": describe(db)}
                continue
            entry: dict[str, Any] = dict(db.get_stats().as_dict())
            try:
                entry["pool"] = db.get_pool_status().as_dict()
            except DbwireError as exc:
                entry["pool"] = None
                entry["error"] = str(exc)
            databases[name] = entry
        with self._lock:
            return {
                "successful_setups": self._successful_setups,
                "failed_setups": self._failed_setups,
                "errors": {name: str(err) for name, err in self.errors.items()},
                "databases": databases,
            }

    # -- workers and shutdown --------------------------------------------------
    def init_worker(self, *, verify: bool = False) -> None:
        """Call first thing in a worker process: drop pools and counters it may have
        inherited (fork safety does this after os.fork already), and with verify=True
        connect every database as setup() does.
        """
        for db in list(self._dbs.values()):
            db.dispose_pools(close=False)
            db.reset_stats()
        if verify:
            self.setup()

    def close_worker(self) -> None:
        """Call when a worker stops: close its pooled connections (the Databases stay
        usable and reconnect on next use). Async pools are closed by aclose_worker().
        """
        for db in list(self._dbs.values()):
            db.dispose_pools(close=True)

    async def aclose_worker(self) -> None:
        """The async twin of close_worker(): also closes async pools on this event loop."""
        for db in list(self._dbs.values()):
            await db.adispose_pools()

    def close_all(self) -> None:
        """Close every Database; the Manager builds new ones if used again."""
        with self._lock:
            dbs = list(self._dbs.values())
            self._dbs.clear()
            self._build_errors.clear()
        for db in dbs:
            try:
                db.close()
            except Exception as exc:  # one bad close must not leak the others
                self.logger.warning("database %r: close failed: %s", db.name, exc)

    async def aclose_all(self) -> None:
        """Close every Database, async pools on the running event loop."""
        with self._lock:
            dbs = list(self._dbs.values())
            self._dbs.clear()
            self._build_errors.clear()
        for db in dbs:
            await db.aclose()

    # -- FastAPI ---------------------------------------------------------------
    # No parameters but self: FastAPI would turn any into request parameters.
    def default_db(self) -> Database:
        """The database a bare `Depends(manager.get_db)` means: the only one configured,
        or the one called `default` (which DATABASE_URL defines)."""
        names = self.list_databases()
        if len(names) == 1:
            return self.db(names[0])
        if "default" in names:
            return self.db("default")
        raise ConfigError(
            f"Depends(manager.get_db): {len(names)} databases are configured "
            f"({', '.join(names) or 'none'}) and none is called 'default'; name one with "
            "Depends(get_db(manager.db('NAME')))"
        )

    def get_db(self) -> Iterator[OrmSession]:
        """`Depends(manager.get_db)`: a Session of the default database, committed after
        the endpoint, rolled back if it raises (dbwire.integrations.fastapi.get_db)."""
        with self.default_db().session() as session:
            yield session

    async def get_async_db(self) -> AsyncIterator[OrmAsyncSession]:
        """`Depends(manager.get_async_db)`: the async twin of get_db()."""
        async with self.default_db().async_session() as session:
            yield session

    def _after_fork(self) -> None:
        # A parent thread may have held the lock at the moment of fork.
        self._lock = threading.RLock()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()

    def __repr__(self) -> str:
        names = ", ".join(self.list_databases())
        return f"<Manager databases=[{names}] config={self.config.source!r}>"
