"""FastAPI dependencies: a request's session commits on success and rolls back on error."""

from __future__ import annotations

from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbwire import Database, DatabaseConfig
from dbwire.integrations.fastapi import get_async_db, get_db


def _app(db: Database) -> FastAPI:
    app = FastAPI()

    @app.post("/items/{name}")
    def add(name: str, s: Session = Depends(get_db(db))) -> dict[str, str]:  # noqa: B008
        s.execute(text("INSERT INTO items VALUES (:n)"), {"n": name})
        if name == "bad":
            raise HTTPException(status_code=400, detail="rejected after the insert")
        return {"added": name}

    @app.get("/items")
    async def items(s: AsyncSession = Depends(get_async_db(db, readonly=True))) -> list[str]:  # noqa: B008
        rows = await s.execute(text("SELECT name FROM items ORDER BY name"))
        return [str(name) for name in rows.scalars()]

    @app.post("/sneaky/{name}")
    async def sneaky(name: str, s: AsyncSession = Depends(get_async_db(db, readonly=True))) -> None:  # noqa: B008
        await s.execute(text("INSERT INTO items VALUES (:n)"), {"n": name})

    return app


def test_fastapi_dependencies(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="api", url=f"sqlite:///{tmp_path / 'api.db'}"))
    with db.session() as s:
        s.execute(text("CREATE TABLE items (name TEXT)"))
    client = TestClient(_app(db), raise_server_exceptions=False)
    assert client.post("/items/good").status_code == 200
    assert client.post("/items/bad").status_code == 400
    assert client.post("/sneaky/x").status_code == 500  # ReadOnlyError from the database
    assert client.get("/items").json() == ["good"]
    db.close()
