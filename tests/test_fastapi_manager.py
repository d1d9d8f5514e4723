"""The FastAPI integration on real PostgreSQL: Depends(manager.get_db), the lifespan, the
health router (503 while the server is down) and the error handlers (403, 503)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbwire import Manager
from dbwire.integrations.fastapi import (
    create_health_router,
    get_db,
    install_exception_handlers,
    lifespan,
)


def _app(manager: Manager, table: str) -> FastAPI:
    app = FastAPI(lifespan=lifespan(manager))
    app.include_router(create_health_router(manager, timeout=5))
    install_exception_handlers(app, retry_after=7)

    @app.post("/items/{name}")
    def add(name: str, s: Session = Depends(manager.get_db)) -> dict[str, str]:  # noqa: B008
        s.execute(text(f"INSERT INTO {table} VALUES (:n)"), {"n": name})
        if name == "boom":
            raise RuntimeError("failed after the insert")
        return {"added": name}

    @app.post("/async/{name}")
    async def add_async(name: str, s: AsyncSession = Depends(manager.get_async_db)) -> None:  # noqa: B008
        await s.execute(text(f"INSERT INTO {table} VALUES (:n)"), {"n": name})

    @app.post("/readonly/{name}")
    def sneaky(name: str, s: Session = Depends(get_db(manager, readonly=True))) -> None:  # noqa: B008
        s.execute(text(f"INSERT INTO {table} VALUES (:n)"), {"n": name})

    return app


def _names(pg_url: str, table: str) -> list[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(f"SELECT name FROM {table} ORDER BY name").fetchall()]


def test_fastapi_app_on_postgres(pg_server: Any, pg_url: str) -> None:
    table = f"api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (name TEXT)")
    manager = Manager.from_config({"databases": {"default": {"url": pg_url}}})
    password = make_url(pg_url).password
    try:
        with TestClient(_app(manager, table), raise_server_exceptions=False) as client:
            assert manager.errors == {}  # the lifespan set the database up
            assert client.post("/items/good").status_code == 200
            assert client.post("/items/boom").status_code == 500
            assert client.post("/async/later").status_code == 200
            denied = client.post("/readonly/nope")
            assert denied.status_code == 403
            assert "'default'" in denied.json()["detail"]
            assert _names(pg_url, table) == ["good", "later"]  # boom and nope rolled back

            healthy = client.get("/health/db")
            assert healthy.status_code == 200
            assert healthy.json()["status"] == "healthy"
            assert healthy.json()["databases"]["default"]["status"] == "healthy"

            pg_server.stop()
            try:
                down = client.get("/health/db")
                assert down.status_code == 503
                report = down.json()
                assert report["status"] == "unhealthy"
                assert report["databases"]["default"]["status"] == "unhealthy"
                assert report["databases"]["default"]["error"]
                unavailable = client.post("/items/while-down")
                assert unavailable.status_code == 503
                assert unavailable.headers["retry-after"] == "7"
                assert unavailable.json() == {
                    "detail": "database 'default' is unavailable; retry later"
                }
                if password:
                    assert password not in down.text and password not in unavailable.text
            finally:
                pg_server.start()
            assert client.get("/health/db").status_code == 200
        # The lifespan closed the database at shutdown.
        assert manager.list_databases() == ["default"]
        assert manager._dbs == {}
    finally:
        manager.close_all()
        with psycopg.connect(pg_server.url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table}")
