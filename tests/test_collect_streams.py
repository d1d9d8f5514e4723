"""store.collect() through Arrow streams (connectorx, ADBC): types, values, failures, progress."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import dbwire
from dbwire.errors import DbwireError
from dbwire.store.collect import CollectProgress, run
from dbwire.store.local import get_duckdb_connection
from servers.silent import SilentServer

# Extensions from one folder per module, never downloaded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("hermetic_duckdb")


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


@pytest.fixture(scope="module")
def my_typed(mysql_server: object) -> Iterator[tuple[str, str]]:
    """A MariaDB table of every kind of column the stream must keep, NULLs included."""
    from servers import MariaDBServer  # noqa: F401 - the fixture's server type

    url: str = mysql_server.url  # type: ignore[attr-defined]
    table = f"t_{uuid.uuid4().hex[:6]}"
    setup = dbwire.connect(url, name="my_setup")
    setup.execute_query(
        f"CREATE TABLE {table} (id INT PRIMARY KEY, ratio DOUBLE, price DECIMAL(12,3), "
        "seen DATETIME, payload BLOB, label VARCHAR(20))"
    )
    setup.execute_query(
        f"INSERT INTO {table} SELECT seq, IF(seq % 5 = 0, NULL, seq / 7), "
        "IF(seq % 6 = 0, NULL, seq * 1.125), "
        "IF(seq % 7 = 0, NULL, TIMESTAMP '2024-02-29 12:34:56' + INTERVAL seq MINUTE), "
        "IF(seq % 8 = 0, NULL, UNHEX(CONCAT('00FF', LPAD(HEX(seq), 6, '0')))), "
        "IF(seq % 9 = 0, NULL, CONCAT('é-', seq)) FROM seq_1_to_3000"
    )
    yield url, table
    setup.execute_query(f"DROP TABLE {table}")
    setup.close()


def test_mariadb_stream_keeps_every_type_value_and_null_without_a_sqlalchemy_login(
    my_typed: tuple[str, str], tmp_path: Path
) -> None:
    url, table = my_typed
    db = dbwire.connect(url, name="my_stream")
    seen: list[CollectProgress] = []
    try:
        with get_duckdb_connection(tmp_path / "s.duckdb") as store:
            result = run(store, db, table, table="copy", batch_size=500, progress=seen.append)
            assert (result.method, result.rows) == ("connectorx", 3000)
            types = dict(
                store.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'copy'"
                ).fetchall()
            )
            assert types == {
                "id": "INTEGER",
                "ratio": "DOUBLE",
                "price": "DECIMAL(12,3)",
                "seen": "TIMESTAMP",
                "payload": "BLOB",
                "label": "VARCHAR",
            }
            nulls = store.execute(
                "SELECT count(*) - count(ratio), count(*) - count(price), count(*) - count(seen), "
                "count(*) - count(payload), count(*) - count(label) FROM copy"
            ).fetchone()
            assert nulls == (600, 500, 428, 375, 333)
            row = store.execute("SELECT * FROM copy WHERE id = 1003").fetchone()
            assert row == (
                1003,
                pytest.approx(1003 / 7, abs=1e-3),  # MariaDB's seq / 7 has 4 decimals
                decimal.Decimal("1128.375"),
                dt.datetime(2024, 2, 29, 12, 34, 56) + dt.timedelta(minutes=1003),
                bytes.fromhex("00FF0003EB"),
                "é-1003",
            )
        # connectorx logged in by itself: dbwire's SQLAlchemy engine was never built.
        assert db._engines._engine is None
    finally:
        db.close()
    rows = [p.rows for p in seen if p.rows is not None]
    assert rows == sorted(rows) and rows[-1] == 3000 and len(rows) >= 6  # batch by batch
    assert all(p.method == "connectorx" for p in seen)
    assert seen[-1].estimate is not None and seen[-1].estimate > 0  # information_schema


def test_stream_append_empty_result_and_a_replace_that_fails_keeps_the_old_table(
    my_typed: tuple[str, str],
) -> None:
    url, table = my_typed
    db = dbwire.connect(url, name="my_append")
    try:
        with get_duckdb_connection() as store:
            assert (
                store.collect(db, f"SELECT id, label FROM {table} WHERE id <= 10", table="a") == 10
            )
            got = store.collect(
                db, f"SELECT id, label FROM {table} WHERE id > 2990", table="a", mode="append"
            )
            assert got == 10
            assert store.execute("SELECT count(*), sum(id) FROM a").fetchone() == (20, 29_955 + 55)
            assert store.collect(db, f"SELECT * FROM {table} WHERE 1 = 0", table="empty") == 0
            assert store.execute("SELECT count(*) FROM empty").fetchone() == (0,)
            with pytest.raises(DbwireError) as caught:
                store.collect(db, "SELECT * FROM no_such_table_here", table="a")
            message = str(caught.value)
            assert "my_append" in message and "no_such_table_here" in message
            assert _password(url) not in "".join(repr(e) for e in _chain(caught.value))
            assert store.execute("SELECT count(*) FROM a").fetchone() == (20,)
    finally:
        db.close()


def test_connectorx_refused_login_fails_at_once_with_dbwires_error(mysql_url: str) -> None:
    bad = mysql_url.replace(_password(mysql_url), "not-the-password-42")
    db = dbwire.connect(bad, name="my_badlogin")
    started = time.monotonic()
    try:
        with get_duckdb_connection() as store, pytest.raises(DbwireError) as caught:
            store.collect(db, "SELECT 1 AS one", table="t", method="connectorx")
    finally:
        db.close()
    assert time.monotonic() - started < 10  # connectorx's own pool would retry for 30 s
    text = "".join(f"{e!r} {e}" for e in _chain(caught.value))
    assert "my_badlogin" in str(caught.value)
    assert "not-the-password-42" not in text and _password(mysql_url) not in text


def test_the_login_before_connectorx_keeps_pymysqls_tls_choices() -> None:
    """No ssl argument: PyMySQL's preferred TLS, unverified, without loading the CA store;
    any ssl argument: PyMySQL's own context, verification included."""
    import ssl

    from dbwire.store.arrow_sources import _pymysql_connection_class

    connection = _pymysql_connection_class()
    preferred = connection.__new__(connection)._create_ssl_ctx({})
    assert (preferred.verify_mode, preferred.check_hostname) == (ssl.CERT_NONE, False)
    assert preferred.cert_store_stats()["x509_ca"] == 0
    assert preferred.minimum_version >= ssl.TLSVersion.TLSv1_2
    given = ssl.create_default_context()
    assert connection.__new__(connection)._create_ssl_ctx(given) is given


def test_connectorx_against_a_server_that_never_answers_fails_within_connect_timeout() -> None:
    with SilentServer() as silent:
        db = dbwire.connect(
            f"mysql://u:sekret-pw@127.0.0.1:{silent.port}/db", name="my_silent", connect_timeout=2
        )
        started = time.monotonic()
        try:
            with get_duckdb_connection() as store, pytest.raises(DbwireError) as caught:
                store.collect(db, "t", table="t")
        finally:
            db.close()
    assert time.monotonic() - started < 12
    assert "my_silent" in str(caught.value)
    assert "sekret-pw" not in "".join(f"{e!r} {e}" for e in _chain(caught.value))


# -- ADBC (PostgreSQL) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_typed(pg_server: object) -> Iterator[tuple[str, str]]:
    url: str = pg_server.url  # type: ignore[attr-defined]
    schema = f"a_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE SCHEMA {schema}; CREATE TABLE {schema}.src AS SELECT g::bigint AS id, "  # type: ignore[arg-type]
            "md5(g::text) AS tag, g / 3.0::float8 AS ratio, "
            "CASE WHEN g % 4 = 0 THEN NULL ELSE timestamp '2024-01-01' + g * interval '1 s' END "
            "AS seen, (g % 3 = 0) AS lucky FROM generate_series(1, 20000) g; "
            f"ANALYZE {schema}.src"
        )
    yield url, f"{schema}.src"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]


def test_adbc_gives_the_rows_and_types_of_duckdbs_own_reader(pg_typed: tuple[str, str]) -> None:
    url, table = pg_typed
    db = dbwire.connect(url, name="pg_adbc")
    seen: list[CollectProgress] = []
    try:
        with get_duckdb_connection() as store:
            via_adbc = run(store, db, table, table="a", method="adbc", progress=seen.append)
            via_duck = run(store, db, table, table="d", method="duckdb", progress=seen.append)
            assert (via_adbc.rows, via_duck.rows) == (20000, 20000)
            assert (via_adbc.method, via_duck.method) == ("adbc", "duckdb")
            assert via_adbc.estimate == 20000 and via_duck.estimate == 20000  # reltuples
            diff = store.execute("SELECT count(*) FROM (FROM a EXCEPT FROM d)").fetchone()
            assert diff == (0,)
            types = store.execute(
                "SELECT table_name, list(data_type ORDER BY column_index) FROM duckdb_columns() "
                "WHERE table_name IN ('a', 'd') GROUP BY ALL ORDER BY ALL"
            ).fetchall()
            assert types[0][1] == types[1][1]
            assert types[0][1][:3] == ["BIGINT", "VARCHAR", "DOUBLE"]
            assert store.execute("SELECT count(*) - count(seen) FROM a").fetchone() == (5000,)
            query = f"SELECT id, tag FROM {table} WHERE id % 1000 = 0"
            assert store.collect(db, query, table="q", method="adbc") == 20
            assert store.collect(db, query, table="q", method="adbc", mode="append") == 20
            assert store.execute("SELECT count(*) FROM q").fetchone() == (40,)
    finally:
        db.close()
    adbc_reports = [p for p in seen if p.method == "adbc"]
    assert adbc_reports and adbc_reports[-1].rows == 20000
    assert all(p.estimate == 20000 for p in adbc_reports)


def test_adbc_refuses_bad_input_with_clear_errors_and_no_secret(
    pg_url: str, mysql_url: str
) -> None:
    password = _password(pg_url)
    db = dbwire.connect(pg_url, name="pg_adbc_bad")
    bad = dbwire.connect(pg_url.replace(password, "wrong-pw-77"), name="pg_adbc_pw")
    my = dbwire.connect(mysql_url, name="my_adbc")
    try:
        with get_duckdb_connection() as store:
            with pytest.raises(DbwireError) as bad_sql:
                store.collect(db, "SELECT nope FROM nowhere_at_all", table="t", method="adbc")
            assert "pg_adbc_bad" in str(bad_sql.value) and "nowhere_at_all" in str(bad_sql.value)
            with pytest.raises(DbwireError) as bad_login:
                store.collect(bad, "SELECT 1", table="t", method="adbc")
            assert "pg_adbc_pw" in str(bad_login.value)
            with pytest.raises(DbwireError, match="PostgreSQL only"):
                store.collect(my, "SELECT 1", table="t", method="adbc")
        for caught in (bad_sql, bad_login):
            text = "".join(f"{e!r} {e}" for e in _chain(caught.value))
            assert password not in text and "wrong-pw-77" not in text
    finally:
        for each in (db, bad, my):
            each.close()


def test_adbc_against_a_server_that_never_answers_fails_within_connect_timeout() -> None:
    with SilentServer() as silent:
        db = dbwire.connect(
            f"postgresql://u:sekret-pw@127.0.0.1:{silent.port}/db",
            name="pg_silent",
            connect_timeout=2,
        )
        started = time.monotonic()
        try:
            with get_duckdb_connection() as store, pytest.raises(DbwireError) as caught:
                store.collect(db, "t", table="t", method="adbc")
        finally:
            db.close()
    assert time.monotonic() - started < 15
    assert "pg_silent" in str(caught.value)
    assert "sekret-pw" not in "".join(f"{e!r} {e}" for e in _chain(caught.value))


def test_a_source_that_dies_mid_stream_is_an_error_and_the_old_table_stays(
    pg_url: str,
) -> None:
    """The server ends the ADBC connection after the first batch: the collect fails with
    dbwire's error, at once, and the table it would have replaced is still there."""
    db = dbwire.connect(pg_url, name="pg_dies")
    killed: list[int] = []
    marker = f"dies_{uuid.uuid4().hex[:6]}"

    def kill_the_reader(update: CollectProgress) -> None:
        if killed or not update.rows:
            return
        with psycopg.connect(pg_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                "WHERE query LIKE %s AND pid <> pg_backend_pid()",
                (f"%{marker}%",),
            ).fetchall()
        killed.extend(int(pid) for ok, pid in rows if ok)

    big = f"SELECT g, repeat('x', 200) AS {marker} FROM generate_series(1, 3000000) g"
    started = time.monotonic()
    try:
        with get_duckdb_connection() as store:
            store.execute("CREATE TABLE kept AS SELECT 42 AS answer")
            with pytest.raises(DbwireError) as caught:
                store.collect(
                    db, big, table="kept", method="adbc", batch_size=1000, progress=kill_the_reader
                )
            assert killed
            assert "pg_dies" in str(caught.value) and "adbc" in str(caught.value)
            assert _password(pg_url) not in "".join(f"{e!r} {e}" for e in _chain(caught.value))
            assert store.execute("SELECT * FROM kept").fetchall() == [(42,)]
    finally:
        db.close()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("method", ["adbc", "connectorx"])
def test_a_source_that_dies_mid_stream_without_progress_is_an_error_and_the_old_table_stays(
    pg_url: str, method: str
) -> None:
    """Without a progress callback DuckDB reads the driver's stream itself; a server that
    ends the connection partway is still dbwire's error, and the old table stays."""
    db = dbwire.connect(pg_url, name="pg_dies_quiet")
    marker = f"quiet_{uuid.uuid4().hex[:6]}"
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            while not stop.is_set() and not killed:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity "
                    "WHERE query LIKE %s AND state = 'active' AND pid <> pg_backend_pid() "
                    "AND query_start < now() - interval '200 milliseconds'",
                    (f"%{marker}%",),
                ).fetchall()
                killed.extend(int(pid) for ok, pid in rows if ok)
                time.sleep(0.02)

    big = f"SELECT g, repeat('x', 200) AS {marker} FROM generate_series(1, 20000000) g"
    thread = threading.Thread(target=killer, daemon=True)
    started = time.monotonic()
    try:
        with get_duckdb_connection() as store:
            store.execute("CREATE TABLE kept AS SELECT 42 AS answer")
            thread.start()
            with pytest.raises(DbwireError) as caught:
                store.collect(db, big, table="kept", method=method, batch_size=10_000)
            assert killed
            assert "pg_dies_quiet" in str(caught.value) and method in str(caught.value)
            assert _password(pg_url) not in "".join(f"{e!r} {e}" for e in _chain(caught.value))
            assert store.execute("SELECT * FROM kept").fetchall() == [(42,)]
    finally:
        stop.set()
        thread.join()
        db.close()
    assert time.monotonic() - started < 60


def test_decimals_connectorx_would_round_go_through_duckdb_exactly(mysql_url: str) -> None:
    db = dbwire.connect(mysql_url, name="my_wide")
    table = f"w_{uuid.uuid4().hex[:6]}"
    exact = decimal.Decimal("123456789012345.123456789012345")
    try:
        db.execute_query(f"CREATE TABLE {table} (id INT, v DECIMAL(30,15))")
        db.execute_query(f"INSERT INTO {table} VALUES (1, {exact}), (2, NULL)")
        with get_duckdb_connection() as store:
            result = run(store, db, table, table="wide")
            assert (result.method, result.rows) == ("duckdb", 2)
            assert store.execute("SELECT v FROM wide WHERE id = 1").fetchone() == (exact,)
            with pytest.raises(DbwireError, match=r"connectorx would round DECIMAL column\(s\) v"):
                store.collect(db, table, table="wide2", method="connectorx")
    finally:
        db.execute_query(f"DROP TABLE {table}")
        db.close()
