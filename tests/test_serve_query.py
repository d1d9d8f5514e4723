"""`dbwire serve` queries: 2M rows paged with bounded memory, cancellation that stops the
statement on the server (PostgreSQL, MariaDB, DuckDB, SQLite), timeouts, and the paging rules."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import dbwire
from dbwire.serve.query import EngineCursor
from serve_helpers import pg_owner, served, server_config

ROWS = 2_000_000
WIDE = f"SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, {ROWS}) AS g"


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRss:
    """The highest resident set size of this process while the block runs (polled every 5 ms)."""

    def __init__(self) -> None:
        self.base = 0.0
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self.base = self.peak = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def delta(self) -> float:
        return self.peak - self.base


@pytest.fixture(scope="module")
def api(pg_server: Any, mysql_server: Any) -> Iterator[TestClient]:
    for server in (pg_server, mysql_server):
        if not server.is_running():
            server.start()
    with served() as (client, _app):
        for name, kind, server in (
            ("pg", "postgresql", pg_server),
            ("my", "mariadb", mysql_server),
        ):
            made = client.post(
                "/api/connections",
                json={"name": name, "type": kind, "config": server_config(server)},
            )
            assert made.json()["status"] == "healthy", made.json()
        yield client


def _active(pg_server: Any, marker: str) -> list[tuple[Any, ...]]:
    """Server sessions running the statement now (a server-side cursor runs it as FETCH)."""
    return pg_owner(pg_server)(
        "SELECT pid, state FROM pg_stat_activity WHERE state = 'active' "
        f"AND (query LIKE '%{marker}%' OR query LIKE 'FETCH FORWARD%') "
        "AND pid <> pg_backend_pid()"
    )


def _wait_until(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.mark.postgres
def test_two_million_rows_first_page_fast_and_memory_bounded(
    api: TestClient, pg_server: Any
) -> None:
    # Warm up: the first query pays for imports and the pool.
    api.post("/api/query", json={"sql": "SELECT 1", "connection": "pg"})
    started = time.perf_counter()
    with PeakRss() as rss:
        first = api.post("/api/query", json={"sql": WIDE, "connection": "pg", "limit": 1000})
    elapsed = time.perf_counter() - started
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["row_count"] == 1000 and page["has_more"] is True
    assert page["rows"][0] == [1, "x" * 100]
    assert [c["type"] for c in page["columns"]] == ["INTEGER", "TEXT"]
    # The whole result is 2M x ~110 bytes (> 200 MB as Python rows, ~230 MB in libpq):
    # a server-side cursor keeps this process within a small bound.
    print(f"2M rows: first page in {elapsed:.2f}s, peak RSS delta {rss.delta:.1f} MB")
    assert rss.delta < 60, f"peak RSS grew by {rss.delta:.0f} MB: the result was read whole"
    assert elapsed < 15
    second = api.get(page["next"]).json()
    assert second["rows"][0][0] == 1001 and second["offset"] == 1000
    assert api.delete(f"/api/query/{page['id']}").status_code == 204
    assert api.get(page["next"]).status_code in (400, 404)
    assert _wait_until(lambda: not _active(pg_server, "generate_series(1, 2000000)"))


def test_store_streams_two_million_rows() -> None:
    with served() as (client, _app):
        client.post("/api/query", json={"sql": "SELECT 1"})  # opens the store
        with PeakRss() as rss:
            sql = f"SELECT i, repeat('y', 100) AS pad FROM range({ROWS}) t(i)"
            page = client.post("/api/query", json={"sql": sql, "limit": 500}).json()
        assert page["row_count"] == 500 and page["has_more"] is True
        assert [c["type"] for c in page["columns"]] == ["BIGINT", "VARCHAR"]
    # Materialised, the result is > 200 MB; DuckDB streams it a few vectors at a time.
    print(f"store, 2M rows: peak RSS delta {rss.delta:.1f} MB")
    assert rss.delta < 60, f"peak RSS grew by {rss.delta:.0f} MB"


def _run_in_thread(client: TestClient, body: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        started = time.monotonic()
        response = client.post("/api/query", json=body)
        out.append((response, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.postgres
def test_cancel_stops_pg_sleep_on_the_server(api: TestClient, pg_server: Any) -> None:
    qid = "q_cancel_pg_0001"
    thread, out = _run_in_thread(
        api, {"sql": "SELECT pg_sleep(60) AS serve_cancel_me", "connection": "pg", "id": qid}
    )
    assert _wait_until(lambda: bool(_active(pg_server, "serve_cancel_me"))), "never started"
    cancelled_at = time.monotonic()
    assert api.delete(f"/api/query/{qid}").status_code == 204
    thread.join(10)
    assert not thread.is_alive(), "the POST did not return after the cancel"
    response, _ = out[0]
    assert response.status_code == 409 and response.json()["error"]["type"] == "query_cancelled"
    assert _wait_until(lambda: not _active(pg_server, "serve_cancel_me"), 5)
    print(f"pg_sleep(60) gone {time.monotonic() - cancelled_at:.2f}s after DELETE")
    # The pooled connection is usable again.
    again = api.post("/api/query", json={"sql": "SELECT 2", "connection": "pg"}).json()
    assert again["rows"] == [[2]]


@pytest.mark.mysql
def test_cancel_stops_sleep_on_mariadb(api: TestClient, mysql_server: Any) -> None:
    def running() -> bool:
        rows = mysql_server.query_admin(
            "SELECT id FROM information_schema.processlist "
            "WHERE command = 'Query' AND info LIKE '%serve_cancel_my%' "
            "AND info NOT LIKE '%processlist%'"
        )
        return bool(rows)

    qid = "q_cancel_my_0001"
    thread, out = _run_in_thread(
        api, {"sql": "SELECT SLEEP(60) AS serve_cancel_my", "connection": "my", "id": qid}
    )
    assert _wait_until(running), "never started"
    assert api.delete(f"/api/query/{qid}").status_code == 204
    thread.join(10)
    assert not thread.is_alive()
    response, _ = out[0]
    assert response.status_code == 409 and response.json()["error"]["type"] == "query_cancelled"
    assert _wait_until(lambda: not running(), 5)


@pytest.mark.postgres
def test_timeout_cancels_on_the_server(api: TestClient, pg_server: Any) -> None:
    body = {"sql": "SELECT pg_sleep(30) AS serve_timeout_me", "connection": "pg", "timeout_s": 1}
    started = time.monotonic()
    response = api.post("/api/query", json=body)
    took = time.monotonic() - started
    assert response.status_code == 409 and response.json()["error"]["type"] == "query_cancelled"
    assert took < 6, f"a 1 s timeout took {took:.1f}s"
    assert _wait_until(lambda: not _active(pg_server, "serve_timeout_me"), 5)


def test_cancel_interrupts_the_duckdb_store() -> None:
    with served() as (client, _app):
        qid = "q_cancel_duck_01"
        sql = "SELECT count(*) FROM range(100000000000) a"
        thread, out = _run_in_thread(client, {"sql": sql, "id": qid})
        time.sleep(0.5)
        started = time.monotonic()
        assert client.delete(f"/api/query/{qid}").status_code == 204
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - started < 5
        assert out[0][0].json()["error"]["type"] == "query_cancelled"


def test_paging_rules(tmp_path: Path) -> None:
    with served(query_ttl=1.0) as (client, _app):
        sql = "SELECT i FROM range(25) t(i)"
        page = client.post("/api/query", json={"sql": sql, "limit": 10}).json()
        qid = page["id"]
        assert page["next"] == f"/api/query/{qid}/rows?offset=10&limit=10"
        skipped = client.get(f"/api/query/{qid}/rows?offset=20&limit=10")
        assert skipped.status_code == 400 and skipped.json()["error"]["field"] == "offset"
        second = client.get(page["next"]).json()
        assert [r[0] for r in second["rows"]] == list(range(10, 20))
        assert client.get(page["next"]).json() == second  # a retried page is the same page
        last = client.get(second["next"]).json()
        assert [r[0] for r in last["rows"]] == list(range(20, 25))
        assert last["has_more"] is False and last["next"] is None
        assert client.get(f"/api/query/{qid}/rows?offset=25").status_code == 404
        # Exactly one page: no has_more, the cursor is gone at once.
        exact = client.post("/api/query", json={"sql": "SELECT 1 UNION ALL SELECT 2", "limit": 2})
        assert exact.json()["has_more"] is False
        # Left unread past the ttl: expired.
        idle = client.post("/api/query", json={"sql": sql, "limit": 5}).json()
        time.sleep(1.5)
        assert client.get(idle["next"]).status_code == 404
        assert client.delete(f"/api/query/{idle['id']}").status_code == 204  # idempotent
        bad = client.post("/api/query", json={"sql": "SELECT 1", "id": "not-an-id"})
        assert bad.status_code == 400 and bad.json()["error"]["field"] == "id"
        broken = client.post("/api/query", json={"sql": "SELEC nonsense"})
        assert broken.status_code in (400, 403)
        assert broken.json()["error"]["type"] in ("query_failed", "read_only")


@pytest.mark.postgres
def test_unread_results_do_not_exhaust_the_pool(api: TestClient) -> None:
    # Each unread result holds a pooled connection; more than the pool holds must not
    # leave the next query waiting for pool_timeout.
    sql = "SELECT g FROM generate_series(1, 100) g"
    pages = [
        api.post("/api/query", json={"sql": sql, "connection": "pg", "limit": 10}).json()
        for _ in range(20)
    ]
    assert all(p["has_more"] for p in pages)
    started = time.monotonic()
    last = api.post("/api/query", json={"sql": "SELECT 3", "connection": "pg"})
    assert last.json()["rows"] == [[3]] and time.monotonic() - started < 5
    assert api.get(pages[-1]["next"]).status_code == 200  # the newest stay readable
    assert api.get(pages[0]["next"]).status_code == 404  # the oldest idle ones were closed


def test_cancel_interrupts_sqlite_through_the_backend_hook(tmp_path: Path) -> None:
    db = dbwire.connect(f"sqlite:///{tmp_path / 'cancel.db'}")
    try:
        cursor = EngineCursor(db, write=False)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                cursor.execute(
                    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                    "WHERE i < 10000000000) SELECT count(*) FROM c"
                )
                cursor.fetch(1)
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the statement ended before it could be cancelled"
        started = time.monotonic()
        cursor.cancel()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - started < 5
        assert errors and "interrupted" in str(errors[0])
        cursor.close()
    finally:
        db.close()
