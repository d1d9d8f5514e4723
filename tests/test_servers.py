"""The throwaway database servers behave like real servers: auth, crash, restart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from servers import (
    DatabaseServer,
    ExternalServer,
    ExternalServerError,
    PostgresServer,
    ServerUnavailable,
)
from servers.pgbouncer import PgBouncerServer


def _pid_gone(pid: int | None) -> bool:
    """True once ``pid`` no longer exists (a zombie awaiting its reaper counts as gone)."""
    assert pid is not None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def _needs_local(server: DatabaseServer) -> None:
    if isinstance(server, ExternalServer):
        pytest.skip("fault tests need a throwaway server, not an external one")


def _needs_admin(server: DatabaseServer) -> None:
    if isinstance(server, ExternalServer) and server.admin_url == server.url:
        pytest.skip("set DBWIRE_TEST_*_ADMIN_URL to run superuser tests on an external server")


def _pg_connect(url: str, **overrides: Any) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url, connect_timeout=5, autocommit=True, **overrides)


def _mysql_connect(url: str, **overrides: Any) -> pymysql.connections.Connection[Any]:
    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
        "connect_timeout": 5,
        "autocommit": True,
    }
    params.update(overrides)
    return pymysql.connect(**params)


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_pg_password_login_over_tcp(pg_server: DatabaseServer, pg_url: str) -> None:
    assert pg_url == (
        f"postgresql://{pg_server.user}:{pg_server.password}"
        f"@{pg_server.host}:{pg_server.port}/{pg_server.database}"
    )
    with _pg_connect(pg_url) as conn:
        row = conn.execute("SELECT current_user, current_database(), inet_server_port()").fetchone()
    assert row == ("dbwire", "dbwire", pg_server.port)  # a TCP session (port is NULL on sockets)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg_connect(pg_url, password="wrong-" + pg_server.password)
    with pytest.raises(psycopg.OperationalError):
        _pg_connect(pg_url, password="")


@pytest.mark.postgres
def test_pg_admin_sql(pg_server: DatabaseServer, pg_url: str) -> None:
    _needs_admin(pg_server)
    assert pg_server.admin_url.startswith("postgresql://postgres:")
    pg_server.run_sql_admin("CREATE DATABASE dbwire_admin_probe")
    pg_server.run_sql_admin("DROP DATABASE dbwire_admin_probe")
    pg_server.run_sql_admin("CREATE TEMP TABLE t (x int); INSERT INTO t VALUES (1)")
    rows = pg_server.query_admin(
        "SELECT rolsuper, rolcreatedb FROM pg_roles WHERE rolname = 'dbwire'"
    )
    assert rows == [(False, True)]
    # Password-based auth is what TCP logins use (scram for every host line).
    methods = pg_server.query_admin(
        "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
    )
    assert methods == [("scram-sha-256",)]


@pytest.mark.postgres
def test_pg_kill_and_recover(pg_server: DatabaseServer, pg_url: str) -> None:
    _needs_local(pg_server)
    with _pg_connect(pg_url) as conn:
        conn.execute("DROP TABLE IF EXISTS crash_probe")
        conn.execute("CREATE TABLE crash_probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO crash_probe VALUES (1, 'before the crash')")
    victim = _pg_connect(pg_url)  # an open session must die with the server
    pid = pg_server.pid

    pg_server.kill()

    assert not pg_server.is_running()
    assert _pid_gone(pid)
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()
    with pytest.raises(psycopg.OperationalError):
        _pg_connect(pg_url)

    pg_server.start()
    assert pg_server.is_running()
    assert pg_server.pid != pid
    with _pg_connect(pg_url) as conn:
        assert conn.execute("SELECT id, note FROM crash_probe").fetchall() == [
            (1, "before the crash")
        ]
        conn.execute("DROP TABLE crash_probe")


@pytest.mark.postgres
def test_pg_stop_start(pg_server: DatabaseServer, pg_url: str) -> None:
    _needs_local(pg_server)
    pid = pg_server.pid
    pg_server.stop()
    assert not pg_server.is_running()
    assert _pid_gone(pid)
    with pytest.raises(psycopg.OperationalError):
        _pg_connect(pg_url)
    pg_server.start()
    with _pg_connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.mysql
def test_mysql_password_login_over_tcp(mysql_server: DatabaseServer, mysql_url: str) -> None:
    assert mysql_url == (
        f"mysql://{mysql_server.user}:{mysql_server.password}"
        f"@{mysql_server.host}:{mysql_server.port}/{mysql_server.database}"
    )
    conn = _mysql_connect(mysql_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE(), @@port")
            user, database, port = cur.fetchone()
    finally:
        conn.close()
    assert user.startswith("dbwire@")
    assert (database, port) == ("dbwire", mysql_server.port)

    for bad in ("wrong-" + mysql_server.password, ""):
        with pytest.raises(pymysql.err.OperationalError) as excinfo:
            _mysql_connect(mysql_url, password=bad)
        assert excinfo.value.args[0] == 1045  # access denied
    with pytest.raises(pymysql.err.OperationalError):
        _mysql_connect(mysql_url, user="nobody", password="")  # no anonymous accounts


@pytest.mark.mysql
def test_mysql_admin_sql(mysql_server: DatabaseServer, mysql_url: str) -> None:
    _needs_admin(mysql_server)
    assert mysql_server.admin_url.startswith("mysql://root:")
    mysql_server.run_sql_admin(
        "CREATE DATABASE dbwire_admin_probe; DROP DATABASE dbwire_admin_probe"
    )
    assert mysql_server.query_admin("SELECT CURRENT_USER()")[0][0].startswith("root@")
    with pytest.raises(pymysql.err.OperationalError):
        _mysql_connect(mysql_server.admin_url, password="")  # root needs its password


@pytest.mark.mysql
def test_mysql_kill_and_recover(mysql_server: DatabaseServer, mysql_url: str) -> None:
    _needs_local(mysql_server)
    conn = _mysql_connect(mysql_url)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS crash_probe")
        cur.execute("CREATE TABLE crash_probe (id INT PRIMARY KEY, note TEXT) ENGINE=InnoDB")
        cur.execute("INSERT INTO crash_probe VALUES (1, 'committed before the crash')")
    pid = mysql_server.pid

    mysql_server.kill()  # immediately after the commit: it must still survive

    assert not mysql_server.is_running()
    assert _pid_gone(pid)
    with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 1")
    with pytest.raises(pymysql.err.OperationalError):
        _mysql_connect(mysql_url)

    mysql_server.start()
    assert mysql_server.is_running()
    conn = _mysql_connect(mysql_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, note FROM crash_probe")
            assert cur.fetchall() == ((1, "committed before the crash"),)
            cur.execute("DROP TABLE crash_probe")
    finally:
        conn.close()


@pytest.mark.mysql
def test_mysql_stop_start(mysql_server: DatabaseServer, mysql_url: str) -> None:
    _needs_local(mysql_server)
    pid = mysql_server.pid
    mysql_server.stop()
    assert not mysql_server.is_running()
    assert _pid_gone(pid)
    with pytest.raises(pymysql.err.OperationalError):
        _mysql_connect(mysql_url)
    mysql_server.restart()  # restart() of a stopped server just starts it
    conn = _mysql_connect(mysql_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


# --------------------------------------------------------------------------- plumbing


def test_fixture_restarts_a_killed_server(
    request: pytest.FixtureRequest, pg_server: DatabaseServer
) -> None:
    _needs_local(pg_server)
    pg_server.kill()
    url = request.getfixturevalue("pg_url")
    assert pg_server.is_running()
    with _pg_connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_external_server_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DBWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://app:p%40ss@db.example:6543/appdb"
    )
    monkeypatch.delenv("DBWIRE_TEST_POSTGRES_ADMIN_URL", raising=False)
    server = PostgresServer.from_env()
    assert isinstance(server, ExternalServer)
    assert (server.user, server.password, server.host, server.port, server.database) == (
        "app",
        "p@ss",
        "db.example",
        6543,
        "appdb",
    )
    assert server.url == "postgresql://app:p%40ss@db.example:6543/appdb"
    assert server.pid is None
    for action in (server.stop, server.kill, server.restart):
        with pytest.raises(ExternalServerError, match="throwaway server"):
            action()
    server.cleanup()  # never touches someone else's server

    monkeypatch.delenv("DBWIRE_TEST_POSTGRES_URL")
    assert PostgresServer.from_env() is None


def test_cleanup_removes_everything() -> None:
    if os.environ.get("DBWIRE_TEST_POSTGRES_URL"):
        pytest.skip("uses a throwaway server")
    try:
        server = PostgresServer()
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").strip().lower() in ("true", "1"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    with server:
        pid = server.pid
        assert server.is_running()
        base = server.base_dir
        assert base.is_dir()
    assert _pid_gone(pid)
    assert not base.exists()


def test_pgbouncer_kill_restart_and_cleanup(pgbouncer: PgBouncerServer) -> None:
    # A private one: killing the module's shared PgBouncer would disturb other tests.
    with PgBouncerServer(pgbouncer.upstream) as bouncer:
        base, pid = bouncer.base_dir, bouncer.pid
        bouncer.kill()
        assert _pid_gone(pid) and not bouncer.is_running()
        bouncer.start()  # the dead pid left in PgBouncer's pidfile does not stop it
        with psycopg.connect(bouncer.url, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid = bouncer.pid
    assert _pid_gone(pid)
    assert not base.exists()
