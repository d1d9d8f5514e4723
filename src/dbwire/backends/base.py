"""The Backend base class: what dbwire needs to know about one kind of database."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from dbwire.backends._query import (
    QueryKey,
    check_connect_args,
    check_hosts,
    check_no_nul,
    check_query,
)
from dbwire.config import DatabaseConfig
from dbwire.errors import MASK, ConfigError, MissingDependencyError, is_secret_key
from dbwire.url import parse_url, query_secrets, without_secrets
from dbwire.url_type import URL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, ExceptionContext

    from dbwire.credentials.providers import CredentialCache, LoginTarget
    from dbwire.types import DuckDBAttach, TableSchema


#: What a backend's direct async fetch returns: the column names and the rows as dicts.
DirectResult = tuple[list[str], list[dict[str, Any]]]
#: fetch(dbapi_connection, statement, args): one statement awaited on the async driver
#: itself, under SQLAlchemy's adapted DBAPI connection (see Backend.direct_fetcher).
DirectFetch = Callable[[Any, str, Any], Awaitable[DirectResult]]


def read_cursor(cursor: Any, statement: str, args: Any, *, with_args: bool) -> DirectResult:
    """Run statement on a DBAPI cursor and read (columns, rows as dicts); closes the cursor.

    with_args False runs the statement alone: DuckDB prepares a statement given even an
    empty parameter list (+40 us on SELECT 1); a driver whose SQL was compiled with `%`
    doubled must be given parameters, or it would send `%%`.
    """
    try:
        if with_args:
            cursor.execute(statement, args)
        else:
            cursor.execute(statement)
        description = cursor.description
        columns = [column[0] for column in description or ()]
        rows = (
            [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            if description is not None
            else []
        )
    finally:
        cursor.close()
    return columns, rows


# Query keys (URL or `options`) that are the login password itself, first wins.
_PASSWORD_KEYS = ("password", "passwd", "pwd")
# connect_args SQLAlchemy's async adapters consume themselves (not the driver's connect()).
_SQLALCHEMY_ASYNC_ARGS = frozenset({"async_creator_fn"})
# Guards the lazy build of each Backend's credential provider.
_CREDENTIALS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ConnectParams:
    """Where and as whom to log in, resolved right now; `sources` says where each came from."""

    host: str | None
    port: int | None
    user: str | None
    database: str | None
    password: SecretStr | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)
    # Other driver settings a native source chose (e.g. sslmode from pg_service.conf).
    options: Mapping[str, str] = field(default_factory=dict)
    # Every (host, port) to try, in order, where the backend takes several; host/port
    # above are the first of them.
    hosts: tuple[tuple[str, int], ...] = ()
    # Set when .pgpass gives the hosts different passwords (or some none): the driver reads
    # this file per host, as libpq does, since a conninfo has room for only one password.
    passfile: str | None = None

    def password_value(self) -> str | None:
        """The password in clear, for a driver's connect() call only."""
        return self.password.get_secret_value() if self.password is not None else None

    def __repr__(self) -> str:
        # options may come from pg_service.conf, sslpassword included: mask by key.
        options = {k: (MASK if is_secret_key(k) else v) for k, v in self.options.items()}
        return (
            f"ConnectParams(host={self.host!r}, port={self.port!r}, user={self.user!r}, "
            f"database={self.database!r}, sources={dict(self.sources)!r}, options={options!r}"
            + (f", hosts={list(self.hosts)!r})" if len(self.hosts) > 1 else ")")
        )


class Backend:
    """One kind of database. A subclass sets the class variables and overrides hooks.

    A Backend instance belongs to one Database: it may hold per-database state
    (the anchor that keeps an in-memory SQLite database alive, for example).
    """

    name: ClassVar[str]
    # How people write the product's name in prose ("SQLite"); the name when unset.
    label: ClassVar[str] = ""
    # SQLAlchemy's dialect name; a plugin subclassing a built-in backend keeps its dialect.
    dialect_name: ClassVar[str]
    schemes: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    sync_driver: ClassVar[str]
    async_driver: ClassVar[str | None] = None
    sync_modules: ClassVar[tuple[str, ...]] = ()
    # Whether `service = "..."` (a pg_service.conf section) means anything to this backend.
    reads_pg_service: ClassVar[bool] = False
    async_modules: ClassVar[tuple[str, ...]] = ()
    default_port: ClassVar[int | None] = None
    is_server: ClassVar[bool] = True
    health_query: ClassVar[str] = "SELECT 1"

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config

    # -- what the drivers accept (checked once, when the Database is built) ----
    def query_keys(self) -> Mapping[str, QueryKey] | None:
        """The URL query keys this backend's drivers take; None leaves them unchecked."""
        return None

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str] | None:
        """The connect_args keys the driver's connect() takes; None leaves them unchecked."""
        return None

    def query_connect_args(self, *, is_async: bool) -> dict[str, Any]:
        """Driver connect() arguments mapped from URL query keys the driver names otherwise."""
        return {}

    def validate(self) -> None:
        """Refuse, before any connect, a config this backend's drivers would choke on.

        Raises ConfigError naming the database, the field and what is accepted.
        """
        url = self.base_url()
        check_no_nul(self.config.name, url)
        self._check_password_sources()
        if self.is_server and url.host:
            check_hosts(self.config.name, url.host.split(","))
        # Only with a query: DuckDB's key list costs importing duckdb.
        keys = self.query_keys() if url.query else None
        if keys is not None:
            check_query(self.config.name, self.label or self.name, url.query, keys)
        given = self.config.connect_args
        if given:
            sides = [self.connect_arg_names(is_async=False)]
            if self.async_driver is not None:
                sides.append(self.connect_arg_names(is_async=True))
            if all(side is not None for side in sides):
                accepted = frozenset().union(*(side or () for side in sides))
                if self.async_driver is not None:
                    accepted |= _SQLALCHEMY_ASYNC_ARGS
                drivers = " or ".join(
                    d for d in (self.sync_driver, self.async_driver) if d is not None
                )
                check_connect_args(self.config.name, f"{drivers} connect()", given, accepted)

    def _validate_side(self, url: URL, *, is_async: bool) -> None:
        """The per-driver half of validate(): keys only the other side's driver takes."""
        keys = self.query_keys() if url.query else None
        if keys is not None:
            check_query(
                self.config.name, self.label or self.name, url.query, keys, is_async=is_async
            )
        names = self.connect_arg_names(is_async=is_async)
        if names is not None and is_async:
            names = names | _SQLALCHEMY_ASYNC_ARGS
        if names is not None and self.config.connect_args:
            driver = self.async_driver if is_async else self.sync_driver
            check_connect_args(
                self.config.name, f"{driver} connect()", self.config.connect_args, names
            )

    # -- drivers ---------------------------------------------------------------
    def require_driver(self, *, is_async: bool) -> None:
        """Import the driver modules, or raise MissingDependencyError naming the extra."""
        modules = self.async_modules if is_async else self.sync_modules
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                kind = "async" if is_async else "sync"
                raise MissingDependencyError(
                    f"database {self.config.name!r}: the {kind} driver for {self.name} "
                    f"({module}) is not installed; run: pip install 'dbwire[{self.extra}]'",
                    database=self.config.name,
                ) from exc

    # -- URLs ------------------------------------------------------------------
    def base_url(self) -> URL:
        """The URL from the config (url field, then host/port/... fields), without a driver."""
        cfg = self.config
        if cfg.url is not None:
            url = parse_url(cfg.url_with_password() or cfg.url, database=cfg.name)
        else:
            url = URL.create(self.name)
        backend_name = url.get_backend_name()
        url = url.set(drivername=backend_name)
        updates: dict[str, Any] = {}
        for name, attr in (("host", "host"), ("port", "port"), ("user", "username")):
            value = getattr(cfg, name)
            if value is not None:
                updates[attr] = value
        if cfg.database is not None:
            updates["database"] = cfg.database
        if updates:
            url = url.set(**updates)
        if cfg.options:
            url = url.update_query_dict(cfg.options)
        if cfg.service is not None:
            if not self.reads_pg_service:
                raise ConfigError(
                    f"database {cfg.name!r}: service = {cfg.service!r} names a pg_service.conf "
                    f"section, which only PostgreSQL reads, not {self.label or self.name}. "
                    "Fix: remove service from this database, or set host, port and database",
                    database=cfg.name,
                )
            url = url.update_query_dict({"service": cfg.service})
        return url

    def resolve_params(self, *, ask_provider: bool = True) -> ConnectParams:
        """Resolve host, port, user, database and password for a new physical connection.

        Called by the engine's do_connect hook for every new connection, so a rotated
        password file, command output or .pgpass line is used without a new engine.
        Backends with native sources (.pgpass, option files) extend this.
        ask_provider=False: see configured_login().
        """
        url = self.base_url()
        password, password_source, secret_user = self.configured_login(ask_provider=ask_provider)
        sources = {
            field: self._field_origin(field) for field in ("host", "port", "user", "database")
        }
        if password_source:
            sources["password"] = password_source
        if secret_user is not None:
            sources["user"] = f"{password_source} (username)"
        return ConnectParams(
            host=url.host,
            port=url.port or self.default_port,
            user=secret_user or url.username,
            database=url.database,
            password=password,
            sources=sources,
        )

    def _field_origin(self, field: str) -> str:
        """Where a host/port/user/database value came from in dbwire's own config."""
        cfg = self.config
        if getattr(cfg, field, None) is not None:
            return cfg.field_source(field)
        return f"url ({cfg.field_source('url')})" if cfg.url is not None else "default"

    def configured_password(self) -> tuple[SecretStr | None, str | None]:
        """The password from dbwire's own sources, highest first, and where it came from.

        Order: the password field, a password inside the URL, then the credential
        provider: password_provider, password_file (read at every new connection) or
        password_command (output cached for its TTL).
        """
        password, source, _user = self.configured_login()
        return password, source

    def configured_login(
        self, *, ask_provider: bool = True
    ) -> tuple[SecretStr | None, str | None, str | None]:
        """configured_password(), and the user name when the provider's secret names one.

        ask_provider=False takes the provider's last cached answer (None without one) and
        never asks it: scrubbing text must not run a command or call a secret store.
        """
        fixed = self._fixed_password()
        if fixed is not None:
            return fixed[0], fixed[1], None
        if ask_provider:
            source = self.credential_source()
            credential = source.get(self.login_target()) if source is not None else None
        else:
            built: CredentialCache | None = getattr(self, "_credentials", None)
            credential = built.peek() if built is not None else None
        if credential is None:
            return None, None, None
        return credential.password, self._credential_label(), credential.username

    def _fixed_password(self) -> tuple[SecretStr, str] | None:
        """The password written in the config or the URL, and where; those come before
        any provider."""
        cfg = self.config
        if cfg.password is not None:
            return cfg.password, f"password ({cfg.field_source('password')})"
        from_url = self.password_from_url()
        if from_url is not None:
            return SecretStr(from_url), f"url ({cfg.field_source('url')})"
        return None

    def login_asks_a_provider(self) -> bool:
        """True if resolving the login now would call the provider (a command, a file, a
        secret store): no password in the config or URL, and no fresh cached answer."""
        if self._fixed_password() is not None:
            return False
        source = self.credential_source()
        return source is not None and source.would_fetch(self.login_target())

    def _credential_label(self) -> str:
        cfg = self.config
        if cfg.password_provider is not None:
            return f"password_provider {cfg.password_provider.get('type')}"
        if cfg.password_file is not None:
            return f"password_file {cfg.password_file}"
        return "password_command"

    def credential_source(self) -> CredentialCache | None:
        """The provider asked at each new connection (behind its TTL cache), built once.

        password_provider names one; password_file and password_command are the file
        and command providers.
        """
        cached: CredentialCache | None = getattr(self, "_credentials", None)
        if cached is not None:
            return cached
        cfg = self.config
        spec: dict[str, Any]
        if cfg.password_provider is not None:
            spec = dict(cfg.password_provider)
        elif cfg.password_file is not None:
            spec = {"type": "file", "path": cfg.password_file, "ttl": 0}
        elif cfg.password_command is not None:
            spec = {
                "type": "command",
                "command": cfg.password_command,
                "ttl": cfg.password_command_ttl,
            }
        else:
            return None
        from dbwire.credentials.providers import build_provider

        with _CREDENTIALS_LOCK:
            cached = getattr(self, "_credentials", None)
            if cached is None:
                problem: str | None = None
                try:
                    cached = build_provider(spec, database=cfg.name)
                except ValueError as exc:  # ConfigError is one too: keep its own message
                    if isinstance(exc, ConfigError):
                        raise ConfigError(
                            f"database {cfg.name!r}: {exc}", database=cfg.name
                        ) from None
                    problem = str(exc)
                if problem is not None:
                    raise ConfigError(
                        f"database {cfg.name!r}: field 'password_provider': {problem}",
                        database=cfg.name,
                    )
                self._credentials = cached
        assert cached is not None
        return cached

    def provider_description(self) -> str | None:
        """The configured password_provider as messages show it (no secret), else None."""
        source: CredentialCache | None = getattr(self, "_credentials", None)
        if self.config.password_provider is None or source is None:
            return None
        return source.provider.describe()

    def login_target(self) -> LoginTarget:
        """Where a provider's password goes: the configured first host, port and user."""
        from dbwire.credentials.providers import LoginTarget

        cfg = self.config
        url = self.base_url()
        query_host = url.query.get("host")
        if isinstance(query_host, tuple):
            query_host = query_host[0] if query_host else None
        host = cfg.host or query_host or url.host
        port = cfg.port or url.port
        if host:
            # A host list signs (or looks up) its first entry; "h1:5433,h2" carries ports.
            first = host.split(",", 1)[0]
            if not first.startswith("/") and first.count(":") == 1:
                first, _, given = first.partition(":")
                port = port or (int(given) if given.isdigit() else None)
            host = first
        environ = cfg.environ if cfg.environ is not None else os.environ
        return LoginTarget(
            database=cfg.name,
            host=host or None,
            port=port or self.default_port,
            user=url.username,
            environ=environ,
        )

    def _check_password_sources(self) -> None:
        cfg = self.config
        if cfg.password_provider is None:
            if cfg.password_file is not None or cfg.password_command is not None:
                self.credential_source()  # a bad command line is a ConfigError now
            return
        others = [
            name
            for name, given in (
                ("password", cfg.password is not None),
                ("password_file", cfg.password_file is not None),
                ("password_command", cfg.password_command is not None),
                ("a password in the URL", self.password_from_url() is not None),
            )
            if given
        ]
        if others:
            raise ConfigError(
                f"database {cfg.name!r}: field 'password_provider' is set together with "
                f"{' and '.join(others)}; keep only one password source",
                database=cfg.name,
            )
        self.credential_source()

    def install_credential_hooks(self, engine: Engine) -> None:
        """Forget the provider's answer when the server rejects a login with it.

        Without this, a wrong (or just rotated) password would be reused until its TTL
        runs out; now the next connection asks the provider again.
        """

        from sqlalchemy import event

        @event.listens_for(engine, "handle_error")
        def _rejected(ctx: ExceptionContext) -> None:
            source: CredentialCache | None = getattr(self, "_credentials", None)
            if source is None or ctx.connection is not None or ctx.is_pre_ping:
                return
            if ctx.original_exception is not None and self.is_auth_failure(ctx.original_exception):
                source.invalidate()

    def apply_params(
        self, cparams: dict[str, Any], params: ConnectParams, *, is_async: bool
    ) -> None:
        """Put resolved parameters into the driver's connect() keyword arguments."""
        password = params.password_value()
        if password is not None:
            cparams[self.password_param(is_async=is_async)] = password

    def password_from_url(self) -> str | None:
        """A password written inside the configured URL, if any."""
        if self.config.url is None and not self.config.options and self.config.service is None:
            return None
        url = self.base_url()
        if url.password is not None:
            return str(url.password)
        query = query_secrets(url)
        return next((query[key] for key in _PASSWORD_KEYS if key in query), None)

    def engine_url(self, *, is_async: bool) -> URL:
        """The URL given to SQLAlchemy: the driver set, the password left out.

        The password is added per physical connection by the do_connect hook, so a
        rotated secret is picked up without rebuilding the engine.
        """
        driver = self.async_driver if is_async else self.sync_driver
        if is_async and driver is None:
            raise MissingDependencyError(
                f"database {self.config.name!r}: the {self.name} backend has no async driver",
                database=self.config.name,
            )
        url = without_secrets(self.base_url())
        self._validate_side(url, is_async=is_async)
        return url.set(drivername=f"{self.dialect_name}+{driver}")

    def password_param(self, *, is_async: bool) -> str:
        """The key under which the DBAPI connect() call takes the password."""
        return "password"

    # -- engines ---------------------------------------------------------------
    def engine_options(self, *, is_async: bool) -> dict[str, Any]:
        """create_engine() keyword arguments: backend defaults, then the config's pool settings."""
        cfg = self.config
        options: dict[str, Any] = {}
        pool = {
            "pool_size": cfg.pool_size,
            "max_overflow": cfg.max_overflow,
            "pool_timeout": cfg.pool_timeout,
            "pool_recycle": cfg.pool_recycle,
            "pool_pre_ping": cfg.pool_pre_ping,
        }
        options.update(self.pool_defaults())
        options.update({k: v for k, v in pool.items() if v is not None})
        options["echo"] = cfg.echo
        connect_args = dict(self.connect_args(is_async=is_async))
        # Secret query keys (?sslpassword=) travel here, not in the engine URL (whose repr
        # and logs would show them); the password itself comes from apply_params().
        secrets = query_secrets(self.base_url())
        connect_args.update({k: v for k, v in secrets.items() if k not in _PASSWORD_KEYS})
        connect_args.update(self.query_connect_args(is_async=is_async))
        connect_args.update(cfg.connect_args)
        if connect_args:
            options["connect_args"] = connect_args
        return options

    def pool_defaults(self) -> dict[str, Any]:
        """Pool settings used when the config leaves them unset (seed 003's defaults)."""
        if not self.is_server:
            return {}
        return {
            "pool_size": 5,
            "max_overflow": 10,
            "pool_timeout": 30.0,
            "pool_recycle": 3600,
            "pool_pre_ping": True,
        }

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        """Driver connect() arguments this backend always passes."""
        return {}

    def configure_engine(self, engine: Engine, *, is_async: bool) -> None:
        """Install backend event hooks on a new (sync, or the sync side of an async) engine."""

    def install_query_hooks(self, engine: Engine, *, is_async: bool) -> None:
        """Engine hooks that enforce what the URL's query keys promise (e.g. TLS required)."""

    def close(self) -> None:
        """Release per-database resources (called when the Database closes)."""

    def attachable_file(self) -> str:
        """The absolute path of an embedded database's file, for DuckDB to attach.

        An in-memory database lives inside its own connections and cannot be attached.
        """
        from pathlib import Path

        from dbwire.errors import DbwireError

        raw = self.base_url().database or ""
        if raw in ("", ":memory:"):
            kind = self.label or self.name
            raise DbwireError(
                f"database {self.config.name!r}: an in-memory {kind} database lives inside "
                "its own connection and cannot be attached to a DuckDB store; use a file "
                "database, or copy its tables with store.collect()",
                database=self.config.name,
            )
        if raw.startswith("file:"):
            raw = raw.removeprefix("file:").split("?", 1)[0]
        return str(Path(raw).expanduser().resolve())

    def health_statement(self) -> str:
        """The statement a health check runs when the config sets no health_query."""
        return self.health_query

    def set_autocommit(self, driver_connection: Any, on: bool) -> bool:
        """Switch a driver connection's autocommit without a round trip, if the driver can.

        Returns False when it cannot (execute_query then takes SQLAlchemy Core's path).
        """
        return False

    def direct_fetcher(self) -> DirectFetch | None:
        """async_execute_query's driver call, awaited in the event loop with no greenlet.

        It gets the pooled adapted DBAPI connection, the statement compiled for the async
        dialect and its arguments, and runs the statement in autocommit; it raises the
        errors of the adapted DBAPI module (what SQLAlchemy's adapter would raise) and,
        where the driver runs the statement in a thread, stops it there when cancelled.
        None: the statement goes through SQLAlchemy's adapter inside greenlet_spawn.
        """
        return None

    #: True when switching autocommit costs a round trip (MySQL's SET autocommit) or
    #: driver work (psycopg's and asyncpg's setters): the one-round-trip path then leaves
    #: it on, and the next checkout for anything else switches it off again
    #: (dbwire.pool.PoolHooks.autocommit_off).
    autocommit_sticks: ClassVar[bool] = False

    #: True when cancelling the async driver's own call stops the statement on the server
    #: too (asyncpg sends a cancel request; the embedded backends' direct fetches interrupt
    #: their thread). False: a dropped connection alone leaves the statement running until
    #: the server notices, so async_execute_query stops it with cancel() first.
    async_cancel_stops_statement: ClassVar[bool] = True

    def cancel(self, driver_connection: Any, engine: Engine) -> bool:
        """Stop the statement running on driver_connection; called from another thread.

        `engine` is the database's engine, for a backend that cancels from a second session.
        Returns False when this driver cannot: the caller then drops the session, and the
        server ends the statement's work when it sees the connection go.
        """
        interrupt = getattr(driver_connection, "interrupt", None)
        if callable(interrupt):
            interrupt()  # sqlite3 and DuckDB stop the running statement
            return True
        return False

    def socket_fileno(self, dbapi_connection: Any) -> int | None:
        """The file descriptor of a new connection's socket, or None (no socket).

        dbwire's pre-ping polls it at each checkout (pool.install_idle_ping): readable or
        hung up while idle means the server closed it, so the connection is pinged; no
        round trip otherwise.
        """
        return None

    def create_database(self, params: ConnectParams) -> bool:
        """Create the configured database when it does not exist; True if it was created.

        Embedded backends create their file on first connect, so the default does nothing.
        """
        return False

    def database_exists(self, params: ConnectParams) -> bool:
        """True when the configured database exists on the server."""
        raise self._no_server_databases("database_exists")

    def drop_database(self, params: ConnectParams) -> bool:
        """Drop the configured database when it exists; True if it was dropped."""
        raise self._no_server_databases("drop_database")

    def copy_tables(self, params: ConnectParams, target: str) -> None:
        """Copy every table of the configured database, rows included, into the existing
        database `target` on the same server (for a fresh test database per worker)."""
        raise ConfigError(
            f"database {self.config.name!r}: the {self.name} backend cannot copy a database; "
            "Fix: set dbwire_fresh_database = false, or create the test database yourself",
            database=self.config.name,
        )

    def _no_server_databases(self, what: str) -> ConfigError:
        return ConfigError(
            f"database {self.config.name!r}: {what}() is for server databases (PostgreSQL, "
            f"MySQL/MariaDB); the {self.name} backend keeps its data in a file or in memory: "
            "remove the file yourself",
            database=self.config.name,
        )

    # -- read-only -------------------------------------------------------------
    #: True when a `readonly = true` database is read-only for every statement of every
    #: connection, autocommit included (a session-level mechanism), so execute_query may
    #: take its one-round-trip path.
    readonly_in_autocommit: ClassVar[bool] = False

    def begin_readonly(self, dbapi_connection: Any) -> None:
        """Make the transaction that is about to begin read-only, enforced by the database."""
        raise NotImplementedError

    def end_readonly(self, dbapi_connection: Any) -> None:
        """Undo connection-level read-only state when the connection returns to the pool."""

    def is_readonly_violation(self, exc: BaseException) -> bool:
        """True when exc is the database refusing a write because of read-only mode."""
        return False

    def login_can_write(self, connection: Connection) -> bool | None:
        """Whether the login (or the opened file) could write if it sent the SQL itself.

        True: it holds some write privilege, so read-only holds only as far as dbwire's
        transaction mode and statement guard do. False: privileges (or the OS) forbid
        writes. None: this backend cannot tell.
        """
        return None

    def is_auth_failure(self, exc: BaseException) -> bool:
        """True when exc is the server rejecting the login."""
        return False

    def connect_fix(self, exc: BaseException) -> str | None:
        """The fix for a failed connect when this backend knows its cause (a missing
        database, access denied); None leaves the generic hint."""
        return None

    # -- the local DuckDB store and engine-less backends (DuckDB store issue) ---
    #: False for a backend without a SQLAlchemy engine (s3): Database sends execute_query()
    #: and get_schema() to the backend's own methods below.
    has_engine: ClassVar[bool] = True

    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """How a LocalStore attaches this database: extensions, secret and ATTACH target."""
        from dbwire.errors import DbwireError

        raise DbwireError(
            f"database {self.config.name!r}: the {self.name} backend cannot be attached to "
            "a DuckDB store; copy its data with store.collect() instead",
            database=self.config.name,
        )

    def execute_query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Run a query without SQLAlchemy; only backends with has_engine = False implement it."""
        raise NotImplementedError

    def get_schema(self) -> list[TableSchema] | None:
        """The backend's own schema listing, or None to use SQLAlchemy's inspector."""
        return None

    # -- what the store and the schema reader ask instead of switching on dialect names --
    #: Schemas that belong to the server, not to the application; None: the backend has
    #: one namespace (SQLite's main database), reflected as it is.
    system_schemas: ClassVar[frozenset[str] | None] = None
    #: Prefixes of server-owned schema names (PostgreSQL's pg_toast*, pg_temp*).
    system_schema_prefixes: ClassVar[tuple[str, ...]] = ("pg_toast", "pg_temp")
    #: True where the configured database is the one schema to reflect (MySQL, MariaDB).
    database_is_schema: ClassVar[bool] = False
    #: False where SQLAlchemy's inspector cannot reflect this backend and the schema
    #: reader uses the database's own catalog (DuckDB under SQLAlchemy 2.1).
    inspector_reflects: ClassVar[bool] = True
    #: DuckDB's table function that runs SQL on an attached catalog of this backend
    #: (postgres_query, mysql_query); None: DuckDB copies whole tables only.
    duckdb_query_function: ClassVar[str | None] = None
    #: connectorx's URL scheme and identifier quote for this backend; None: not readable by it.
    connectorx_scheme: ClassVar[str | None] = None
    connectorx_quote: ClassVar[str] = '"'
    #: True where connectorx beats DuckDB's own reader (MySQL, MariaDB), when installed.
    prefers_connectorx: ClassVar[bool] = False
    #: True for a file DuckDB reads itself (SQLite, DuckDB): when this process already
    #: holds the file open, collect() reads it through the engine instead.
    duckdb_reads_file: ClassVar[bool] = False

    def connectorx_tls(self, params: ConnectParams | None) -> tuple[dict[str, str], str | None]:
        """connectorx URL parameters carrying this database's TLS settings, and, when its
        driver cannot carry them exactly, why not (then collect() must read another way).

        `params` is the resolved login where the settings come from it (PostgreSQL).
        """
        return {}, None

    def collect_method(self, is_table: bool, connectorx_installed: bool) -> str:
        """The fastest way store.collect() reads this backend: duckdb, connectorx or sqlalchemy."""
        if self.prefers_connectorx and connectorx_installed:
            return "connectorx"
        if not self.has_engine or self.duckdb_query_function is not None:
            return "duckdb"
        if self.duckdb_reads_file and is_table:
            return "duckdb"
        return "sqlalchemy"

    def duckdb_source(self, query_or_table: str) -> str | None:
        """SQL DuckDB runs to read this source without an attached catalog; None: attach it."""
        return None

    def duckdb_io_error(self, exc: BaseException) -> BaseException | None:
        """The error to raise for a DuckDB IO error reading this source; None: re-raise it."""
        return None
