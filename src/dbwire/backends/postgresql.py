"""The PostgreSQL backend: psycopg 3 (sync) and asyncpg (async)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from dbwire.backends._accepts import (
    PG_ASYNC_ONLY,
    pg_connect_arg_names,
    pg_query_keys,
    pg_server_settings,
)
from dbwire.backends._query import QueryKey, check_hosts
from dbwire.backends.base import Backend, ConnectParams, DirectFetch, DirectResult
from dbwire.errors import ConfigError, is_secret_key
from dbwire.timeouts import bounded_async_connect, connect_timeout, libpq_seconds, open_asyncpg
from dbwire.url_type import URL

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from dbwire.types import DuckDBAttach

# URL query parameters that are libpq keywords; resolve_pg applies them exactly as libpq.
_LIBPQ_QUERY_KEYWORDS = (
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "target_session_attrs",
    "application_name",
    "options",
    "connect_timeout",
    "hostaddr",
    "passfile",
)

# Can the login write anything in this database? Tables of system schemas are left out
# (their privileges are the server's, not the application's).
_PG_CAN_WRITE = """
SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    OR has_database_privilege(current_database(), 'CREATE')
    OR has_database_privilege(current_database(), 'TEMP')
    OR EXISTS (
        SELECT 1 FROM pg_namespace n
        WHERE left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'
          AND has_schema_privilege(n.oid, 'CREATE'))
    OR EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'
          AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
    OR EXISTS (
        SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE left(n.nspname, 3) <> 'pg_' AND n.nspname <> 'information_schema'
          -- CASE: the planner may test a condition before the relkind filter
          AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'UPDATE') END)
"""

# SQLSTATEs: 25006 read_only_sql_transaction; 28P01 invalid_password; 28000 invalid authorization.
_READONLY_SQLSTATE = "25006"
_AUTH_SQLSTATES = {"28P01", "28000"}


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE carried by a psycopg or asyncpg error, however SQLAlchemy wrapped it."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


class PostgresBackend(Backend):
    """PostgreSQL through psycopg 3 and asyncpg; read-only via SET TRANSACTION READ ONLY."""

    name: ClassVar[str] = "postgresql"
    dialect_name: ClassVar[str] = "postgresql"
    label: ClassVar[str] = "PostgreSQL"
    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres", "pg")
    extra: ClassVar[str] = "postgres"
    sync_driver: ClassVar[str] = "psycopg"
    async_driver: ClassVar[str | None] = "asyncpg"
    sync_modules: ClassVar[tuple[str, ...]] = ("psycopg",)
    async_modules: ClassVar[tuple[str, ...]] = ("asyncpg",)
    default_port: ClassVar[int | None] = 5432
    reads_pg_service: ClassVar[bool] = True
    system_schemas: ClassVar[frozenset[str] | None] = frozenset(
        {"information_schema", "pg_catalog"}
    )
    duckdb_query_function: ClassVar[str | None] = "postgres_query"
    connectorx_scheme: ClassVar[str | None] = "postgresql"

    def query_keys(self) -> Mapping[str, QueryKey]:
        return pg_query_keys()

    def connectorx_tls(self, params: ConnectParams | None) -> tuple[dict[str, str], str | None]:
        # connectorx's PostgreSQL source knows sslmode disable/prefer/require, verifies the
        # chain (never the host name) when given sslrootcert, and loads sslcert+sslkey.
        options = params.options if params is not None else {}
        mode = options.get("sslmode") or ""
        root, cert, key = (options.get(k) or None for k in ("sslrootcert", "sslcert", "sslkey"))
        for crl in ("sslcrl", "sslcrldir"):
            if options.get(crl):
                return {}, f"{crl}= (connectorx's PostgreSQL driver checks no revocation list)"
        if (cert is None) != (key is None):
            return {}, (
                "sslcert without sslkey, or the reverse (connectorx loads the pair only; libpq "
                "finds the other file in ~/.postgresql)"
            )
        if mode == "verify-full":
            return {}, "sslmode=verify-full (connectorx does not check the server's host name)"
        if mode == "verify-ca":
            if root is None:
                return {}, (
                    "sslmode=verify-ca without sslrootcert (connectorx would verify nothing; "
                    "libpq reads ~/.postgresql/root.crt)"
                )
            mode = "require"  # given sslrootcert, connectorx verifies the chain: verify-ca
        if mode == "allow":
            mode = "prefer"  # connectorx knows no allow; prefer tries TLS first
        found = {"sslmode": mode, "sslrootcert": root, "sslcert": cert, "sslkey": key}
        return {k: v for k, v in found.items() if v}, None

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str] | None:
        return pg_connect_arg_names(is_async)

    def engine_url(self, *, is_async: bool) -> URL:
        url = super().engine_url(is_async=is_async)
        hosts, ports = url.query.get("host"), url.query.get("port")
        if isinstance(hosts, str) and isinstance(ports, str) and "," not in ports:
            count = len(hosts.split(","))
            if count > 1:
                # libpq uses a single port for every host; SQLAlchemy's parser of the URL
                # wants one per host, so spell the same list out.
                url = url.update_query_dict({"port": ",".join([ports] * count)})
        if is_async:
            # asyncpg knows none of libpq's keywords (service=, passfile=, sslmode= ...);
            # resolve_params() applies them and apply_params() passes on what asyncpg takes.
            url = url.difference_update_query([k for k in url.query if k not in PG_ASYNC_ONLY])
        return url

    def connect_timeout(self) -> float:
        """The effective connect timeout in seconds (dbwire.timeouts.connect_timeout)."""
        return connect_timeout(self.config, self.base_url().query)

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        args: dict[str, Any] = {}
        timeout = self.connect_timeout()
        if is_async:
            # asyncpg's timeout covers the whole connect: TCP, TLS, startup and login.
            args["timeout"] = timeout
            # ... but raises a bare TimeoutError; this turns it into dbwire's ConnectError.
            args["async_creator_fn"] = bounded_async_connect(
                open_asyncpg, timeout, self.config.name, grace=0.5
            )
            sslmode = self.base_url().query.get("sslmode")
            if isinstance(sslmode, str):
                args["ssl"] = sslmode
        else:
            args["connect_timeout"] = libpq_seconds(timeout)
        return args

    # A readonly = true database logs in with default_transaction_read_only=on
    # (apply_params), which holds for autocommit statements too.
    readonly_in_autocommit: ClassVar[bool] = True

    def begin_readonly(self, dbapi_connection: Any) -> None:
        # SELECT 1 takes the transaction's snapshot; from then on PostgreSQL itself refuses
        # SET TRANSACTION READ WRITE ("must be called before any query").
        cursor = dbapi_connection.cursor()
        try:
            if hasattr(getattr(dbapi_connection, "driver_connection", None), "pgconn"):
                cursor.execute("SET TRANSACTION READ ONLY; SELECT 1")  # psycopg: one trip
            else:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute("SELECT 1")
        finally:
            cursor.close()

    def login_can_write(self, connection: Connection) -> bool | None:
        """Superuser, or any INSERT/UPDATE/DELETE/TRUNCATE on a table, CREATE on a
        schema, or CREATE/TEMP on the database."""
        row = connection.exec_driver_sql(_PG_CAN_WRITE).one()
        return bool(row[0])

    def is_readonly_violation(self, exc: BaseException) -> bool:
        return sqlstate_of(exc) == _READONLY_SQLSTATE

    def is_auth_failure(self, exc: BaseException) -> bool:
        if sqlstate_of(exc) in _AUTH_SQLSTATES:
            return True
        text = str(exc).lower()
        return "password authentication failed" in text or "no password supplied" in text

    def validate(self) -> None:
        super().validate()
        # Hosts that travel in the query (several, or a socket directory) are checked too.
        query = self.base_url().query
        listed = query.get("host")
        if isinstance(listed, str) and listed:
            check_hosts(self.config.name, listed.split(","))
        ports = query.get("port")
        if isinstance(ports, str) and ports:
            self._check_ports(
                ports.split(","), listed.split(",") if isinstance(listed, str) else []
            )

    def _check_ports(self, ports: list[str], hosts: list[str]) -> None:
        """libpq's rule: each port a number, and one port for all hosts or one per host."""
        name = self.config.name
        for port in ports:
            if port and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise ConfigError(
                    f"database {name!r}: port {port!r} is not a port number; Fix: give "
                    "a number from 1 to 65535 (url ...:5432 or ?port=5432)",
                    database=name,
                )
        if len(ports) > 1 and len(ports) != max(len(hosts), 1):
            raise ConfigError(
                f"database {name!r}: {len(ports)} ports for {max(len(hosts), 1)} host(s); "
                "Fix: give one port for every host, in the same order, or a single port "
                "for all of them (as libpq takes them)",
                database=name,
            )

    def connect_fix(self, exc: BaseException) -> str | None:
        text = str(exc)
        if sqlstate_of(exc) == "3D000" or ("database" in text and "does not exist" in text):
            database = self.base_url().database or "(the user name)"
            return (
                f"the database {database!r} does not exist on the server: create it "
                "(create_db = true in the config, or CREATE DATABASE), or correct the "
                "database name"
            )
        return None

    def resolve_params(self, *, ask_provider: bool = True) -> ConnectParams:
        """libpq-exact resolution: dbwire's config first, then PG* variables, the service
        file and .pgpass, exactly as libpq would choose (dbwire.credentials.resolve_pg).

        psycopg would find the same values through libpq itself; asyncpg would not (it has
        its own partial .pgpass logic), so dbwire resolves once and hands both drivers the
        result, making them behave alike.
        """
        from dbwire.credentials import resolve_pg
        from dbwire.credentials._libpq import keywords, version_or_loaded

        cfg = self.config
        url = self.base_url()
        query = url.query
        password, password_source, secret_user = self.configured_login(ask_provider=ask_provider)

        def given(key: str) -> str | None:
            value = query.get(key)
            return value if isinstance(value, str) and value != "" else None

        # Fields set in dbwire's config win; then the URL, where a query keyword replaces
        # the authority's value as in libpq.
        host = cfg.host if cfg.host is not None else given("host") or url.host
        if cfg.port is not None:
            port: str | None = str(cfg.port)
        else:
            port = given("port") or (str(url.port) if url.port else None)
        params: dict[str, str | None] = {
            "host": host,
            "port": port,
            "user": secret_user or url.username,
            # An empty path ("postgresql:///?service=x") leaves dbname to the service file
            # and PGDATABASE, as in libpq.
            "dbname": url.database or None,
            "password": password.get_secret_value() if password is not None else None,
            "passfile": cfg.passfile,
        }
        known = keywords(version_or_loaded(None))
        for key, value in query.items():
            # Every other libpq keyword goes through the resolver, so libpq gets all of them.
            fresh = key in known and key not in params and not is_secret_key(key)
            if fresh and isinstance(value, str):
                params[key] = value
        # resolve_pg follows psycopg's own libpq; the database name is a name here,
        # never a connection string to expand.
        environ = cfg.environ
        resolved = resolve_pg(
            params, os.environ if environ is None else environ, expand_dbname=False
        )
        ours = {"host": "host", "port": "port", "user": "user", "dbname": "database"}
        sources: dict[str, str] = {}
        for libpq_key, field in ours.items():
            origin = resolved.sources.get(libpq_key, "default")
            sources[field] = self._field_origin(field) if origin == "argument" else origin
        if secret_user is not None:
            sources["user"] = f"{password_source} (username)"
        if password is not None:
            sources["password"] = password_source or "config"
        elif resolved.password is not None:
            sources["password"] = resolved.sources.get("password", ".pgpass")
        per_host = {t.password.get_secret_value() if t.password else None for t in resolved.targets}
        return ConnectParams(
            host=resolved.host,
            port=resolved.port,
            user=resolved.user,
            database=resolved.dbname,
            password=resolved.password if password is None else SecretStr(params["password"] or ""),
            sources=sources,
            options=resolved.options,
            hosts=tuple(resolved.hosts),
            passfile=resolved.passfile if password is None and len(per_host) > 1 else None,
        )

    def direct_fetcher(self) -> DirectFetch | None:
        # Behind a transaction pooler SQLAlchemy's adapter names each prepared statement
        # uniquely (dbwire.pooler); asyncpg's own prepare() would not: use the adapter.
        return _asyncpg_fetch if self.config.pooler is None else None

    # Leaving it on saves psycopg's setter (a lock and a generator) twice per execute_query.
    autocommit_sticks: ClassVar[bool] = True

    def set_autocommit(self, driver_connection: Any, on: bool) -> bool:
        # psycopg 3 keeps autocommit client-side: flipping it sends nothing to the server.
        if hasattr(driver_connection, "pgconn"):
            driver_connection.autocommit = on
            return True
        # SQLAlchemy's asyncpg adapter: autocommit is its own isolation level, also local
        # (asyncpg itself runs every statement outside a transaction in autocommit).
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

        if isinstance(driver_connection, AsyncAdapt_asyncpg_connection):
            driver_connection.autocommit = on
            return True
        return False

    def cancel(self, driver_connection: Any, engine: Engine) -> bool:
        # cancel_safe (psycopg 3.2+) is libpq's newer non-blocking cancel, given the
        # connect timeout: its own default waits 30 s on a server that stopped answering.
        # Older psycopg has only cancel(), which libpq bounds by nothing.
        cancel_safe = getattr(driver_connection, "cancel_safe", None)
        if cancel_safe is None:
            driver_connection.cancel()
        else:
            cancel_safe(timeout=self.connect_timeout())
        return True

    def socket_fileno(self, dbapi_connection: Any) -> int | None:
        asyncpg_conn = getattr(dbapi_connection, "_connection", None)
        if asyncpg_conn is not None and hasattr(asyncpg_conn, "is_closed"):  # asyncpg
            transport = getattr(asyncpg_conn, "_transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            return sock.fileno() if sock is not None else None
        pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
        return int(pgconn.socket) if pgconn is not None else None

    def _maintenance(self, params: ConnectParams) -> Any:
        """An autocommit connection to the maintenance database with the same credentials:
        CREATE/DROP DATABASE cannot run in a transaction or in the database they act on."""
        import psycopg

        # Every host, as for a session: CREATE DATABASE fails over like any connection.
        hosts = params.hosts or ((params.host or "", params.port or 5432),)
        return psycopg.connect(
            host=",".join(host for host, _ in hosts),
            port=",".join(str(port) for _, port in hosts),
            user=params.user,
            password=None if params.passfile else params.password_value(),
            passfile=params.passfile,
            dbname="postgres",
            autocommit=True,
            connect_timeout=libpq_seconds(self.connect_timeout()),
        )

    def database_exists(self, params: ConnectParams) -> bool:
        with self._maintenance(params) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (params.database,)
            ).fetchone()
            return found is not None

    def create_database(self, params: ConnectParams) -> bool:
        from psycopg import sql

        with self._maintenance(params) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (params.database,)
            ).fetchone()
            if exists:
                return False
            # An identifier, quoted by psycopg: any name is created literally.
            name = sql.Identifier(params.database or "")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
            return True

    def drop_database(self, params: ConnectParams) -> bool:
        from psycopg import sql

        with self._maintenance(params) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (params.database,)
            ).fetchone()
            if not exists:
                return False
            name = sql.Identifier(params.database or "")
            conn.execute(sql.SQL("DROP DATABASE {}").format(name))
            return True

    def apply_params(
        self, cparams: dict[str, Any], params: ConnectParams, *, is_async: bool
    ) -> None:
        if is_async:
            self._apply_asyncpg(cparams, params)
        else:
            self._apply_psycopg(cparams, params)
        if self.config.readonly and self.config.pooler is None:
            # The session default: every transaction of this login is read-only, also one
            # begun behind SQLAlchemy's back by COMMIT sent as SQL. Behind a transaction
            # pooler a login setting belongs to no one (PgBouncer refuses it): each
            # transaction's SET TRANSACTION READ ONLY does the job there (dbwire.pooler).
            if is_async:
                settings = cparams.setdefault("server_settings", {})
                settings["default_transaction_read_only"] = "on"
            else:
                given = cparams.get("options") or params.options.get("options") or ""
                cparams["options"] = f"{given} -c default_transaction_read_only=on".strip()

    def _apply_psycopg(self, cparams: dict[str, Any], params: ConnectParams) -> None:
        """libpq gets the whole resolved conninfo: every host, port and hostaddr and every
        keyword, so its own failover, target_session_attrs and load balancing work.

        SQLAlchemy hands psycopg.connect() an empty positional conninfo; psycopg folds these
        keyword arguments into it (make_conninfo), comma lists and all.
        """
        given = self.config.connect_args  # the user's own driver arguments win
        for key in (*_CONNINFO_OWN, "database", "service", "servicefile", "passfile"):
            # SQLAlchemy copied these from the URL; the resolved values replace them, and
            # libpq must not read the service file again (from the process's environment).
            if key not in given:
                cparams.pop(key, None)
        conninfo = {k: v for k, v in params.options.items() if k not in _RESOLVED_BY_DBWIRE}
        hosts = params.hosts or ((params.host or "", params.port or 5432),)
        conninfo["host"] = ",".join(host for host, _ in hosts)
        conninfo["port"] = ",".join(str(port) for _, port in hosts)
        if params.user is not None:
            conninfo["user"] = params.user
        if params.database is not None:
            conninfo["dbname"] = params.database
        password = params.password_value()
        if params.passfile is not None:
            conninfo["passfile"] = params.passfile  # libpq looks each host up in it
        elif password is not None:
            conninfo["password"] = password
        # connect_timeout comes from connect_args: libpq applies it to each host in turn.
        cparams.update({k: v for k, v in conninfo.items() if k not in given})

    def _apply_asyncpg(self, cparams: dict[str, Any], params: ConnectParams) -> None:
        """asyncpg gets the host and port lists and the keywords it has a name for."""
        hosts = list(params.hosts or ((params.host or "", params.port or 5432),))
        addrs = (params.options.get("hostaddr") or "").split(",")
        if len(addrs) == len(hosts):
            # libpq connects to hostaddr and keeps host for .pgpass and TLS; asyncpg has
            # one field, and the address is where the connection goes.
            hosts = [(addr or host, port) for (host, port), addr in zip(hosts, addrs, strict=True)]
        if len(hosts) > 1:
            cparams["host"] = [host for host, _ in hosts]
            cparams["port"] = [port for _, port in hosts]
        else:
            cparams["host"], cparams["port"] = hosts[0]
        cparams["user"] = params.user
        cparams["database"] = params.database
        password = params.password_value()
        if params.passfile is not None:
            # asyncpg takes the line of the first host the file has one for, for every host.
            cparams["passfile"] = params.passfile
        elif password is not None:
            cparams["password"] = password
        sslmode = params.options.get("sslmode")
        if sslmode and "ssl" not in cparams:
            cparams["ssl"] = sslmode  # asyncpg's name for libpq's sslmode
        application_name = params.options.get("application_name")
        if application_name:
            settings = cparams.setdefault("server_settings", {})
            settings.setdefault("application_name", application_name)
        target = params.options.get("target_session_attrs")
        if target and "target_session_attrs" not in cparams:
            cparams["target_session_attrs"] = target
        server_options = pg_server_settings(params.options.get("options") or "")
        if server_options:
            settings = cparams.setdefault("server_settings", {})
            for key, value in server_options.items():
                settings.setdefault(key, value)

    # -- the local DuckDB store (DuckDB store issue) ---
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """DuckDB's postgres extension; host, user and password travel in a secret."""
        from dbwire.types import DuckDBAttach

        params = self.resolve_params()
        # Only connection options go into the ATTACH string (SQL text); never credentials.
        options = {k: v for k, v in params.options.items() if k in _DUCKDB_CONNINFO_KEYS}
        if "connect_timeout" not in options or self.config.connect_timeout is not None:
            # libpq waits forever by default; DuckDB's ATTACH must not.
            options["connect_timeout"] = str(libpq_seconds(self.connect_timeout()))
        secret: dict[str, Any] = {
            "host": params.host,
            "port": params.port,
            "database": params.database,
            "user": params.user,
            "password": params.password_value(),
        }
        if len(params.hosts) > 1:
            # A secret holds one host and port; the lists go in the conninfo (they are not
            # secret), so DuckDB's libpq fails over across them as a session's does.
            options["host"] = ",".join(host for host, _ in params.hosts)
            options["port"] = ",".join(str(port) for _, port in params.hosts)
            del secret["host"], secret["port"]
            if params.passfile is not None:
                options["passfile"] = params.passfile
                del secret["password"]
        target = " ".join(f"{k}={_conninfo_value(v)}" for k, v in sorted(options.items()))
        return DuckDBAttach(
            target=target,
            attach_type="postgres",
            extensions=("postgres_scanner",),
            secret_type="postgres",
            secret=secret,
        )


# Keywords the conninfo carries from ConnectParams' own fields.
_CONNINFO_OWN = ("host", "port", "hostaddr", "user", "dbname", "password")
# Applied by resolve_pg already (a second reading by libpq would use the process's
# environment, not the one dbwire was given), or passed as a keyword argument.
_RESOLVED_BY_DBWIRE = frozenset(
    {"service", "servicefile", "passfile", "connect_timeout", "host", "port", "user", "dbname"}
)

# libpq keywords that may appear in the ATTACH connection string (no secrets among them):
# the URL keywords dbwire resolves itself (service, passfile) are left out.
_DUCKDB_CONNINFO_KEYS = frozenset(_LIBPQ_QUERY_KEYWORDS) - {"service", "passfile"} | {
    "gssencmode",
    "channel_binding",
}


async def _asyncpg_fetch(connection: Any, statement: str, args: Any) -> DirectResult:
    """One statement on asyncpg itself: outside a transaction it is autocommit already."""
    driver = connection.driver_connection
    records = await driver.fetch(statement, *args)
    if records:
        columns = list(records[0].keys())
        return columns, [dict(zip(columns, record, strict=True)) for record in records]
    # No row to name the columns: asyncpg's statement description does (a second trip,
    # for empty results only; a statement that returns no rows has no columns).
    prepared = await driver.prepare(statement)
    return [attribute.name for attribute in prepared.get_attributes()], []


def _conninfo_value(value: str) -> str:
    """A libpq conninfo value, quoted when it holds spaces, quotes or backslashes."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
