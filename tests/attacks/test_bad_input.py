"""Bad input is a DbwireError naming the field and the fix, raised before any connect.

One case per input that used to escape as a raw exception (TypeError, AttributeError,
ArgumentError, ValueError, UnicodeError, PydanticSerializationError, duckdb.IOException,
ResourceClosedError), then the mapped cross-driver URL keys against the real servers,
sync and async: what is accepted reaches the driver, what is not is refused.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import dbwire
from dbwire import ConfigError, ConnectError, DbwireError
from dbwire.store.local import get_duckdb_connection
from servers import free_port

CANARY = f"canary-{uuid.uuid4().hex[:10]}"
LONG_LABEL = "a" * 70


def _chain_text(exc: BaseException) -> str:
    """Everything a user or a log could see of exc: message, repr, traceback, causes."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def _closed_port() -> int:
    return free_port()


def _raises(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # the test inspects whatever escaped
        return exc
    raise AssertionError("expected an error, none was raised")


# Each: (id, action, expected DbwireError subclass, words the message must contain).
# Actions build the Database (dbwire.connect/load_config) and nothing else: the refusal
# happens at config validation, before any engine or connection exists.
def _connect(url: str, **kw: Any) -> Callable[[], object]:
    return lambda: dbwire.connect(url, name=f"bad-{uuid.uuid4().hex[:6]}", **kw)


PORT = _closed_port()
FINDINGS: list[tuple[str, Callable[[], object], type[DbwireError], tuple[str, ...]]] = [
    (
        "pg-more-ports-than-hosts",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1/d?port=-1&port=-1"),
        ConfigError,
        ("port '-1'", "1 to 65535"),
    ),
    (
        "pg-port-list-for-one-host",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1/d?port=5432&port=5433"),
        ConfigError,
        ("2 ports for 1 host", "one port for every host"),
    ),
    (
        "pg-port-list-longer-than-host-list",
        _connect(f"postgresql://u:{CANARY}@h1,h2/d?port=1&port=2&port=3"),
        ConfigError,
        ("3 ports for 2 host",),
    ),
    (
        "mysql-options",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?options=-c%20x%3Dy"),
        ConfigError,
        ("'options'", "accepted:", "sslmode"),
    ),
    (
        "mysql-service",
        _connect(f"mariadb://u:{CANARY}@127.0.0.1:{PORT}/d?service=prod"),
        ConfigError,
        ("'service'", "accepted:"),
    ),
    (
        "mysql-sslmode-bad-value",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?sslmode=sometimes"),
        ConfigError,
        ("sslmode=", "verify-full"),
    ),
    (
        "mysql-connect-args-unknown",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d", connect_args={"sslmode": "x"}),
        ConfigError,
        ("connect_args key 'sslmode'", "pymysql"),
    ),
    (
        "pg-connect-args-unknown",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1:{PORT}/d", connect_args={"bogus": 1}),
        ConfigError,
        ("connect_args key 'bogus'", "psycopg"),
    ),
    (
        "mysql-charset",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?charset=nope"),
        ConfigError,
        ("charset='nope'", "utf8mb4"),
    ),
    (
        "pg-query-port",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1:{PORT}/d?port=x"),
        ConfigError,
        ("port='x'", "whole number"),
    ),
    (
        "mysql-query-port",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?port=x"),
        ConfigError,
        ("'port'", "accepted:"),
    ),
    (
        "url-port",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1:x/d"),
        ConfigError,
        ("could not parse URL", "host:port"),
    ),
    (
        "pg-connect-timeout",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1:{PORT}/d?connect_timeout=abc"),
        ConfigError,
        ("connect_timeout='abc'",),
    ),
    (
        "mysql-connect-timeout",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?connect_timeout=abc"),
        ConfigError,
        ("connect_timeout='abc'", "seconds"),
    ),
    ("sqlite-host", _connect("sqlite://host/x.db"), ConfigError, ("no host", "sqlite:///")),
    (
        "duckdb-userinfo",
        _connect(f"duckdb://u:{CANARY}@h/x.duckdb"),
        ConfigError,
        ("no username", "duckdb:///"),
    ),
    (
        "sqlite-query-key",
        _connect("sqlite:///x.db?journal=wal"),
        ConfigError,
        ("'journal'", "accepted:"),
    ),
    (
        "duckdb-query-key",
        _connect("duckdb:///:memory:?bogus_setting=1"),
        ConfigError,
        ("'bogus_setting'", "accepted:"),
    ),
    (
        "surrogate-name",
        lambda: dbwire.connect("sqlite://", name="bad\ud800name"),
        ConfigError,
        ("field 'name'", "valid Unicode"),
    ),
    (
        "surrogate-url",
        _connect(f"postgresql://u:{CANARY}@h\udcff/d"),
        ConfigError,
        ("field 'url'", "valid Unicode"),
    ),
    (
        "surrogate-password",
        _connect("postgresql://u@h/d", password=f"{CANARY}\udcff"),
        ConfigError,
        ("field 'password'", "valid Unicode"),
    ),
    (
        "env-prefix-not-text",
        lambda: dbwire.load_config(
            {"databases": {"x": {"url": "sqlite://", "env_prefix": 3}}}, environ={}
        ),
        ConfigError,
        ("field 'env_prefix'", "valid string"),
    ),
    (
        "database-name-not-text",
        lambda: dbwire.load_config({"databases": {7: {"url": "sqlite://"}}}, environ={}),
        ConfigError,
        ("database name 7", "must be text"),
    ),
    (
        "pg-long-host-label",
        _connect(f"postgresql://u:{CANARY}@{LONG_LABEL}.example.com/d"),
        ConfigError,
        ("host", "63 characters"),
    ),
    (
        "mysql-empty-host-label",
        _connect(f"mysql://u:{CANARY}@db..example.com/d"),
        ConfigError,
        ("host 'db..example.com'", "63 characters"),
    ),
    # more attacks of the same kind, found while fuzzing
    (
        "nul-in-sqlite-path",
        _connect("sqlite:///sub/\x00x.db"),
        ConfigError,
        ("database contains a NUL", "remove it"),
    ),
    (
        "nul-in-duckdb-path",  # DuckDB would cut the name there and open another file
        _connect("duckdb:///zz\x00.duckdb"),
        ConfigError,
        ("database contains a NUL",),
    ),
    (
        "nul-in-password",
        _connect(f"postgresql://u:{CANARY}%00@127.0.0.1:{PORT}/d"),
        ConfigError,
        ("password contains a NUL",),
    ),
    (
        "nul-in-query-value",
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d?init_command=%00"),
        ConfigError,
        ("query key 'init_command' contains a NUL",),
    ),
    (
        "sqlite-uri-key-without-uri",  # mode=ro would quietly open the file read-write
        _connect("sqlite:///x.db?mode=ro"),
        ConfigError,
        ("'mode'", "uri=true"),
    ),
    (
        "query-key-given-twice",
        _connect(f"postgresql://u:{CANARY}@127.0.0.1:{PORT}/d?sslmode=require&sslmode=disable"),
        ConfigError,
        ("'sslmode'", "more than once"),
    ),
    (
        "mysql-options-field",  # options travel as URL query keys: the same rules
        _connect(f"mysql://u:{CANARY}@127.0.0.1:{PORT}/d", options={"sslcompression": "1"}),
        ConfigError,
        ("'sslcompression'", "or from options"),
    ),
    (
        "s3-connect-args",
        _connect("s3://bucket/p", connect_args={"endpoint": "x"}),
        ConfigError,
        ("connect_args key 'endpoint'", "accepted: none"),
    ),
    (
        "s3-query-key",
        _connect(f"s3://AKID:{CANARY}@bucket/p?endpoit=127.0.0.1:{PORT}"),
        ConfigError,
        ("'endpoit'", "did you mean 'endpoint'"),
    ),
]


@pytest.mark.parametrize(
    ("action", "kind", "words"),
    [pytest.param(a, k, w, id=i) for i, a, k, w in FINDINGS],
)
def test_bad_input_is_a_config_error_naming_the_field(
    action: Callable[[], object], kind: type[DbwireError], words: tuple[str, ...]
) -> None:
    exc = _raises(action)
    assert isinstance(exc, kind), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    message = str(exc)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"
    assert "database " in message  # names the database it is about
    assert CANARY not in _chain_text(exc)
    assert exc.__cause__ is None


def test_refused_query_keys_are_refused_before_any_connect() -> None:
    """The refusal comes from building the Database: no engine, no connection attempt."""
    silent = _closed_port()
    exc = _raises(_connect(f"mysql://u@127.0.0.1:{silent}/d?options=x"))
    assert isinstance(exc, ConfigError)
    assert "could not connect" not in str(exc)


def test_async_only_and_sync_only_keys_are_refused_for_the_other_engine() -> None:
    port = _closed_port()
    db = dbwire.connect(f"mysql://u@127.0.0.1:{port}/d?read_timeout=5", name="sync-only-key")
    # PyMySQL takes read_timeout; aiomysql has no such setting.
    assert db.backend.engine_options(is_async=False)["connect_args"]["read_timeout"] == 5.0
    exc = _raises(lambda: db.backend.engine_url(is_async=True))
    assert isinstance(exc, ConfigError)
    assert "'read_timeout'" in str(exc) and "sync" in str(exc)
    db.close()
    pg = dbwire.connect(f"postgresql://u@127.0.0.1:{port}/d?keepalives=1", name="libpq-only")
    assert pg.backend.engine_url(is_async=False).query["keepalives"] == "1"
    exc = _raises(lambda: pg.backend.engine_url(is_async=True))
    assert isinstance(exc, ConfigError) and "'keepalives'" in str(exc)
    pg.close()


def test_unreachable_s3_endpoint_is_a_connect_error_naming_the_endpoint(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"s3://AKID:{CANARY}@bucket/data?endpoint=127.0.0.1:{port}&use_ssl=false&url_style=path"
    db = dbwire.connect(url, name="s3-down")
    try:
        for action in (
            lambda: db.execute_query("SELECT * FROM 's3://bucket/data/x.parquet'"),
            db.get_schema,
        ):
            exc = _raises(action)
            assert isinstance(exc, ConnectError), repr(exc)
            assert f"endpoint '127.0.0.1:{port}'" in str(exc)
            assert "Fix:" in str(exc)
            assert CANARY not in _chain_text(exc)
        with get_duckdb_connection(tmp_path / "store.duckdb") as store:
            exc = _raises(lambda: store.collect(db, "x.parquet", table="t"))
            assert isinstance(exc, ConnectError), repr(exc)
            assert "endpoint" in str(exc) and CANARY not in _chain_text(exc)
            assert store.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
    finally:
        db.close()


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_collect_with_an_empty_query_is_a_config_error(tmp_path: Path, query: str) -> None:
    source = dbwire.connect(f"sqlite:///{tmp_path / 'src.db'}", name="collect-src")
    with source.session() as s:
        from sqlalchemy import text

        s.execute(text("CREATE TABLE t (x INTEGER)"))
        s.execute(text("INSERT INTO t VALUES (1)"))
    try:
        with get_duckdb_connection(tmp_path / "store.duckdb") as store:
            exc = _raises(lambda: store.collect(source, query, table="copy"))
            assert isinstance(exc, ConfigError), repr(exc)
            assert "query_or_table" in str(exc) and "collect-src" in str(exc)
            # nothing was created in the store, and the source is unchanged
            assert store.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
        assert source.execute_query("SELECT count(*) AS n FROM t")[1] == [{"n": 1}]
    finally:
        source.close()


# -- accepted keys reach the driver, sync and async, against the real servers --------------
@pytest.mark.mysql
def test_mysql_common_keys_are_mapped_for_pymysql_and_aiomysql(mysql_url: str) -> None:
    query = "application_name=dbwire-probe&connect_timeout=5&charset=utf8mb4&sslmode=disable"
    db = dbwire.connect(f"{mysql_url}?{query}", name="mysql-mapped")
    try:
        args = db.backend.engine_options(is_async=False)["connect_args"]
        assert args["program_name"] == "dbwire-probe"
        assert args["connect_timeout"] == 5.0
        assert "ssl" not in args  # disable: no TLS context handed to the driver
        assert db.execute_query("SELECT @@character_set_client AS cs")[1] == [{"cs": "utf8mb4"}]
    finally:
        db.close()


@pytest.mark.mysql
async def test_mysql_common_keys_work_on_aiomysql(mysql_url: str) -> None:
    db = dbwire.connect(f"{mysql_url}?application_name=dbwire-probe&ssl-mode=DISABLED", name="am")
    try:
        from sqlalchemy import text

        async with db.async_session() as s:
            assert (await s.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await db.aclose()


@pytest.mark.mysql
def test_mysql_sslmode_require_without_server_tls_is_a_connect_error(mysql_url: str) -> None:
    """The throwaway MariaDB has no TLS: require must fail, not fall back to clear text;
    prefer connects (in clear text, as libpq's prefer would)."""
    db = dbwire.connect(f"{mysql_url}?sslmode=require", name="mysql-require", connect_timeout=5)
    prefer = dbwire.connect(f"{mysql_url}?sslmode=prefer", name="mysql-prefer")
    try:
        args = db.backend.engine_options(is_async=False)["connect_args"]
        assert args["ssl"].verify_mode == 0  # require: encrypted, certificate not checked
        exc = _raises(lambda: db.execute_query("SELECT 1"))
        assert isinstance(exc, ConnectError), repr(exc)
        assert "SSL is required" in str(exc)
        assert prefer.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
    finally:
        db.close()
        prefer.close()


@pytest.mark.mysql
async def test_aiomysql_sslmode_require_without_server_tls_is_refused_not_clear_text(
    mysql_url: str, mysql_server: Any
) -> None:
    """aiomysql would fall back to clear text; dbwire refuses and closes that connection."""
    import asyncio

    user = make_url(mysql_url).username

    def sessions() -> int:
        rows = mysql_server.query_admin(
            f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
        )
        return int(rows[0][0])

    before = sessions()
    db = dbwire.connect(f"{mysql_url}?ssl-mode=REQUIRED", name="am-require", connect_timeout=5)
    try:
        for _ in range(2):  # a second try gets the same refusal, not a pooled clear-text one
            with pytest.raises(ConnectError) as caught:
                await db.async_execute_query("SELECT 1")
            assert "clear text" in str(caught.value) and "sslmode" in str(caught.value)
    finally:
        await db.aclose()
    for _ in range(50):  # the server notices the closed sockets shortly after
        if sessions() <= before:
            break
        await asyncio.sleep(0.1)
    assert sessions() <= before


@pytest.mark.mysql
def test_mysql_verify_ca_without_a_ca_file_is_refused(mysql_url: str) -> None:
    db = dbwire.connect(f"{mysql_url}?sslmode=verify-ca", name="mysql-verify")
    try:
        exc = _raises(lambda: db.execute_query("SELECT 1"))
        assert isinstance(exc, ConfigError) and "ssl_ca" in str(exc)
        password = make_url(mysql_url).password
        assert password and password not in _chain_text(exc)
    finally:
        db.close()


@pytest.mark.postgres
def test_pg_options_and_application_name_reach_psycopg_and_asyncpg(pg_url: str) -> None:
    import asyncio

    url = f"{pg_url}?options=-c%20statement_timeout%3D4321&application_name=dbwire-probe"
    db = dbwire.connect(url, name="pg-mapped")
    sql = (
        "SELECT current_setting('statement_timeout') AS st, "
        "current_setting('application_name') AS app"
    )
    expected = [{"st": "4321ms", "app": "dbwire-probe"}]
    try:
        assert db.execute_query(sql)[1] == expected

        async def run() -> list[dict[str, Any]]:
            rows = (await db.async_execute_query(sql))[1]
            await db.aclose()
            return rows

        assert asyncio.run(run()) == expected
    finally:
        db.close()


@pytest.mark.postgres
async def test_pg_target_session_attrs_reaches_asyncpg(pg_url: str) -> None:
    db = dbwire.connect(f"{pg_url}?target_session_attrs=read-write", name="pg-tsa")
    try:
        assert (await db.async_execute_query("SELECT 1 AS one"))[1] == [{"one": 1}]
    finally:
        await db.aclose()


def test_embedded_backends_take_their_own_query_keys(tmp_path: Path) -> None:
    lite = dbwire.connect(f"sqlite:///{tmp_path / 'a.db'}?timeout=3", name="lite-timeout")
    duck = dbwire.connect(f"duckdb:///{tmp_path / 'a.duckdb'}?threads=2", name="duck-threads")
    try:
        assert lite.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
        rows = duck.execute_query("SELECT current_setting('threads') AS t")[1]
        assert rows == [{"t": 2}]
    finally:
        lite.close()
        duck.close()


def test_cli_reports_a_refused_query_key_without_the_password(tmp_path: Path) -> None:
    """`dbwire url` and `dbwire check` show the refusal, naming the key, never the password."""
    from typer.testing import CliRunner

    from dbwire.cli import app

    config = tmp_path / "dbwire.toml"
    config.write_text(
        "[databases.legacy]\n"
        f'url = "mysql://app:{CANARY}@127.0.0.1:{_closed_port()}/shop?service=prod"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    url = runner.invoke(app, ["url", "legacy", "--config", str(config)])
    check = runner.invoke(app, ["check", "--json", "--config", str(config)])
    for result in (url, check):
        text = result.output + str(result.exception or "")
        assert CANARY not in text
        assert "'service'" in text, text
    assert url.exit_code == 2, url.output
    assert check.exit_code != 0, check.output


def test_sqlite_uri_mode_ro_really_opens_read_only(tmp_path: Path) -> None:
    """With uri=true, mode=ro reaches SQLite: a write fails and the data is unchanged."""
    path = tmp_path / "ro.db"
    writer = dbwire.connect(f"sqlite:///{path}", name="ro-writer")
    writer.execute_query("CREATE TABLE t (x INTEGER)")
    writer.execute_query("INSERT INTO t VALUES (1)")
    writer.close()
    exc = _raises(_connect(f"sqlite:///{path}?uri=true&mode=ro"))  # would open another file
    assert isinstance(exc, ConfigError) and "'file:' URI" in str(exc)
    reader = dbwire.connect(f"sqlite:///file:{path}?uri=true&mode=ro", name="ro-reader")
    try:
        assert reader.execute_query("SELECT count(*) AS n FROM t")[1] == [{"n": 1}]
        with pytest.raises(DbwireError, match="read-only"):
            reader.execute_query("INSERT INTO t VALUES (2)")
        assert reader.execute_query("SELECT count(*) AS n FROM t")[1] == [{"n": 1}]
    finally:
        reader.close()


@pytest.mark.mysql
async def test_mysql_password_in_the_url_query_still_logs_in(mysql_url: str) -> None:
    """?password= is what PyMySQL and aiomysql take: accepted, never echoed, sync and async."""
    url = make_url(mysql_url)
    password = url.password
    assert password
    bare = url.set(password=None).render_as_string(hide_password=False)
    db = dbwire.connect(f"{bare}?password={password}", name="mysql-query-password")
    try:
        assert db.execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
        assert (await db.async_execute_query("SELECT 2 AS two"))[1] == [{"two": 2}]
    finally:
        await db.aclose()


def test_one_port_serves_every_host_as_in_libpq() -> None:
    """libpq takes a single port for a host list; SQLAlchemy's URL parser wants one per host."""
    db = dbwire.connect(f"postgresql://u@127.0.0.1,localhost/d?port={PORT}", name="one-port")
    try:
        query = db.backend.engine_url(is_async=False).query
        assert query.get("port") == f"{PORT},{PORT}", query
        # asyncpg gets the host and port lists as connect arguments, not in the URL.
        assert db.engine is not None and db.async_engine is not None
    finally:
        db.close()
