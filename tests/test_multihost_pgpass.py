""".pgpass per host on a multi-host URL, as libpq reads it: each host's own line, so failover
to the second host logs in with the second host's password (a real server; the first host is a
closed port)."""

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
