"""Where a PostgreSQL connection goes is what libpq decides, for psycopg and asyncpg alike.

A second throwaway PostgreSQL, read-only by default (`ALTER DATABASE ... SET
default_transaction_read_only = on`), stands beside the session's server; the role has
the same password on both, so one URL logs in on either. Every check asks the server
which port it answered on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text
from servers import DatabaseServer, PostgresServer

import dbwire
from dbwire import ConfigError, DatabaseConfig, load_config

DBWIRE = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "dbwire"
WHERE = (
    "SELECT current_setting('port') AS port, inet_server_addr() IS NULL AS via_socket, "
    "current_database() AS db, current_setting('default_transaction_read_only') AS ro"
)


def _dead_port() -> int:
    """A loopback port where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def session_pg(pg_server: DatabaseServer) -> DatabaseServer:
    if not pg_server.is_running():
        pg_server.start()
    return pg_server


@pytest.fixture(scope="module")
def second(session_pg: DatabaseServer) -> Iterator[PostgresServer]:
    """A second throwaway server whose database starts every transaction read-only."""
    server = PostgresServer(user=session_pg.user, database=session_pg.database)
    try:
        server.start()
        pw = session_pg.password.replace("'", "''")
        server.run_sql_admin(f"ALTER ROLE \"{server.user}\" PASSWORD '{pw}'")
        server.run_sql_admin(
            f'ALTER DATABASE "{server.database}" SET default_transaction_read_only = on'
        )
        server.run_sql_admin(f'CREATE DATABASE svcdb OWNER "{server.user}"')
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A given environment with nothing in it that could route a connection."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _where(url: str, environ: dict[str, str], *, is_async: bool) -> dict[str, Any]:
    db = dbwire.connect(url, environ=environ, connect_timeout=5)
    try:
        if not is_async:
            with db.connect() as conn:
                return dict(conn.execute(text(WHERE)).mappings().one())

        async def run() -> dict[str, Any]:
            try:
                async with db.async_connect() as conn:
                    result = await conn.execute(text(WHERE))
                    return dict(result.mappings().one())
            finally:
                await db.aclose()

        return asyncio.run(run())
    finally:
        db.close()


DRIVERS = pytest.mark.parametrize("is_async", [False, True], ids=["psycopg", "asyncpg"])


@DRIVERS
def test_query_host_and_port_reach_that_server(
    second: PostgresServer, session_pg: DatabaseServer, env: dict[str, str], is_async: bool
) -> None:
    # SQLAlchemy's documented form: no host in the authority, host and port as query keys.
    url = (
        f"postgresql://{second.user}:{quote(session_pg.password, safe='')}@/"
        f"{second.database}?host=127.0.0.1&port={second.port}"
    )
    found = _where(url, env, is_async=is_async)
    assert found["port"] == str(second.port)
    assert found["via_socket"] is False


def _multi_host_urls(user: str, password: str, database: str, ports: list[int]) -> list[str]:
    pw = quote(password, safe="")
    authority = ",".join(f"127.0.0.1:{p}" for p in ports)
    query = "&".join(f"host=127.0.0.1:{p}" for p in ports)
    return [
        f"postgresql://{user}:{pw}@{authority}/{database}",  # libpq's comma list
        f"postgresql://{user}:{pw}@/{database}?{query}",  # SQLAlchemy's repeated ?host=
    ]


@DRIVERS
@pytest.mark.parametrize("form", [0, 1], ids=["authority-list", "repeated-query-host"])
def test_first_host_down_fails_over_to_the_second(
    second: PostgresServer,
    session_pg: DatabaseServer,
    env: dict[str, str],
    is_async: bool,
    form: int,
) -> None:
    urls = _multi_host_urls(
        second.user, session_pg.password, second.database, [_dead_port(), second.port]
    )
    found = _where(urls[form], env, is_async=is_async)
    assert found["port"] == str(second.port)


@DRIVERS
@pytest.mark.parametrize("form", [0, 1], ids=["authority-list", "repeated-query-host"])
def test_target_session_attrs_read_write_skips_the_read_only_server(
    second: PostgresServer,
    session_pg: DatabaseServer,
    env: dict[str, str],
    is_async: bool,
    form: int,
) -> None:
    ports = [second.port, session_pg.port]
    url = _multi_host_urls(second.user, session_pg.password, second.database, ports)[form]
    # Without the attribute the first (read-only) server answers: the check below can fail.
    plain = _where(url, env, is_async=is_async)
    assert (plain["port"], plain["ro"]) == (str(second.port), "on")
    sep = "&" if "?" in url else "?"
    routed = _where(f"{url}{sep}target_session_attrs=read-write", env, is_async=is_async)
    assert (routed["port"], routed["ro"]) == (str(session_pg.port), "off")


@DRIVERS
@pytest.mark.parametrize("shape", ["plain", "cloudsql"])
def test_percent_encoded_socket_host_connects_over_that_socket(
    second: PostgresServer, env: dict[str, str], tmp_path: Path, is_async: bool, shape: str
) -> None:
    directory = second.socket_dir
    if shape == "cloudsql":
        # Cloud SQL's /cloudsql/project:region:instance: colons inside the socket path.
        directory = str(tmp_path / "project:region:instance")
        os.symlink(second.socket_dir, directory)
    url = f"postgresql://{second.user}@{quote(directory, safe='')}:{second.port}/{second.database}"
    found = _where(url, env, is_async=is_async)
    assert found["via_socket"] is True
    assert found["port"] == str(second.port)


@DRIVERS
def test_service_file_supplies_the_database_name(
    second: PostgresServer,
    session_pg: DatabaseServer,
    env: dict[str, str],
    tmp_path: Path,
    is_async: bool,
) -> None:
    services = tmp_path / "pg_service.conf"
    services.write_text(
        f"[sec]\nhost=127.0.0.1\nport={second.port}\nuser={second.user}\n"
        f"password={session_pg.password}\ndbname=svcdb\n"
    )
    environ = {**env, "PGSERVICEFILE": str(services)}
    found = _where("postgresql:///?service=sec", environ, is_async=is_async)
    assert (found["db"], found["port"]) == ("svcdb", str(second.port))


def _psql() -> str:
    found = shutil.which("psql") or str(PostgresServer.find_bindir() / "psql")
    assert Path(found).is_file(), "psql is part of the installed server binaries"
    return found


def test_dbwire_url_reconnects_through_psql_and_dbwire(
    second: PostgresServer, session_pg: DatabaseServer, tmp_path: Path
) -> None:
    dead = _dead_port()
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{second.user}:{session_pg.password}\n")
    pgpass.chmod(0o600)
    socket_host = quote(second.socket_dir, safe="")
    config = tmp_path / "dbwire.toml"
    config.write_text(
        "[databases.sock]\n"
        f'url = "postgresql://{second.user}@{socket_host}:{second.port}/{second.database}"\n'
        "[databases.multi]\n"
        f'url = "postgresql://{second.user}@127.0.0.1:{dead},127.0.0.1:{session_pg.port}'
        f'/{second.database}"\n'
    )
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DBWIRE_CONFIG"
    }
    environ.update({"PGPASSFILE": str(pgpass), "HOME": str(tmp_path)})
    expected = {
        "sock": (
            f"postgresql://{second.user}@/{second.database}"
            f"?host={second.socket_dir}&port={second.port}"
        ),
        "multi": (
            f"postgresql://{second.user}@/{second.database}"
            f"?host=127.0.0.1,127.0.0.1&port={dead},{session_pg.port}"
        ),
    }
    for name, want in expected.items():
        shown = subprocess.run(
            [str(DBWIRE), "url", name, "-c", str(config)],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )
        assert shown.returncode == 0, shown.stderr
        url = shown.stdout.strip()
        assert url == want
        assert session_pg.password not in shown.stdout + shown.stderr
        # psql reads it back (the password from PGPASSFILE, PGPASSWORD unset) ...
        psql = subprocess.run(
            [_psql(), url, "-Atc", "select current_setting('port')"],
            capture_output=True,
            text=True,
            env=environ,
            timeout=30,
        )
        assert psql.returncode == 0, psql.stderr
        port = second.port if name == "sock" else session_pg.port
        assert psql.stdout.strip() == str(port)
        # ... and so does dbwire, from the same environment.
        given = {"PGPASSFILE": str(pgpass), "HOME": str(tmp_path)}
        assert _where(url, given, is_async=False)["port"] == str(port)


def test_env_prefix_in_code_and_in_a_file_behave_the_same(
    second: PostgresServer, session_pg: DatabaseServer, tmp_path: Path
) -> None:
    environ = {
        "HOME": str(tmp_path),
        "PROJECT_DB_HOST": "127.0.0.1",
        "PROJECT_DB_PORT": str(second.port),
        "PROJECT_DB_PASSWORD": session_pg.password,
        "PROJECT_DB_POOL_SIZE": "2",
    }
    # The written host and port lead nowhere: only the PROJECT_DB_* variables connect.
    written = f"postgresql://{second.user}@nowhere.invalid:1/{second.database}"
    config = tmp_path / "dbwire.toml"
    config.write_text(f'[databases.app]\nenv_prefix = "PROJECT_DB"\nurl = "{written}"\n')
    from_file = load_config(config, environ=environ).database("app")
    in_code = DatabaseConfig(name="app", env_prefix="PROJECT_DB", url=written)
    ports = []
    for cfg in (from_file, in_code):
        db = dbwire.connect(cfg, environ=environ, connect_timeout=5)
        try:
            assert (db.config.host, db.config.port, db.config.pool_size) == (
                "127.0.0.1",
                second.port,
                2,
            )
            assert db.config.field_source("port") == "env PROJECT_DB_PORT"
            ports.append(db.execute_query("SELECT current_setting('port') AS p")[1][0]["p"])
        finally:
            db.close()
    assert ports == [str(second.port)] * 2
    # An argument in code still wins over the variables.
    overridden = dbwire.connect(in_code, environ=environ, pool_size=4)
    try:
        assert overridden.config.pool_size == 4
    finally:
        overridden.close()
    # The same Manager path: a Config built in code reads the prefix too.
    manager = dbwire.Manager(dbwire.Config(databases={"app": in_code.with_environ(environ)}))
    try:
        assert manager.db("app").config.port == second.port
    finally:
        manager.close_all()


def test_multi_host_url_keeps_the_password_out_of_every_shown_form() -> None:
    canary = "s3cr3t-multi-host"
    raw = f"postgresql://u:{canary}@h1.example:5432,h2.example:5433/app?sslmode=require"
    cfg = DatabaseConfig(name="mh", url=raw)
    db = dbwire.Database(cfg)
    shown = [str(cfg), repr(cfg), cfg.model_dump_json(), str(cfg.url), repr(db.connect_params())]
    assert all(canary not in text_ for text_ in shown), shown
    assert cfg.url == (
        "postgresql://u:***@/app?host=h1.example,h2.example&port=5432,5433&sslmode=require"
    )
    assert cfg.url_with_password() == raw
    params = db.connect_params()
    assert params.hosts == (("h1.example", 5432), ("h2.example", 5433))
    assert params.password_value() == canary
    db.close()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("postgresql://u@h1:5432,h2:nope/app", "port"),
        ("postgresql://u@/app?host=h1:5432&host=h2:x", "port"),
        ("postgresql://u@h1,bad..name/app", "host"),
    ],
)
def test_bad_multi_host_input_is_a_config_error_naming_the_field(url: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        dbwire.Database(DatabaseConfig(name="mh", url=url))
    message = str(caught.value)
    assert "'mh'" in message and field in message, message


def test_each_host_is_bounded_by_the_connect_timeout(
    second: PostgresServer, session_pg: DatabaseServer, env: dict[str, str]
) -> None:
    # A listener that accepts and never answers: libpq's connect_timeout (per host) must
    # give up on it and go on to the live second host.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        urls = _multi_host_urls(
            second.user, session_pg.password, second.database, [port, second.port]
        )
        db = dbwire.connect(urls[0], environ=env, connect_timeout=2)
        try:
            found = db.execute_query("SELECT current_setting('port') AS p")[1][0]["p"]
        finally:
            db.close()
    assert found == str(second.port)


def test_load_balance_hosts_reaches_libpq(
    second: PostgresServer, session_pg: DatabaseServer, env: dict[str, str]
) -> None:
    # load_balance_hosts=random only works if libpq (through psycopg) gets the whole list:
    # over 20 fresh connections both servers answer (all on one: 2 in a million).
    url = _multi_host_urls(
        second.user, session_pg.password, second.database, [second.port, session_pg.port]
    )[0]
    db = dbwire.connect(f"{url}?load_balance_hosts=random", environ=env, connect_timeout=5)
    seen = set()
    try:
        for _ in range(20):
            with db.engine.connect() as conn:
                seen.add(conn.execute(text("SELECT current_setting('port')")).scalar_one())
                conn.invalidate()  # the next checkout opens a new connection
    finally:
        db.close()
    assert seen == {str(second.port), str(session_pg.port)}
