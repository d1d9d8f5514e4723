"""Arrow record-batch streams from a source database, for store.collect().

connectorx (MySQL/MariaDB, PostgreSQL) and ADBC's PostgreSQL driver each hand back a
`pyarrow.RecordBatchReader`; collect() lets DuckDB scan it in one CREATE TABLE AS, so
at most a few batches are in memory, never the table. Neither path logs in through
SQLAlchemy: when the fast driver fails, `explain_failure` asks dbwire's own engine why,
so the error still names the database and the fix, and never shows a password.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dbwire.errors import ConfigError, DbwireError, MissingDependencyError, describe

if TYPE_CHECKING:
    import pyarrow as pa

    from dbwire.backends.base import ConnectParams
    from dbwire.database import Database

# libpq keywords (besides host/port/user/dbname/password) that ADBC may pass through: how to
# reach the server, never a file-based credential source dbwire has resolved already.
_LIBPQ_PASSTHROUGH = (
    "hostaddr",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslcertmode",
    "sslsni",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "application_name",
    "options",
    "target_session_attrs",
    "gssencmode",
    "keepalives",
    "keepalives_idle",
)


def require_pyarrow(db: Database) -> Any:
    """pyarrow, or a MissingDependencyError naming the extra."""
    try:
        import pyarrow
    except ImportError:
        raise MissingDependencyError(
            f"database {db.name!r}: collecting through Arrow needs pyarrow; "
            "run: pip install 'dbwire[duckdb]'",
            database=db.name,
        ) from None
    return pyarrow


def select_sql(query_or_table: str, quote_char: str, is_table: bool) -> str:
    """`SELECT * FROM "a"."b"` for a table name (each part quoted), the query otherwise."""
    if not is_table:
        return query_or_table
    name = ".".join(
        quote_char + part.replace(quote_char, quote_char * 2) + quote_char
        for part in query_or_table.strip().split(".")
    )
    return f"SELECT * FROM {name}"


def explain_failure(db: Database, exc: BaseException, method: str) -> DbwireError:
    """The error to raise when `method` failed: dbwire's own login error when the server
    refuses dbwire too (wrong password, nothing listening), else the driver's text, scrubbed.

    The SQLAlchemy login happens only here, after a failure, so a working collect pays
    for one login only.
    """
    try:
        with db.connect():
            pass
    except DbwireError as login_error:
        return login_error
    except Exception as other:  # pragma: no cover - Database.connect raises DbwireErrors
        exc = other
    detail = describe(exc, db.known_secrets())
    return DbwireError(
        f"database {db.name!r} ({db.url}): {method} could not read the query: {detail}. "
        "Fix: check the SQL, or pass method='duckdb' or method='sqlalchemy'",
        database=db.name,
    )


# -- connectorx ------------------------------------------------------------------------------
def connectorx_url(db: Database, params: ConnectParams) -> str:
    """connectorx's URL for the resolved login (password included: for the driver only)."""
    scheme = db.backend.connectorx_scheme
    if scheme is None:
        raise DbwireError(
            f"database {db.name!r}: dbwire uses connectorx for MySQL, MariaDB and PostgreSQL "
            f"only, not {db.backend.name}; leave method unset",
            database=db.name,
        )
    password = params.password_value()
    userinfo = quote(params.user or "", safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    host = params.host or "127.0.0.1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    url = f"{scheme}://{userinfo}@{host}:{params.port}/{quote(params.database or '', safe='')}"
    options, gap = db.backend.connectorx_tls(params)
    if gap is not None:
        # Never a weaker connection than configured: no TLS, or less verification.
        pg = scheme == "postgresql"
        other = "method='duckdb' or method='adbc'" if pg else "method='duckdb'"
        raise ConfigError(
            f"database {db.name!r}: method='connectorx' cannot honour the TLS settings "
            f"{gap}. Fix: leave method unset (collect() then reads through DuckDB's "
            f"{'postgres' if pg else 'mysql'} extension, which takes them all), or pass {other}",
            database=db.name,
        )
    if options:
        url += "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items())
    return url


def _import_connectorx(db: Database) -> Any:
    try:
        import connectorx
    except ImportError:
        raise MissingDependencyError(
            f"database {db.name!r}: method='connectorx' needs connectorx; "
            "run: pip install 'dbwire[fast]'",
            database=db.name,
        ) from None
    return connectorx


def _connect_timeout(db: Database) -> float:
    from dbwire.timeouts import connect_timeout

    return connect_timeout(db.config, db.backend.base_url().query)


# connectorx hands every MySQL DECIMAL over as decimal128(38, 10).
_CX_DECIMAL_SCALE = 10


class LossyTypesError(DbwireError):
    """connectorx would change values of these columns (DECIMAL digits past its scale)."""


@dataclass(frozen=True)
class Preflight:
    """What the bare login learned: DECIMAL columns' declared (precision, scale), those
    connectorx cannot carry exactly, and the row-estimate query's value if asked for."""

    decimals: dict[str, tuple[int, int]] = field(default_factory=dict)
    lossy: tuple[str, ...] = ()
    estimate: Any = None


def bare_login(
    db: Database, params: ConnectParams, sql: str, estimate_sql: str | None = None
) -> Preflight:
    """Log in once with the backend's own driver (no SQLAlchemy engine), bounded by the
    database's connect timeout; any failure becomes dbwire's explained error. On that one
    connection, read the DECIMAL types of `sql` (MySQL/MariaDB) and run `estimate_sql`.

    connectorx's connection pool retries a refused or unanswered login for 30 s, with
    no setting to shorten it; this login fails at once.
    """
    timeout = _connect_timeout(db)
    mysql = db.backend.name == "mysql"
    try:
        if not mysql:
            import psycopg

            conn: Any = psycopg.connect(libpq_conninfo(params, connect_timeout=timeout))
        else:
            given = db.backend.query_connect_args(is_async=False)
            extra = {k: v for k, v in given.items() if k in ("ssl", "unix_socket", "charset")}
            conn = _pymysql_connection_class()(
                host=params.host or "localhost",
                port=params.port or 3306,
                user=params.user or "",
                password=params.password_value() or "",
                database=params.database,
                connect_timeout=timeout,
                # PyMySQL's connect_timeout covers the TCP connect only; the handshake
                # reads need their own bound, or a server that never greets hangs here.
                read_timeout=timeout,
                write_timeout=timeout,
                **extra,
            )
    except Exception as exc:
        raise explain_failure(db, exc, "connectorx") from None
    try:
        decimals, lossy = _mysql_decimals(conn, sql) if mysql else ({}, ())
        estimate = None if estimate_sql is None else _scalar(conn, estimate_sql)
        return Preflight(decimals, lossy, estimate)
    finally:
        conn.close()


@functools.cache
def _pymysql_connection_class() -> Any:
    """PyMySQL's Connection, without the CA store its preferred TLS loads and never reads.

    Given no ssl argument PyMySQL tries TLS with verification off (CERT_NONE, no hostname
    check), yet loads the system CA certificates first: about 30 ms of the login before
    connectorx. The same unverified context without them; any ssl argument is PyMySQL's.
    """
    import ssl

    import pymysql

    class Connection(pymysql.connections.Connection):  # type: ignore[misc]
        def _create_ssl_ctx(self, sslp: Any) -> Any:
            if sslp:
                return super()._create_ssl_ctx(sslp)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context

    return Connection


def _scalar(conn: Any, sql: str) -> Any:
    """The first value of a small query on a DB-API connection; None if it fails (an
    estimate is a nicety: the collect itself says what is wrong)."""
    try:
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
    except Exception:
        return None
    return None if row is None else row[0]


def _mysql_decimals(conn: Any, sql: str) -> tuple[dict[str, tuple[int, int]], tuple[str, ...]]:
    """DECIMAL columns of `sql` with their declared precision and scale, and the names of
    those connectorx would round (scale above its 10) or overflow (precision above 38).

    connectorx hands every DECIMAL over as decimal128(38, 10); collect() casts it back to
    the declared type. PyMySQL reports a column's display length, sign and point
    included, so the precision is derived from it and the UNSIGNED flag.
    """
    from pymysql.constants import FIELD_TYPE, FLAG

    found: dict[str, tuple[int, int]] = {}
    lossy: list[str] = []
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT * FROM ({sql.strip().rstrip(';')}) AS _dbwire_q LIMIT 0")
            for field in cursor._result.fields or ():
                if field.type_code not in (FIELD_TYPE.NEWDECIMAL, FIELD_TYPE.DECIMAL):
                    continue
                scale = int(field.scale)
                signed = not field.flags & FLAG.UNSIGNED
                precision = int(field.length) - (1 if scale else 0) - (1 if signed else 0)
                if scale > _CX_DECIMAL_SCALE or precision - scale > 38 - _CX_DECIMAL_SCALE:
                    lossy.append(field.name)
                elif 0 < precision <= 38:  # DuckDB's widest DECIMAL
                    found[field.name] = (precision, scale)
    except Exception:  # not a query that nests (SHOW ..., CALL ...): keep connectorx's types
        return {}, ()
    return found, tuple(lossy)


@contextmanager
def connectorx_stream(
    db: Database,
    query_or_table: str,
    *,
    is_table: bool,
    batch_size: int,
    estimate_sql: str | None = None,
) -> Iterator[tuple[pa.RecordBatchReader, Preflight]]:
    """connectorx's Arrow stream of the query (no SQLAlchemy), and what the login before
    it learned (DECIMAL types, the row estimate)."""
    require_pyarrow(db)
    cx = _import_connectorx(db)
    params = db.connect_params()
    url = connectorx_url(db, params)
    sql = select_sql(query_or_table, db.backend.connectorx_quote, is_table)
    preflight = bare_login(db, params, sql, estimate_sql)
    if preflight.lossy:
        raise LossyTypesError(
            f"database {db.name!r}: connectorx would round DECIMAL column(s) "
            f"{', '.join(preflight.lossy)} to {_CX_DECIMAL_SCALE} decimal places (or overflow "
            "them); pass method='duckdb' (DuckDB's mysql extension keeps them exactly)",
            database=db.name,
        )
    try:
        reader = cx.read_sql(url, sql, return_type="arrow_stream", batch_size=batch_size)
    except Exception as exc:
        raise explain_failure(db, exc, "connectorx") from None
    yield reader, preflight


# -- ADBC (PostgreSQL) -----------------------------------------------------------------------
def _conninfo_value(value: str) -> str:
    # libpq's keyword/value syntax: quote with '...', backslash-escape \ and '.
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def libpq_conninfo(params: ConnectParams, *, connect_timeout: float = 10.0) -> str:
    """A keyword/value conninfo for libpq (the ADBC driver) from the resolved login."""
    hosts = params.hosts or ((params.host or "", params.port or 5432),)
    pairs: dict[str, str] = {
        "host": ",".join(h for h, _ in hosts),
        "port": ",".join(str(p) for _, p in hosts),
    }
    if params.user is not None:
        pairs["user"] = params.user
    if params.database is not None:
        pairs["dbname"] = params.database
    password = params.password_value()
    if password is not None:
        pairs["password"] = password
    for key in _LIBPQ_PASSTHROUGH:
        value = params.options.get(key)
        if value:
            pairs[key] = value
    # libpq waits forever by default, and counts whole seconds (at least 2).
    pairs.setdefault("connect_timeout", str(max(2, round(connect_timeout))))
    return " ".join(f"{k}={_conninfo_value(v)}" for k, v in pairs.items())


def _import_adbc(db: Database) -> Any:
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        raise MissingDependencyError(
            f"database {db.name!r}: method='adbc' needs adbc-driver-postgresql; "
            "run: pip install 'dbwire[fast]'",
            database=db.name,
        ) from None
    return adbc


@contextmanager
def adbc_connection(db: Database) -> Iterator[Any]:
    """An ADBC DBAPI connection to the PostgreSQL database (libpq, no SQLAlchemy)."""
    if db.backend.name != "postgresql":
        raise DbwireError(
            f"database {db.name!r}: method='adbc' reads PostgreSQL only, not "
            f"{db.backend.name}; leave method unset",
            database=db.name,
        )
    require_pyarrow(db)
    adbc = _import_adbc(db)
    try:
        conninfo = libpq_conninfo(db.connect_params(), connect_timeout=_connect_timeout(db))
        conn = adbc.connect(conninfo, autocommit=True)
    except Exception as exc:
        raise explain_failure(db, exc, "adbc") from None
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def adbc_stream(
    conn: Any, db: Database, query_or_table: str, *, is_table: bool, batch_size: int | None
) -> Iterator[pa.RecordBatchReader]:
    """The query's Arrow stream on an open ADBC connection; `batch_size` rows per batch
    when given, else the driver's own batches."""
    sql = select_sql(query_or_table, '"', is_table)
    cursor = conn.cursor()
    try:
        # libpq's COPY stream is cut into batches by size, not rows; the hint keeps each
        # batch near batch_size rows of a narrow table. An older driver without the
        # option keeps its default batches.
        if batch_size is not None:
            with suppress(Exception):
                cursor.adbc_statement.set_options(
                    **{"adbc.postgresql.batch_size_hint_bytes": str(max(batch_size, 1) * 64)}
                )
        try:
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
        except Exception as exc:
            raise explain_failure(db, exc, "adbc") from None
        yield reader
    finally:
        cursor.close()


def adbc_scalar(conn: Any, sql: str) -> Any:
    """The first value of a small query on an open ADBC connection."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
        return None if row is None else row[0]
    finally:
        cursor.close()
