"""`dbwire serve` while its PostgreSQL server dies and comes back: the status says so within
a bounded time, queries answer 503 instead of hanging, and everything recovers by itself."""

from __future__ import annotations

import time
from typing import Any

import pytest

from serve_helpers import served, server_config

pytestmark = pytest.mark.postgres


def test_a_killed_server_is_reported_and_recovered(pg_server: Any) -> None:
    if not pg_server.is_running():
        pg_server.start()
    form = server_config(pg_server, connect_timeout=2)
    with served(sample_interval=0.3) as (client, _app):
        made = client.post(
            "/api/connections", json={"name": "f", "type": "postgresql", "config": form}
        )
        assert made.json()["status"] == "healthy"
        try:
            pg_server.kill()
            started = time.monotonic()
            tested = client.post("/api/connections/f/test").json()
            assert tested["status"] == "unhealthy" and tested["error"], tested
            query = client.post("/api/query", json={"sql": "SELECT 1", "connection": "f"})
            assert query.status_code in (503, 400), query.text
            assert time.monotonic() - started < 15
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                series = client.get("/api/status").json()["series"].get("f", [])
                if series and series[-1]["status"] == "unhealthy":
                    break
                time.sleep(0.2)
            assert series[-1]["status"] == "unhealthy" and series[-1]["latency_ms"] is None
        finally:
            pg_server.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if client.post("/api/connections/f/test").json()["status"] == "healthy":
                break
            time.sleep(0.3)
        again = client.post("/api/query", json={"sql": "SELECT 5", "connection": "f"})
        assert again.json()["rows"] == [[5]], again.text
        assert client.get("/api/connections/f").json()["status"] == "healthy"
