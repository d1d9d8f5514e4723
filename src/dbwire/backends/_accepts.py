"""Per backend: the URL query keys and connect_args its drivers take, and how common keys map.

The backend modules call these; the tables live here so the backends stay short.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbwire.backends._query import (
    QueryKey,
    as_bool,
    as_int,
    as_positive_float,
    one_of,
    parameter_names,
    shown,
    single,
)
from dbwire.errors import ConfigError

if TYPE_CHECKING:
    import ssl

# -- MySQL / MariaDB (PyMySQL sync, aiomysql async) ------------------------------------------
_SSLMODES = (
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
    # MySQL's own --ssl-mode names
    "disabled",
    "preferred",
    "required",
    "verify_ca",
    "verify_identity",
)
_SSLMODE_ALIASES = {
    "disabled": "disable",
    "preferred": "prefer",
    "required": "require",
    "verify_ca": "verify-ca",
    "verify_identity": "verify-full",
}


def _charset(value: str) -> str:
    try:
        from pymysql.charset import charset_by_name
    except ImportError:  # the driver's absence is reported when an engine is made
        return value
    if charset_by_name(value) is None:
        raise ValueError("not a character set PyMySQL knows; use e.g. utf8mb4")
    return value


_MYSQL_SSL_CA = ("ssl_ca", "ssl-ca", "sslrootcert")
_MYSQL_SSL_CERT = ("ssl_cert", "ssl-cert", "sslcert")
_MYSQL_SSL_KEY = ("ssl_key", "ssl-key", "sslkey")
_MYSQL_SSLMODE = ("sslmode", "ssl_mode", "ssl-mode")
_MYSQL_PASSWORD = ("password", "passwd", "pwd")

MYSQL_QUERY_KEYS: Mapping[str, QueryKey] = {
    "charset": QueryKey(_charset),
    "connect_timeout": QueryKey(as_positive_float),
    "read_timeout": QueryKey(as_positive_float, async_=False),
    "write_timeout": QueryKey(as_positive_float, async_=False),
    "unix_socket": QueryKey(),
    "init_command": QueryKey(),
    "local_infile": QueryKey(as_bool),
    "program_name": QueryKey(),
    "application_name": QueryKey(),
    "ssl_check_hostname": QueryKey(as_bool),
    # the login password (never echoed); a password field or the userinfo wins over it
    **{key: QueryKey() for key in _MYSQL_PASSWORD},
    **{key: QueryKey(one_of(*_SSLMODES, fold=True)) for key in _MYSQL_SSLMODE},
    **{key: QueryKey() for key in (*_MYSQL_SSL_CA, *_MYSQL_SSL_CERT, *_MYSQL_SSL_KEY)},
}
# What SQLAlchemy's MySQL dialect reads from the URL itself; the rest travels as connect_args.
MYSQL_URL_KEYS = frozenset({"charset"})


def _first(query: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in query:
            return single(query[key])
    return None


def mysql_connect_args(
    database: str, query: Mapping[str, Any], *, connect_timeout_set: bool
) -> dict[str, Any]:
    """PyMySQL/aiomysql connect() arguments for the URL's query keys (already checked)."""
    args: dict[str, Any] = {}
    if "connect_timeout" in query and not connect_timeout_set:
        args["connect_timeout"] = as_positive_float(str(single(query["connect_timeout"])))
    for key in ("read_timeout", "write_timeout"):
        if key in query:
            args[key] = as_positive_float(str(single(query[key])))
    for key in ("unix_socket", "init_command"):
        if key in query:
            args[key] = single(query[key])
    if "local_infile" in query:
        args["local_infile"] = as_bool(str(single(query["local_infile"])))
    password = _first(query, _MYSQL_PASSWORD)
    if password is not None:
        args["password"] = password  # both drivers' name; apply_params overrides it if set
    name = _first(query, ("program_name", "application_name"))
    if name is not None:
        args["program_name"] = name  # sent to the server as the connection attribute
    context = _mysql_ssl_context(database, query)
    if context is not None:
        args["ssl"] = context
    return args


@dataclass(frozen=True)
class MySQLTLS:
    """The URL's TLS settings in MySQL's own terms, one meaning for every client of them.

    `mode` is MySQL's --ssl-mode name: DISABLED, PREFERRED, REQUIRED, VERIFY_CA or
    VERIFY_IDENTITY (verify-full, or a CA with ssl_check_hostname left on).
    """

    mode: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def verifies(self) -> bool:
        return self.mode in ("VERIFY_CA", "VERIFY_IDENTITY")

    def describe(self) -> str:
        """The settings as a user wrote them (file names, no contents), for messages."""
        parts = [f"ssl_mode={self.mode}"]
        parts += [f"{k}={v}" for k, v in (("ssl_cert", self.cert), ("ssl_key", self.key)) if v]
        return "&".join(parts)


def mysql_tls(database: str, query: Mapping[str, Any]) -> MySQLTLS | None:
    """The URL's TLS settings (None: none given, each client keeps its own default)."""
    mode = _first(query, _MYSQL_SSLMODE)
    ca = _first(query, _MYSQL_SSL_CA)
    cert = _first(query, _MYSQL_SSL_CERT)
    key = _first(query, _MYSQL_SSL_KEY)
    hostname = query.get("ssl_check_hostname")
    if mode is None and ca is None and cert is None and key is None:
        return None
    mode = (mode or ("verify-full" if ca else "require")).lower()
    mode = _SSLMODE_ALIASES.get(mode, mode)
    if mode == "disable":
        return MySQLTLS("DISABLED", ca, cert, key)
    if mode in ("allow", "prefer"):
        return MySQLTLS("PREFERRED", ca, cert, key)
    if mode == "require":
        return MySQLTLS("REQUIRED", ca, cert, key)
    if ca is None:
        raise ConfigError(
            f"database {database!r}: sslmode={mode} needs a CA file: add ssl_ca=/path/ca.pem "
            "(or sslrootcert=) to the URL",
            database=database,
        )
    check = mode == "verify-full"
    if hostname is not None:
        check = as_bool(str(single(hostname)))
    return MySQLTLS("VERIFY_IDENTITY" if check else "VERIFY_CA", ca, cert, key)


def _mysql_ssl_context(database: str, query: Mapping[str, Any]) -> ssl.SSLContext | None:
    """One SSLContext from sslmode and the CA/cert/key keys; both drivers take it as `ssl`.

    Without any of them nothing is passed: PyMySQL then tries TLS and falls back, aiomysql
    stays in clear text (their own defaults). With one, TLS is required by PyMySQL.
    """
    tls = mysql_tls(database, query)
    if tls is None or tls.mode in ("DISABLED", "PREFERRED"):
        return None
    import ssl  # here: a login without TLS files (every collect's) never needs it

    try:
        context = ssl.create_default_context(cafile=tls.ca)
        if tls.cert is not None:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"database {database!r}: the TLS files in the URL (ssl_ca / ssl_cert / ssl_key) "
            f"could not be loaded: {type(exc).__name__}: {exc.strerror or exc}. Fix: point "
            "them at readable PEM files",
            database=database,
        ) from None
    context.check_hostname = tls.mode == "VERIFY_IDENTITY"
    context.verify_mode = ssl.CERT_REQUIRED if tls.verifies else ssl.CERT_NONE
    return context


def install_aiomysql_tls_check(engine: Any, database: str) -> None:
    """Refuse (and close) an aiomysql connection that came up without TLS when TLS is required."""
    from sqlalchemy import event

    from dbwire.errors import ConnectError

    @event.listens_for(engine, "connect")
    def _require_tls(dbapi_connection: Any, _record: Any) -> None:
        inner = getattr(dbapi_connection, "_connection", None)
        writer = getattr(inner, "_writer", None)
        if writer is not None and writer.get_extra_info("ssl_object") is not None:
            return
        dbapi_connection.close()
        raise ConnectError(
            f"database {database!r}: the URL's sslmode requires TLS, but the server did not "
            "offer it, so aiomysql would have gone on in clear text; the connection was "
            "closed. Fix: enable TLS on the server, or lower sslmode to prefer",
            database=database,
        )


@functools.cache
def mysql_connect_arg_names(is_async: bool) -> frozenset[str] | None:
    """PyMySQL's Connection() or aiomysql's connect() keyword parameters."""
    try:
        if is_async:
            import aiomysql

            return parameter_names(aiomysql.connect)
        import pymysql

        return parameter_names(pymysql.connections.Connection.__init__)
    except ImportError:
        return None


# -- PostgreSQL (psycopg sync: libpq; asyncpg async) -------------------------------------------
# libpq 18's keywords (PQconndefaults), used when psycopg is not installed to ask libpq itself.
_LIBPQ_KEYWORDS = frozenset(
    [
        "service",
        "user",
        "password",
        "passfile",
        "channel_binding",
        "connect_timeout",
        "dbname",
        "host",
        "hostaddr",
        "port",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "sslmode",
        "sslnegotiation",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslcertmode",
        "sslpassword",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "require_auth",
        "min_protocol_version",
        "max_protocol_version",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "gssencmode",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "replication",
        "target_session_attrs",
        "load_balance_hosts",
        "scram_client_key",
        "scram_server_key",
        "oauth_issuer",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_scope",
        "sslkeylogfile",
        "servicefile",
    ]
)


@functools.cache
def libpq_keywords() -> frozenset[str]:
    """Every connection keyword the installed libpq knows (its own list, when available)."""
    try:
        from psycopg import pq

        return _LIBPQ_KEYWORDS | {
            d.keyword.decode() for d in pq.Conninfo.get_defaults() if d.keyword
        }
    except Exception:  # no psycopg, or a libpq without conndefaults: the static list
        return _LIBPQ_KEYWORDS


# What dbwire resolves itself or maps for asyncpg (see PostgresBackend.apply_params): the
# rest of libpq's keywords have no asyncpg counterpart and are refused for the async engine.
PG_ASYNC_MAPPED = frozenset(
    {
        "host",
        "port",
        "user",
        "dbname",
        "password",
        "passfile",
        "service",
        "sslmode",
        "application_name",
        "connect_timeout",
        "target_session_attrs",
        "options",
    }
)
# asyncpg's own settings SQLAlchemy's asyncpg dialect reads from the URL.
PG_ASYNC_ONLY = frozenset({"prepared_statement_cache_size", "command_timeout"})

_PG_CHECKS = {
    "port": as_int,
    "connect_timeout": as_int,
    "keepalives": as_int,
    "keepalives_idle": as_int,
    "keepalives_interval": as_int,
    "keepalives_count": as_int,
    "tcp_user_timeout": as_int,
    "sslmode": one_of("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": one_of(
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby"
    ),
    "prepared_statement_cache_size": as_int,
    "command_timeout": as_positive_float,
}


def _pg_port(value: str) -> object:
    # libpq takes a comma-separated port list for several hosts.
    for part in value.split(","):
        if part.strip():
            as_int(part)
    return value


@functools.cache
def pg_query_keys() -> Mapping[str, QueryKey]:
    """libpq's keywords (both sides, asyncpg only where mapped) plus asyncpg's own."""
    keys: dict[str, QueryKey] = {}
    for key in libpq_keywords():
        check = _pg_port if key == "port" else _PG_CHECKS.get(key)
        keys[key] = QueryKey(check, async_=key in PG_ASYNC_MAPPED)
    for key in PG_ASYNC_ONLY:
        keys[key] = QueryKey(_PG_CHECKS.get(key), sync=False)
    return keys


def pg_server_settings(options: str) -> dict[str, str]:
    """libpq's `options` (`-c name=value` / `--name=value`) as asyncpg server_settings."""
    settings: dict[str, str] = {}
    try:
        words = shlex.split(options)
    except ValueError:
        words = options.split()
    iterator = iter(words)
    for word in iterator:
        if word == "-c":
            word = next(iterator, "")
        elif word.startswith(("-c", "--")):
            word = word[2:]
        else:
            continue
        name, sep, value = word.partition("=")
        if sep and name:
            settings[name.replace("-", "_")] = value
    return settings


@functools.cache
def pg_connect_arg_names(is_async: bool) -> frozenset[str] | None:
    """asyncpg.connect()'s keywords, or psycopg.connect()'s plus every libpq keyword."""
    try:
        if is_async:
            import asyncpg

            return parameter_names(asyncpg.connect)
        import psycopg  # noqa: F401  (only its presence matters: libpq takes the keywords)
    except ImportError:
        return None
    own = {"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"}
    return frozenset(own) | libpq_keywords()


# -- SQLite (sqlite3 sync, aiosqlite async) ----------------------------------------------------
SQLITE_QUERY_KEYS: Mapping[str, QueryKey] = {
    # pysqlite connect() arguments SQLAlchemy reads from the URL
    "timeout": QueryKey(as_positive_float),
    "isolation_level": QueryKey(),
    "detect_types": QueryKey(as_int),
    "check_same_thread": QueryKey(as_bool),
    "cached_statements": QueryKey(as_int),
    "uri": QueryKey(as_bool),
    # SQLite URI parameters (with uri=true)
    "mode": QueryKey(one_of("ro", "rw", "rwc", "memory")),
    "cache": QueryKey(one_of("shared", "private")),
    "vfs": QueryKey(),
    "immutable": QueryKey(as_bool),
    "nolock": QueryKey(as_bool),
    "psow": QueryKey(as_bool),
    "modeof": QueryKey(),
}
SQLITE_URI_KEYS = ("mode", "cache", "vfs", "immutable", "nolock", "psow", "modeof")


def check_sqlite_uri_keys(database: str, path: str | None, query: Mapping[str, Any]) -> None:
    """SQLite's URI parameters only apply with uri=true; without it they would be ignored
    (mode=ro would quietly open the file read-write). With uri=true the path must be a
    `file:` URI, or SQLite opens a new file whose name ends in '?mode=ro...'."""
    used = [key for key in SQLITE_URI_KEYS if key in query]
    uri = as_bool(single(query.get("uri", "false")) or "false")
    if uri and used and path and not path.startswith("file:"):
        raise ConfigError(
            f"database {database!r}: with uri=true the URL's database must be a 'file:' URI "
            f"(SQLite would otherwise create another file); write it as "
            f"'sqlite:///file:{shown(path)[1:-1]}?uri=true&...'",
            database=database,
        )
    if used and not uri:
        raise ConfigError(
            f"database {database!r}: URL query key {used[0]!r} is a SQLite URI parameter and "
            "is ignored unless the URL also has uri=true; add uri=true (or remove it)",
            database=database,
        )


SQLITE_CONNECT_ARGS = frozenset(
    {
        "database",
        "timeout",
        "detect_types",
        "isolation_level",
        "check_same_thread",
        "factory",
        "cached_statements",
        "uri",
        "autocommit",
    }
)


# -- DuckDB ------------------------------------------------------------------------------------
@functools.cache
def duckdb_query_keys() -> Mapping[str, QueryKey] | None:
    """DuckDB's configuration options (duckdb-engine passes the URL query as config)."""
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect(":memory:")
    try:
        names = [
            str(row[0]) for row in con.execute("SELECT name FROM duckdb_settings()").fetchall()
        ]
    finally:
        con.close()
    keys = {name: QueryKey() for name in names}
    keys["user"] = QueryKey()  # duckdb-engine's own: appended to the database path
    return keys


DUCKDB_CONNECT_ARGS = frozenset(
    {"database", "read_only", "config", "preload_extensions", "register_filesystems"}
)


def refuse_url_parts(database: str, label: str, url: Any, parts: tuple[str, ...]) -> None:
    """An embedded database's URL has no host, port, user or password: refuse them."""
    names = {"host": "a host", "port": "a port", "username": "a user", "password": "a password"}
    for part in parts:
        if getattr(url, part) not in (None, ""):
            where = (
                " (user and password are not echoed)" if part in ("username", "password") else ""
            )
            value = "" if where else f" {shown(getattr(url, part))}"
            raise ConfigError(
                f"database {database!r}: a {label} URL has no {part}, but it has "
                f"{names[part]}{value}{where}. Fix: write the file path after three slashes, "
                f"e.g. '{label.lower()}:///path/to/file' ('{label.lower()}://' for memory)",
                database=database,
            )
