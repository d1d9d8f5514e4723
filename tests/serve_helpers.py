"""Shared pieces of the `dbwire serve` tests: the bound address, the token, a client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

import dbwire
from dbwire.serve import create_app

TOKEN = "serve-test-token-Zq8w3"
BASE = "http://127.0.0.1:8765"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def served(
    state: Path | None = None, *, config: dict[str, Any] | None = None, **options: Any
) -> Iterator[tuple[TestClient, Any]]:
    """A running app (lifespan included) over a fresh Manager, and its TestClient."""
    manager = dbwire.Manager(config or {"databases": {}})
    options.setdefault("secret_backend", "file")
    app = create_app(manager, token=TOKEN, state_path=state, **options)
    try:
        with TestClient(app, base_url=BASE, headers=AUTH) as client:
            yield client, app
    finally:
        manager.close_all()


def pg_owner(server: Any) -> Callable[[str], list[tuple[Any, ...]]]:
    """Run SQL in the test database as its owner (the admin login sits in another database)."""

    def run(sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)  # type: ignore[arg-type]  # test SQL, written here
            return list(cur.fetchall()) if cur.description else []

    return run


def server_config(
    server: Any, *, user: str | None = None, password: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The form fields that reach a test server."""
    return {
        "host": server.host,
        "port": server.port,
        "user": user or server.user,
        "password": password or server.password,
        "database": server.database,
        **extra,
    }
