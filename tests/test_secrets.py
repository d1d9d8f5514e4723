"""The canary scan: a real password never appears in anything dbwire prints, logs or raises."""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import dbwire
from dbwire import Database, DatabaseConfig

CANARY = "Canary-scan-9b7e41"


def _admin_in_app_db(server: Any, sql: str) -> None:
    """Run sql as the superuser inside the application database (grants are per database)."""
    url = make_url(server.admin_url).set(database=server.database, drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def canary_role(pg_server: Any, pg_url: str) -> Iterator[str]:
    name = f"canary_{uuid.uuid4().hex[:8]}"
    pg_server.run_sql_admin(f"CREATE ROLE {name} LOGIN PASSWORD '{CANARY}'")
    _admin_in_app_db(pg_server, f"GRANT ALL ON SCHEMA public TO {name}")
    yield name
    _admin_in_app_db(pg_server, f"DROP OWNED BY {name}")
    pg_server.run_sql_admin(f"DROP ROLE {name}")


def test_canary_appears_nowhere(
    pg_server: Any, canary_role: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = (
        f"postgresql://{canary_role}:{CANARY}@{pg_server.host}:{pg_server.port}/"
        f"{pg_server.database}"
    )
    seen: list[str] = []
    config = dbwire.load_config(
        {"databases": {"canary": {"url": url, "echo": True, "log_queries": True}}}, environ={}
    )
    db = dbwire.connect("canary", config=config)
    seen += [repr(config), str(config), repr(config.databases["canary"])]
    seen += [repr(db), str(db), db.url, repr(db.connect_params())]
    seen += [repr(db.engine), repr(db.engine.url), str(db.engine.url)]
    with db.session() as s:
        s.execute(text("CREATE TABLE canary_t (x TEXT)"))
        s.execute(text("INSERT INTO canary_t VALUES (:v)"), {"v": "payload"})
    seen.append(repr(db.execute_query("SELECT x FROM canary_t")))

    async def use_async() -> None:
        async with db.async_session() as s:
            await s.execute(text("SELECT count(*) FROM canary_t"))
        seen.append(repr(db.async_engine))
        await db.aclose()

    asyncio.run(use_async())
    # A failure after login (not a login failure) must not leak either.
    broken = Database(DatabaseConfig(name="canary2", url=url))
    with pytest.raises(Exception) as info:
        broken.execute_query("SELECT * FROM no_such_table")
    seen += traceback.format_exception(info.value)
    broken.close()
    seen.append(caplog.text)
    assert any("INSERT INTO canary_t" in line for line in seen), "the log was not captured"
    for line in seen:
        assert CANARY not in line
