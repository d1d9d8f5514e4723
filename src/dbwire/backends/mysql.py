"""The MySQL and MariaDB backends: PyMySQL (sync) and aiomysql (async)."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import SecretStr

from dbwire.backends._accepts import (
    MYSQL_QUERY_KEYS,
    MYSQL_URL_KEYS,
    install_aiomysql_tls_check,
    mysql_connect_arg_names,
    mysql_connect_args,
    mysql_tls,
)
from dbwire.backends.base import Backend, ConnectParams, DirectFetch, DirectResult
from dbwire.timeouts import (
    bounded_async_connect,
    connect_timeout,
    open_aiomysql,
    pymysql_reads_bounded,
)
from dbwire.url_type import URL

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.engine import Connection, Engine

    from dbwire.backends._query import QueryKey
    from dbwire.types import DuckDBAttach

# 1792: cannot execute in a READ ONLY transaction; 1290: server runs with --read-only.
_READONLY_CODES = {1792, 1290}
# What a KILL QUERY's reply may wait at least, when the login before it took (nearly)
# the whole connect timeout: long enough for a server that answers at all.
_LEAST_REPLY_WAIT = 0.05
_AUTH_CODES = {1045, 1698}


def mysql_error_code(exc: BaseException) -> int | None:
    """The numeric MySQL error code of a PyMySQL/aiomysql error, however SQLAlchemy wrapped it."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        args = getattr(seen, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


# Privileges that cannot change anything; every other one (or an unknown one) can write.
_READ_PRIVILEGES = frozenset(
    {
        "SELECT",
        "USAGE",
        "SHOW VIEW",
        "SHOW DATABASES",
        "PROCESS",
        "REPLICATION CLIENT",
        "BINLOG MONITOR",
        "SLAVE MONITOR",
        "REPLICA MONITOR",
    }
)
_GRANT_LINE = re.compile(r"^GRANT\s+(?P<privileges>.+?)\s+ON\s+", re.IGNORECASE | re.DOTALL)


def _grant_can_write(line: str) -> bool:
    """True when one SHOW GRANTS line gives a privilege beyond reading."""
    match = _GRANT_LINE.match(line)
    if match is None:
        # `GRANT role TO user` (or something new): its privileges are not on this line;
        # count it as writing so a role cannot hide a write privilege.
        return line.upper().startswith("GRANT ")
    privileges = re.sub(r"\([^)]*\)", "", match.group("privileges"))  # column lists
    return any(" ".join(p.split()).upper() not in _READ_PRIVILEGES for p in privileges.split(","))


class MySQLBackend(Backend):
    """MySQL through PyMySQL and aiomysql; read-only via SET TRANSACTION READ ONLY."""

    name: ClassVar[str] = "mysql"
    dialect_name: ClassVar[str] = "mysql"
    label: ClassVar[str] = "MySQL"
    schemes: ClassVar[tuple[str, ...]] = ("mysql",)
    extra: ClassVar[str] = "mysql"
    sync_driver: ClassVar[str] = "pymysql"
    async_driver: ClassVar[str | None] = "aiomysql"
    sync_modules: ClassVar[tuple[str, ...]] = ("pymysql",)
    async_modules: ClassVar[tuple[str, ...]] = ("aiomysql",)
    default_port: ClassVar[int | None] = 3306
    system_schemas: ClassVar[frozenset[str] | None] = frozenset(
        {"information_schema", "mysql", "performance_schema", "sys"}
    )
    database_is_schema: ClassVar[bool] = True
    duckdb_query_function: ClassVar[str | None] = "mysql_query"
    connectorx_scheme: ClassVar[str | None] = "mysql"
    connectorx_quote: ClassVar[str] = "`"
    # connectorx's Arrow stream beat DuckDB's mysql extension (see dbwire.store.collect).
    prefers_connectorx: ClassVar[bool] = True

    def query_keys(self) -> Mapping[str, QueryKey]:
        return MYSQL_QUERY_KEYS

    def collect_method(self, is_table: bool, connectorx_installed: bool) -> str:
        if connectorx_installed and self.connectorx_tls(None)[1] is not None:
            return "duckdb"  # DuckDB's mysql extension takes every TLS setting
        return super().collect_method(is_table, connectorx_installed)

    def connectorx_tls(self, params: ConnectParams | None) -> tuple[dict[str, str], str | None]:
        tls = mysql_tls(self.config.name, self.base_url().query)
        if tls is None or tls.mode == "DISABLED":
            return {}, None
        if tls.mode == "PREFERRED":
            return {}, (
                f"{tls.describe()} (connectorx's MySQL driver cannot fall back: it either "
                "requires TLS or never tries it)"
            )
        if tls.cert is not None or tls.key is not None:
            return {}, (f"{tls.describe()} (connectorx's MySQL URL takes no client certificate)")
        # prefer_socket=false: the driver otherwise moves a loopback login onto the
        # server's Unix socket after the TLS handshake, off TLS and off db.engine's path.
        options = {"ssl-mode": tls.mode, "prefer_socket": "false"}
        if tls.ca is not None:
            options["ssl-ca"] = tls.ca
        return options, None

    def connect_arg_names(self, *, is_async: bool) -> frozenset[str] | None:
        return mysql_connect_arg_names(is_async)

    def query_connect_args(self, *, is_async: bool) -> dict[str, Any]:
        return mysql_connect_args(
            self.config.name,
            self.base_url().query,
            connect_timeout_set=self.config.connect_timeout is not None,
        )

    def install_query_hooks(self, engine: Engine, *, is_async: bool) -> None:
        if is_async and self.query_connect_args(is_async=True).get("ssl") is not None:
            # aiomysql, unlike PyMySQL, goes on in clear text when the server offers no TLS.
            install_aiomysql_tls_check(engine, self.config.name)

    def engine_url(self, *, is_async: bool) -> URL:
        url = super().engine_url(is_async=is_async)
        # The other keys travel as connect_args, under the names the drivers take.
        url = url.difference_update_query([k for k in url.query if k not in MYSQL_URL_KEYS])
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    def connect_timeout(self) -> float:
        """The effective connect timeout in seconds (dbwire.timeouts.connect_timeout)."""
        return connect_timeout(self.config, self.base_url().query)

    def connect_args(self, *, is_async: bool) -> dict[str, Any]:
        timeout = self.connect_timeout()
        args: dict[str, Any] = {"connect_timeout": timeout}
        if is_async:
            # SQLAlchemy's aiomysql adapter calls this instead of aiomysql.connect.
            args["async_creator_fn"] = bounded_async_connect(
                open_aiomysql, timeout, self.config.name
            )
        return args

    autocommit_sticks: ClassVar[bool] = True
    # aiomysql only closes its socket; MariaDB runs the statement on (a SLEEP(30) for 30 s).
    async_cancel_stops_statement: ClassVar[bool] = False

    def set_autocommit(self, driver_connection: Any, on: bool) -> bool:
        # PyMySQL and SQLAlchemy's aiomysql adapter alike: autocommit(v) sends SET
        # autocommit only when the server's flag (known from the last reply) differs.
        driver_connection.autocommit(on)
        return True

    def direct_fetcher(self) -> DirectFetch | None:
        return _aiomysql_fetch

    def begin_readonly(self, dbapi_connection: Any) -> None:
        # START TRANSACTION (not SET TRANSACTION, which waits for the first statement):
        # with the transaction already running, the server refuses SET TRANSACTION READ
        # WRITE ("can't be changed while a transaction is in progress").
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("START TRANSACTION READ ONLY")
        finally:
            cursor.close()

    def configure_engine(self, engine: Engine, *, is_async: bool) -> None:
        if not is_async:
            _bound_pymysql_handshake(engine, self.connect_timeout())
        if not self.config.readonly:
            return

        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _session_readonly(dbapi_connection: Any, _record: Any) -> None:
            # The session characteristic: every later transaction of this connection is
            # read-only, including one begun after COMMIT sent as SQL.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
            finally:
                cursor.close()

    def login_can_write(self, connection: Connection) -> bool | None:
        """SHOW GRANTS: any privilege beyond reading, on any object, or a granted role."""
        rows = connection.exec_driver_sql("SHOW GRANTS").all()
        return any(_grant_can_write(str(row[0])) for row in rows)

    def resolve_params(self, *, ask_provider: bool = True) -> ConnectParams:
        """dbwire's config first, then [client] of the MySQL option files (~/.my.cnf, or
        mysql_option_file) for whatever is still unset, as the mysql client would."""
        from dbwire.credentials import read_mysql_option_files

        params = super().resolve_params(ask_provider=ask_provider)
        path = self.config.mysql_option_file
        options = read_mysql_option_files([path] if path else None, self.config.environ)
        if not options:
            return params
        origin = f"option file {path or '~/.my.cnf'} [client]"
        updates: dict[str, Any] = {}
        sources = dict(params.sources)
        for field, key in (("host", "host"), ("user", "user"), ("database", "database")):
            if getattr(params, field) is None and options.get(key):
                updates[field], sources[field] = options[key], origin
        if self.base_url().port is None and options.get("port", "").isdigit():
            updates["port"], sources["port"] = int(options["port"]), origin
        if params.password is None and "password" in options:
            updates["password"], sources["password"] = SecretStr(options["password"]), origin
        return replace(params, sources=sources, **updates)

    def cancel(self, driver_connection: Any, engine: Engine) -> bool:
        thread_id = getattr(driver_connection, "thread_id", None)
        if not callable(thread_id):
            return False
        # KILL QUERY from a second session: PyMySQL has no cancel of its own. A raw
        # connection skips the read-only statement guard, which would refuse KILL.
        timeout = connect_timeout(self.config, self.base_url().query)
        started = time.monotonic()
        raw = engine.raw_connection()  # a new login is bounded by the connect timeout
        try:
            # The KILL's reply gets what the login left of that timeout: a server that
            # stopped answering holds the canceller (a cancelled task waits for it) for one
            # connect timeout in all, not one for the login and another for the reply.
            left = max(_LEAST_REPLY_WAIT, timeout - (time.monotonic() - started))
            with pymysql_reads_bounded(raw.dbapi_connection, left):
                cursor = raw.cursor()
                cursor.execute(f"KILL QUERY {int(thread_id())}")
                cursor.close()
        finally:
            raw.close()
        return True

    def socket_fileno(self, dbapi_connection: Any) -> int | None:
        inner = getattr(dbapi_connection, "_connection", None)  # aiomysql behind the adapter
        if inner is not None:
            writer = getattr(inner, "_writer", None)
            sock = writer.get_extra_info("socket") if writer is not None else None
        else:
            sock = getattr(dbapi_connection, "_sock", None)  # PyMySQL
        return sock.fileno() if sock is not None else None

    def _maintenance(self, params: ConnectParams) -> Any:
        """A connection with no default database, for CREATE/DROP DATABASE."""
        import pymysql

        return pymysql.connect(
            host=params.host or "localhost",
            port=params.port or 3306,
            user=params.user or "",
            password=params.password_value() or "",
            connect_timeout=self.connect_timeout(),
            # PyMySQL's connect_timeout covers only the TCP connect; the handshake reads
            # need their own bound, or a server that never greets hangs this forever.
            read_timeout=self.connect_timeout(),
            write_timeout=self.connect_timeout(),
        )

    def _on_database(self, params: ConnectParams, statement: str) -> int:
        # A backquoted identifier with its backquotes doubled: any name is taken literally.
        name = (params.database or "").replace("`", "``")
        conn = self._maintenance(params)
        try:
            with conn.cursor() as cursor:
                return int(cursor.execute(statement.format(name=f"`{name}`")))
        finally:
            conn.close()

    def database_exists(self, params: ConnectParams) -> bool:
        conn = self._maintenance(params)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (params.database or "",),
                )
                return cursor.fetchone() is not None
        finally:
            conn.close()

    def create_database(self, params: ConnectParams) -> bool:
        return bool(self._on_database(params, "CREATE DATABASE IF NOT EXISTS {name}"))

    def copy_tables(self, params: ConnectParams, target: str) -> None:
        """Copy every base table of the configured database (structure and rows) into the
        existing database `target` on the same server: MySQL has no CREATE DATABASE ...
        TEMPLATE. Views, routines and triggers are not copied."""

        def quoted(name: str) -> str:
            return "`" + name.replace("`", "``") + "`"

        source = params.database or ""
        conn = self._maintenance(params)
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                    (source,),
                )
                tables = [str(row[0]) for row in cursor.fetchall()]
                # Tables come in name order, not foreign-key order.
                cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
                cursor.execute(f"USE {quoted(target)}")
                for table in tables:
                    cursor.execute(f"SHOW CREATE TABLE {quoted(source)}.{quoted(table)}")
                    # Unqualified, so the table and its REFERENCES land in `target`.
                    cursor.execute(cursor.fetchone()[1])
                    cursor.execute(
                        f"INSERT INTO {quoted(target)}.{quoted(table)} "
                        f"SELECT * FROM {quoted(source)}.{quoted(table)}"
                    )
            conn.commit()
        finally:
            conn.close()

    def drop_database(self, params: ConnectParams) -> bool:
        # IF EXISTS answers with a warning, not a row count: ask first.
        if not self.database_exists(params):
            return False
        self._on_database(params, "DROP DATABASE IF EXISTS {name}")
        return True

    def apply_params(
        self, cparams: dict[str, Any], params: ConnectParams, *, is_async: bool
    ) -> None:
        # aiomysql names the database "db", PyMySQL "database" (SQLAlchemy's translation).
        keys = {"host": "host", "port": "port", "user": "user"}
        keys["database"] = "db" if is_async else "database"
        for field, key in keys.items():
            value = getattr(params, field)
            if value is not None and key not in cparams:
                cparams[key] = value
        if params.user and params.sources.get("user", "").startswith("password_provider"):
            cparams["user"] = params.user  # the secret's user wins over the URL's
        password = params.password_value()
        if password is not None:
            cparams["password"] = password

    def is_readonly_violation(self, exc: BaseException) -> bool:
        return mysql_error_code(exc) in _READONLY_CODES

    def is_auth_failure(self, exc: BaseException) -> bool:
        return mysql_error_code(exc) in _AUTH_CODES

    def connect_fix(self, exc: BaseException) -> str | None:
        code = mysql_error_code(exc)
        url = self.base_url()
        user, database = url.username or "(default user)", url.database
        if code == 1049:
            return (
                f"the database {database!r} does not exist on the server: create it "
                "(create_db = true in the config, or CREATE DATABASE), or correct the name"
            )
        if code == 1044:
            return (
                f"access denied for user {user!r} to database {database!r} (or it does not "
                "exist: the server does not tell a user without rights which): create it, "
                "GRANT the user privileges on it, or connect as a user that has them"
            )
        if code in _AUTH_CODES:
            return (
                f"access denied for user {user!r}: check the password (config password, URL, "
                "password_file, password_command, password_provider or a MySQL option "
                "file) and that the user may log in from this host"
            )
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return (
                "the server's TLS certificate did not verify: point ssl_ca at the CA that "
                "signed it, and connect by a host name the certificate holds (or set "
                "ssl_check_hostname=false, which is VERIFY_CA)"
            )
        return None

    # -- the local DuckDB store (DuckDB store issue) ---
    def duckdb_attach(self, readonly: bool) -> DuckDBAttach:
        """DuckDB's mysql extension; host, user and password travel in a secret."""
        from dbwire.types import DuckDBAttach

        params = self.resolve_params()
        host = params.host or "127.0.0.1"
        socket = self.base_url().query.get("unix_socket")
        if host == "localhost" and not socket:
            # libmysqlclient reads "localhost" as "use the Unix socket"; PyMySQL (and so
            # db.engine) connects over TCP. Keep both on the same path.
            host = "127.0.0.1"
        return DuckDBAttach(
            attach_type="mysql",
            extensions=("mysql_scanner",),
            secret_type="mysql",
            secret={
                "host": host,
                "port": params.port,
                "database": params.database,
                "user": params.user,
                "password": params.password_value(),
                "socket": socket if isinstance(socket, str) else None,
                **_duckdb_tls(self.config.name, self.base_url().query),
            },
        )


def _duckdb_tls(database: str, query: Mapping[str, Any]) -> dict[str, str]:
    """The URL's TLS settings as the secret keys of DuckDB's mysql extension (libmysqlclient's
    names and meaning; nothing given keeps its default, PREFERRED)."""
    tls = mysql_tls(database, query)
    if tls is None:
        return {}
    keys = {"ssl_mode": tls.mode, "ssl_ca": tls.ca, "ssl_cert": tls.cert, "ssl_key": tls.key}
    return {key: value for key, value in keys.items() if value is not None}


async def _aiomysql_fetch(connection: Any, statement: str, args: Any) -> DirectResult:
    """One statement on aiomysql itself, in autocommit (left on: autocommit_sticks)."""
    driver = connection.driver_connection
    if not driver.get_autocommit():  # the server's flag from the last reply: no trip
        await driver.autocommit(True)
    cursor = await driver.cursor()
    # Always with arguments (an empty tuple too): the SQL was compiled with `%` doubled.
    # No close in a finally: closing reads what is left, and after a failure or a
    # cancellation the connection is rolled back or dropped instead (dbwire.fast_path).
    await cursor.execute(statement, args)
    description = cursor.description
    rows = await cursor.fetchall() if description is not None else ()
    await cursor.close()
    columns = [column[0] for column in description or ()]
    return columns, [dict(zip(columns, row, strict=True)) for row in rows]


_HANDSHAKE_KEY = "dbwire_after_handshake"


def _bound_pymysql_handshake(engine: Engine, timeout: float) -> None:
    """Bound PyMySQL's handshake by the connect timeout without capping later queries.

    PyMySQL applies connect_timeout to the TCP connect only; the greeting, the login and
    the init statements are read with read_timeout, which defaults to none. So each new
    connection is opened with read/write timeouts equal to the connect timeout, and the
    values the application chose (usually none) are put back once it is established.
    """

    from sqlalchemy import event

    @event.listens_for(engine, "do_connect")
    def _handshake_timeouts(_dialect: Any, record: Any, _cargs: Any, cparams: Any) -> None:
        record.info[_HANDSHAKE_KEY] = (cparams.get("read_timeout"), cparams.get("write_timeout"))
        cparams["read_timeout"] = timeout
        cparams["write_timeout"] = timeout

    @event.listens_for(engine, "connect")
    def _restore_timeouts(dbapi_connection: Any, record: Any) -> None:
        read, write = record.info.pop(_HANDSHAKE_KEY, (None, None))
        # PyMySQL re-applies these before every socket read and write.
        dbapi_connection._read_timeout = read
        dbapi_connection._write_timeout = write


class MariaDBBackend(MySQLBackend):
    """MariaDB: the MySQL backend with SQLAlchemy's MariaDB dialect."""

    name: ClassVar[str] = "mariadb"
    dialect_name: ClassVar[str] = "mariadb"
    label: ClassVar[str] = "MariaDB"
    schemes: ClassVar[tuple[str, ...]] = ("mariadb",)
