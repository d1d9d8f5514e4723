"""psycopg and asyncpg alike: the same libpq sources give both drivers the same login.

Each case logs in three ways against the real test server, in the same run: real libpq
(psycopg.connect with the raw conninfo, libpq resolving everything itself), dbwire's
sync engine (psycopg) and dbwire's async engine (asyncpg). All three must land on the
same user, database and port; asyncpg alone would not read pg_service.conf or honour
PGPASSFILE the way libpq does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from clean_env import CleanEnv
from dbwire import Database, DatabaseConfig

IDENTITY = "SELECT current_user, current_database(), inet_server_port()"


@dataclass
class Case:
    """One way of telling libpq where to go: a dbwire URL, the same as conninfo, an env."""

    url: str
    conninfo: str
    environ: dict[str, str]
    config: dict[str, Any]


@pytest.fixture
def login(pg_server: Any, pg_url: str) -> Iterator[tuple[str, str]]:
    """A role with a password only .pgpass / PGPASSWORD / service files will know."""
    role = f"drv_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    pg_server.run_sql_admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    yield role, password
    pg_server.run_sql_admin(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
    )
    pg_server.run_sql_admin(f"DROP ROLE {role}")


def _private(path: Path, content: str) -> str:
    path.write_text(content)
    path.chmod(0o600)
    return str(path)


def _cases(server: Any, role: str, password: str, tmp: Path) -> dict[str, Case]:
    host, port, db = server.host, server.port, server.database
    pgpass = _private(tmp / "pgpass", f"{host}:{port}:{db}:{role}:{password}\n")
    wildcard = _private(tmp / "pgpass-wild", f"# any host\n*:*:*:{role}:{password}\n")
    service = _private(
        tmp / "pg_service.conf",
        f"[app]\nhost={host}\nport={port}\ndbname={db}\nuser={role}\n",
    )
    return {
        "pgpassfile-env": Case(
            f"postgresql://{role}@{host}:{port}/{db}",
            f"host={host} port={port} dbname={db} user={role}",
            {"PGPASSFILE": pgpass},
            {},
        ),
        "pg-env-only": Case(
            "postgresql://",
            "",
            {
                "PGHOST": host,
                "PGPORT": str(port),
                "PGUSER": role,
                "PGDATABASE": db,
                "PGPASSFILE": pgpass,
            },
            {},
        ),
        "pgpassword-beats-pgpass": Case(
            f"postgresql://{role}@{host}:{port}/{db}",
            f"host={host} port={port} dbname={db} user={role}",
            {"PGPASSWORD": password, "PGPASSFILE": _private(tmp / "wrong", "*:*:*:*:nope\n")},
            {},
        ),
        "wildcard-line": Case(
            f"postgresql://{role}@{host}:{port}/{db}",
            f"host={host} port={port} dbname={db} user={role}",
            {"PGPASSFILE": wildcard},
            {},
        ),
        "passfile-field": Case(  # seed 001's PROJECT_DB_PGPASS
            f"postgresql://{role}@{host}:{port}/{db}",
            f"host={host} port={port} dbname={db} user={role} passfile={pgpass}",
            {},
            {"passfile": pgpass},
        ),
        "service-file": Case(
            "postgresql://?service=app",
            "service=app",
            {"PGSERVICEFILE": service, "PGPASSFILE": pgpass},
            {},
        ),
        "service-env": Case(
            "postgresql://",
            "",
            {"PGSERVICE": "app", "PGSERVICEFILE": service, "PGPASSFILE": pgpass},
            {},
        ),
        "url-dbname-over-service": Case(
            f"postgresql:///{db}?service=app",
            f"service=app dbname={db}",
            {"PGSERVICEFILE": service, "PGPASSFILE": pgpass},
            {},
        ),
    }


CASES = [
    "pgpassfile-env",
    "pg-env-only",
    "pgpassword-beats-pgpass",
    "wildcard-line",
    "passfile-field",
    "service-file",
    "service-env",
    "url-dbname-over-service",
]


@pytest.fixture
def environ(clean_env: CleanEnv) -> Callable[[dict[str, str]], None]:
    """Set PG* variables on a clean environment (libpq reads the real process environment)."""

    def apply(values: dict[str, str]) -> None:
        clean_env.set(**values)

    return apply


@pytest.mark.parametrize("case_name", CASES)
def test_libpq_psycopg_and_asyncpg_agree(
    pg_server: Any,
    login: tuple[str, str],
    tmp_path: Path,
    environ: Callable[[dict[str, str]], None],
    case_name: str,
) -> None:
    role, password = login
    case = _cases(pg_server, role, password, tmp_path)[case_name]
    environ(case.environ)

    with psycopg.connect(case.conninfo) as raw:  # real libpq, resolving on its own
        expected = raw.execute(IDENTITY).fetchone()
    assert expected == (role, pg_server.database, pg_server.port)

    db = Database(DatabaseConfig(name=case_name, url=case.url, **case.config))
    try:
        with db.connect() as conn:
            assert tuple(conn.execute(text(IDENTITY)).one()) == expected

        async def through_asyncpg() -> tuple[Any, ...]:
            async with db.async_connect() as conn:
                return tuple((await conn.execute(text(IDENTITY))).one())

        assert asyncio.run(through_asyncpg()) == expected
    finally:
        db.close()
