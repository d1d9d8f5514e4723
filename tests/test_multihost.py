"""Multi-host URLs past the first host: each host logs in with its own .pgpass line, as libpq
reads it, and CREATE/DROP DATABASE fail over like a session (a real server; the first host is a
closed port). The DuckDB store attaches past it too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import dbwire
from servers import DatabaseServer, free_port


def _pgpass(tmp_path: Path, lines: list[str]) -> dict[str, str]:
    passfile = tmp_path / "pgpass"
    passfile.write_text("".join(line + "\n" for line in lines))
    passfile.chmod(0o600)
    return {"PGPASSFILE": str(passfile), "HOME": str(tmp_path)}


def _where(url: str, environ: dict[str, str], driver: str) -> int:
    db = dbwire.connect(url, environ=environ, connect_timeout=5)
    try:
        if driver == "psycopg":
            return int(db.execute_query("SELECT inet_server_port() AS p")[1][0]["p"])

        async def run() -> int:
            try:
                _, rows = await db.async_execute_query("SELECT inet_server_port() AS p")
                return int(rows[0]["p"])
            finally:
                await db.aclose()

        return asyncio.run(run())
    finally:
        db.close()


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_second_host_uses_its_own_pgpass_line_when_the_first_has_none(
    tmp_path: Path, pg_server: DatabaseServer, pg_url: str, driver: str
) -> None:
    down = free_port()
    s = pg_server
    environ = _pgpass(tmp_path, [f"{s.host}:{s.port}:*:{s.user}:{s.password}"])
    url = f"postgresql://{s.user}@{s.host}:{down},{s.host}:{s.port}/{s.database}"
    assert _where(url, environ, driver) == s.port


def test_second_host_uses_its_own_line_when_the_first_has_another(
    tmp_path: Path, pg_server: DatabaseServer, pg_url: str
) -> None:
    """libpq (psycopg) looks every host up; asyncpg takes one line for all hosts (README)."""
    down = free_port()
    s = pg_server
    environ = _pgpass(
        tmp_path,
        [f"{s.host}:{down}:*:{s.user}:not-this-one", f"{s.host}:{s.port}:*:{s.user}:{s.password}"],
    )
    url = f"postgresql://{s.user}@{s.host}:{down},{s.host}:{s.port}/{s.database}"
    assert _where(url, environ, "psycopg") == s.port
    with dbwire.connect(url, environ=environ) as db:
        assert "not-this-one" not in repr(db.connect_params()) + repr(db)


def test_create_and_drop_database_fail_over_like_a_session(
    tmp_path: Path, pg_server: DatabaseServer, pg_url: str
) -> None:
    down = free_port()
    s = pg_server
    environ = _pgpass(tmp_path, [f"{s.host}:{s.port}:*:{s.user}:{s.password}"])
    s.run_sql_admin(f"ALTER ROLE {s.user} CREATEDB")
    url = f"postgresql://{s.user}@{s.host}:{down},{s.host}:{s.port}/multihost_made"
    with dbwire.connect(url, environ=environ) as db:
        assert db.create_database() is True
        assert db.database_exists() is True
        assert db.execute_query("SELECT current_database() AS d")[1] == [{"d": "multihost_made"}]
        db.dispose_pools()
        assert db.drop_database() is True
        assert db.database_exists() is False


def test_the_store_attaches_past_a_down_first_host(
    tmp_path: Path, pg_server: DatabaseServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBWIRE_DUCKDB_OFFLINE", "1")
    down = free_port()
    s = pg_server
    url = f"postgresql://{s.user}:{s.password}@{s.host}:{down},{s.host}:{s.port}/{s.database}"
    with (
        dbwire.connect(url, environ=_pgpass(tmp_path, [])) as db,
        dbwire.get_duckdb_connection(None) as store,
    ):
        alias = store.attach(db, alias="pg")
        port = store.execute(
            f"SELECT * FROM postgres_query('{alias}', 'SELECT inet_server_port()')"
        )
        assert port.fetchone() == (s.port,)
        secrets = store.execute("SELECT secret_string FROM duckdb_secrets()").fetchall()
        assert s.password not in repr(secrets)
