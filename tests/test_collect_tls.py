"""A MySQL/MariaDB database that asks for TLS gets it on every path, or a clear refusal.

The server (servers.tls) refuses clear-text logins over TCP, so a path that dropped the
URL's TLS settings fails here; `Ssl_cipher` is read through the path itself (DuckDB's
mysql_query(), connectorx's own query), so a path that logged in some other way shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pymysql
import pytest

import dbwire
from dbwire import Database
from dbwire.errors import ConfigError, DbwireError
from dbwire.store.arrow_sources import connectorx_url, libpq_conninfo
from dbwire.store.collect import choose_method, run
from dbwire.store.local import LocalStore, get_duckdb_connection
from servers.tls import TLSMariaDBServer, TLSPostgresServer

CIPHER_SQL = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"


# Extensions from one folder per module, never downloaded (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("hermetic_duckdb")


@pytest.fixture
def tls(mysql_tls_server: TLSMariaDBServer) -> TLSMariaDBServer:
    if not mysql_tls_server.is_running():
        mysql_tls_server.start()
    return mysql_tls_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    with get_duckdb_connection(tmp_path / "store") as opened:
        yield opened


def _url(server: TLSMariaDBServer, **query: Path | str) -> str:
    pairs = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
    return f"{server.url}?{pairs}" if pairs else server.url


def _db(server: TLSMariaDBServer, **query: Path | str) -> Database:
    return dbwire.connect(_url(server, **query), name=f"tls_{uuid.uuid4().hex[:6]}")


def _texts(exc: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        seen += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


def _collected_cipher(store: LocalStore, db: Database, method: str | None) -> tuple[str, str]:
    table = f"c_{uuid.uuid4().hex[:6]}"
    result = run(store, db, CIPHER_SQL, table=table, method=method)
    rows = store.execute(f"SELECT * FROM {table}").fetchall()
    assert len(rows) == 1 and rows[0][0] == "Ssl_cipher"
    return result.method, str(rows[0][1])


def test_the_server_refuses_a_clear_text_login(tls: TLSMariaDBServer) -> None:
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host=tls.host,
            port=tls.port,
            user=tls.user,
            password=tls.password,
            ssl_disabled=True,
            connect_timeout=5,
        )


def test_the_store_attaches_and_queries_over_verified_tls(
    tls: TLSMariaDBServer, store: LocalStore
) -> None:
    db = _db(tls, ssl_mode="VERIFY_CA", ssl_ca=tls.tls.ca)
    try:
        db.execute_query("CREATE TABLE IF NOT EXISTS tls_t (id INT PRIMARY KEY)")
        db.execute_query("REPLACE INTO tls_t VALUES (1), (2)")
        alias = store.attach(db)
        assert store.execute(f"SELECT count(*) FROM {alias}.dbwire.tls_t").fetchone() == (2,)
        row = store.execute(f"SELECT * FROM mysql_query('{alias}', $${CIPHER_SQL}$$)").fetchone()
        assert row is not None and row[0] == "Ssl_cipher" and row[1]
    finally:
        db.close()


def test_duckdb_alone_checks_the_configured_ca(tls: TLSMariaDBServer, store: LocalStore) -> None:
    # attach() logs in through db.engine first; attach_spec() leaves DuckDB on its own.
    db = _db(tls, ssl_mode="VERIFY_CA", ssl_ca=tls.tls.other_ca)
    spec = db.backend.duckdb_attach(readonly=True)
    with pytest.raises(DbwireError) as caught:
        store.attach_spec(db.name, "wrong_ca", spec, readonly=True, url=db.url)
    assert "TLS handshake failed" in str(caught.value)
    assert tls.password not in _texts(caught.value)


@pytest.mark.parametrize("method", [None, "connectorx", "duckdb"])
def test_collect_reads_over_verified_tls(
    tls: TLSMariaDBServer, store: LocalStore, method: str | None
) -> None:
    db = _db(tls, ssl_mode="VERIFY_CA", ssl_ca=tls.tls.ca)
    try:
        ran, cipher = _collected_cipher(store, db, method)
    finally:
        db.close()
    assert ran == (method or "connectorx")
    assert cipher  # TLS on the path's own connection, not only on the pre-login


def test_a_client_certificate_is_collected_through_duckdb(
    tls: TLSMariaDBServer, store: LocalStore
) -> None:
    db = _db(
        tls,
        ssl_mode="VERIFY_IDENTITY",
        ssl_ca=tls.tls.ca,
        ssl_cert=tls.tls.client_cert,
        ssl_key=tls.tls.client_key,
    )
    try:
        assert choose_method(db, CIPHER_SQL) == "duckdb"
        ran, cipher = _collected_cipher(store, db, None)
        assert (ran, bool(cipher)) == ("duckdb", True)
        with pytest.raises(ConfigError) as caught:
            run(store, db, CIPHER_SQL, table="cx", method="connectorx")
    finally:
        db.close()
    message = str(caught.value)
    assert db.name in message and "ssl_cert=" in message and "leave method unset" in message
    assert tls.password not in _texts(caught.value)


def test_every_path_refuses_an_unrelated_ca(tls: TLSMariaDBServer, store: LocalStore) -> None:
    db = _db(tls, ssl_mode="VERIFY_CA", ssl_ca=tls.tls.other_ca)
    failures: list[BaseException] = []
    try:
        for attempt in (
            lambda: db.execute_query("SELECT 1"),
            lambda: store.attach(db),
            *(
                lambda method=method: run(store, db, CIPHER_SQL, table="x", method=method)
                for method in (None, "connectorx", "duckdb")
            ),
        ):
            with pytest.raises(DbwireError) as caught:
                attempt()
            failures.append(caught.value)
    finally:
        db.close()
    assert len(failures) == 5
    for failure in failures:
        assert tls.password not in _texts(failure)
        fix = str(failure).partition("Fix:")[2]
        assert "certificate" in fix or "TLS" in fix, failure  # the fix is about TLS


# -- PostgreSQL: connectorx verifies against sslrootcert, or is refused ----------------------
PG_SSL_SQL = "SELECT ssl::text AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.fixture
def pg_tls(pg_tls_server: TLSPostgresServer) -> TLSPostgresServer:
    if not pg_tls_server.is_running():
        pg_tls_server.start()
    return pg_tls_server


def _pg_db(server: TLSPostgresServer, **query: Path | str) -> Database:
    pairs = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
    return dbwire.connect(f"{server.url}?{pairs}", name=f"pgtls_{uuid.uuid4().hex[:6]}")


def test_the_pg_server_refuses_a_clear_text_login(pg_tls: TLSPostgresServer) -> None:
    db = _pg_db(pg_tls, sslmode="disable")
    with pytest.raises(DbwireError):
        db.execute_query("SELECT 1")
    db.close()


@pytest.mark.parametrize(
    ("sslmode", "method"),
    [("verify-full", None), ("verify-full", "adbc"), ("verify-ca", "connectorx")],
)
def test_pg_collect_reads_over_verified_tls(
    pg_tls: TLSPostgresServer, store: LocalStore, sslmode: str, method: str | None
) -> None:
    db = _pg_db(pg_tls, sslmode=sslmode, sslrootcert=pg_tls.tls.ca)
    try:
        result = run(store, db, PG_SSL_SQL, table="pg_ssl", method=method)
    finally:
        db.close()
    assert result.method == (method or "duckdb")
    assert store.execute("SELECT * FROM pg_ssl").fetchall() == [("true",)]


@pytest.mark.parametrize("method", [None, "adbc", "connectorx"])
def test_pg_every_path_refuses_an_unrelated_ca(
    pg_tls: TLSPostgresServer, store: LocalStore, method: str | None
) -> None:
    db = _pg_db(pg_tls, sslmode="verify-ca", sslrootcert=pg_tls.tls.other_ca)
    try:
        with pytest.raises(DbwireError) as caught:
            run(store, db, PG_SSL_SQL, table="pg_x", method=method)
    finally:
        db.close()
    assert pg_tls.password not in _texts(caught.value)


# -- what each path is told, without a server -----------------------------------------------
def _my(query: str) -> Database:
    return dbwire.connect(f"mysql://u:Pw-secret-1@127.0.0.1:1/d?{query}", name="my_tls")


def test_the_duckdb_secret_carries_every_tls_setting() -> None:
    db = _my("ssl-mode=verify-full&ssl_check_hostname=false&sslrootcert=/c/ca.pem&sslcert=/c/a")
    secret = db.backend.duckdb_attach(readonly=True).secret
    assert {k: v for k, v in secret.items() if k.startswith("ssl")} == {
        "ssl_mode": "VERIFY_CA",
        "ssl_ca": "/c/ca.pem",
        "ssl_cert": "/c/a",
    }
    assert "ssl_mode" not in _my("charset=utf8mb4").backend.duckdb_attach(readonly=True).secret


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ssl_ca=/c/ca.pem", "ssl-mode=VERIFY_IDENTITY&prefer_socket=false&ssl-ca=/c/ca.pem"),
        ("sslmode=required", "ssl-mode=REQUIRED&prefer_socket=false"),
        ("ssl_mode=VERIFY_CA&ssl_ca=/c/ca.pem", "ssl-mode=VERIFY_CA&prefer_socket=false&"),
        ("ssl_mode=disabled", ""),
    ],
)
def test_the_connectorx_url_carries_mysql_tls(query: str, expected: str) -> None:
    db = _my(query)
    url = connectorx_url(db, db.connect_params())
    assert url.partition("?")[2].startswith(expected)
    assert choose_method(db, "t") == "connectorx"


@pytest.mark.parametrize("query", ["ssl_mode=PREFERRED", "ssl_mode=REQUIRED&ssl_key=/c/k"])
def test_mysql_tls_connectorx_cannot_carry_is_refused_before_any_login(query: str) -> None:
    db = _my(query)
    assert choose_method(db, "t") == "duckdb"
    with pytest.raises(ConfigError) as caught:
        connectorx_url(db, db.connect_params())
    assert "my_tls" in str(caught.value) and "Pw-secret-1" not in _texts(caught.value)


def _pg(query: str) -> Database:
    return dbwire.connect(f"postgresql://u:Pw-secret-1@127.0.0.1:1/d?{query}", name="pg_tls")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sslmode=verify-ca&sslrootcert=/c/ca.pem", "sslmode=require&sslrootcert=/c/ca.pem"),
        (
            "sslmode=require&sslcert=/c/a.crt&sslkey=/c/a.key",
            "sslmode=require&sslcert=/c/a.crt&sslkey=/c/a.key",
        ),
        ("sslmode=allow", "sslmode=prefer"),
    ],
)
def test_the_connectorx_url_carries_postgres_tls(query: str, expected: str) -> None:
    db = _pg(query)
    assert connectorx_url(db, db.connect_params()).partition("?")[2] == expected


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("sslmode=verify-full&sslrootcert=/c/ca.pem", "sslmode=verify-full"),
        ("sslmode=verify-ca", "sslmode=verify-ca"),
        ("sslmode=require&sslrootcert=/c/ca.pem&sslcrl=/c/crl.pem", "sslcrl"),
        ("sslmode=require&sslcert=/c/a.crt", "sslcert"),
    ],
)
def test_postgres_tls_connectorx_cannot_carry_is_refused_before_any_login(
    query: str, named: str, store: LocalStore
) -> None:
    # Port 1 has no server: a login attempt would raise ConnectError, not ConfigError.
    db = _pg(query)
    with pytest.raises(ConfigError) as caught:
        run(store, db, "SELECT 1", table="x", method="connectorx")
    message = str(caught.value)
    assert "pg_tls" in message and named in message and "leave method unset" in message
    assert "Pw-secret-1" not in _texts(caught.value)


def test_adbc_gets_libpq_tls_keywords() -> None:
    db = _pg("sslmode=verify-full&sslrootcert=/c/ca.pem&sslcrldir=/c/crls&sslsni=1")
    conninfo = libpq_conninfo(db.connect_params())
    for pair in ("sslmode='verify-full'", "sslrootcert='/c/ca.pem'", "sslcrldir='/c/crls'"):
        assert pair in conninfo
