"""Health checks: every backend, enforced deadlines on a blackholed server, scrubbed errors."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbwire
from dbwire import Database, DatabaseConfig, HealthResult
from dbwire.errors import DatabaseClosedError
from dbwire.health import check_many
from servers import DatabaseServer, free_port


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections into its backlog and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)  # never accept(): the handshake completes, no byte ever comes back
    yield sock.getsockname()[1]
    sock.close()


def _urls(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    mysql_url = str(request.getfixturevalue("mysql_url"))
    return {
        "postgresql": str(request.getfixturevalue("pg_url")),
        "mysql": mysql_url,
        "mariadb": mysql_url.replace("mysql://", "mariadb://", 1),
        "sqlite": f"sqlite:///{tmp_path / 'h.db'}",
        "sqlite-memory": "sqlite://",
        "duckdb": "duckdb:///:memory:",
    }


@pytest.mark.parametrize(
    "target", ["postgresql", "mysql", "mariadb", "sqlite", "sqlite-memory", "duckdb"]
)
async def test_healthy_on_every_backend_sync_and_async(
    request: pytest.FixtureRequest, tmp_path: Path, target: str
) -> None:
    db = Database(DatabaseConfig(name=target, url=_urls(request, tmp_path)[target]))
    try:
        result = db.health_check()
        assert result.healthy, result.error
        assert (result.name, result.status, result.error) == (target, "healthy", None)
        assert result.backend == db.backend.name
        assert 0 < result.response_time_ms < 5000
        async_result = await db.async_health_check()
        assert async_result.healthy, async_result.error
        assert async_result.backend == db.backend.name
    finally:
        await db.aclose()


def test_result_reads_as_attributes_and_as_a_mapping() -> None:
    result = HealthResult("primary", "healthy", 1.5, None, "postgresql")
    # seed 003: `if result["status"] == "healthy": ... result['response_time_ms']`
    assert result["status"] == "healthy"
    assert result["response_time_ms"] == 1.5
    assert result.as_dict() == {
        "name": "primary",
        "status": "healthy",
        "response_time_ms": 1.5,
        "error": None,
        "backend": "postgresql",
    }
    with pytest.raises(KeyError):
        result["nope"]


def test_unreachable_server_is_unhealthy_with_a_scrubbed_error() -> None:
    secret = "hunter2-unreachable"
    port = free_port()
    db = Database(
        DatabaseConfig(name="gone", url=f"postgresql://app:{secret}@127.0.0.1:{port}/app")
    )
    try:
        result = db.health_check(timeout=5)
        assert result.status == "unhealthy"
        assert result.error is not None
        assert "database 'gone'" in result.error
        assert str(port) in result.error
        assert secret not in repr(result)
    finally:
        db.close()


def test_rejected_password_never_appears_in_the_error(
    pg_server: DatabaseServer, pg_url: str
) -> None:
    wrong = "hunter2-wrong-password"
    url = f"postgresql://{pg_server.user}:{wrong}@127.0.0.1:{pg_server.port}/{pg_server.database}"
    db = Database(DatabaseConfig(name="badpw", url=url))
    try:
        result = db.health_check()
        assert result.status == "unhealthy"
        assert result.error is not None
        assert "password" in result.error.lower()
        assert wrong not in repr(result)
        assert pg_server.password not in repr(result)
    finally:
        db.close()


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_blackholed_server_answers_within_the_timeout(blackhole: int, is_async: bool) -> None:
    # connect_timeout is far longer than the health timeout: only dbwire's deadline
    # can make the check return in time.
    db = Database(
        DatabaseConfig(
            name="hole",
            url=f"postgresql://app:pw@127.0.0.1:{blackhole}/app",
            health_timeout=0.5,
            connect_timeout=30,
        )
    )
    try:
        started = time.monotonic()
        result = await db.async_health_check() if is_async else db.health_check()
        elapsed = time.monotonic() - started
        assert result.status == "unhealthy"
        assert elapsed < 1.0, f"took {elapsed:.2f}s for a 0.5s timeout"
        assert result.error is not None
        assert "did not answer the health query within 0.5s" in result.error
        assert "health_timeout" in result.error
        assert 450 <= result.response_time_ms < 1000
    finally:
        db.dispose_pools(close=False)
        db.close()


def test_check_many_runs_concurrently(blackhole: int, tmp_path: Path) -> None:
    dbs = {
        f"hole{i}": Database(
            DatabaseConfig(
                name=f"hole{i}",
                url=f"postgresql://app:pw@127.0.0.1:{blackhole}/app",
                health_timeout=0.5,
                connect_timeout=30,
            )
        )
        for i in range(6)
    }
    dbs["ok"] = Database(DatabaseConfig(name="ok", url=f"sqlite:///{tmp_path / 'ok.db'}"))
    try:
        started = time.monotonic()
        results = check_many(dict(dbs))
        elapsed = time.monotonic() - started
        # Six hung databases in sequence would take 3 s.
        assert elapsed < 1.0, f"{elapsed:.2f}s"
        assert results["ok"].healthy
        assert [r.status for n, r in results.items() if n != "ok"] == ["unhealthy"] * 6
    finally:
        for db in dbs.values():
            db.close()


def test_health_of_a_closed_database_raises(tmp_path: Path) -> None:
    # Closed means closed: a health check is a use like any other.
    db = Database(DatabaseConfig(name="shut", url=f"sqlite:///{tmp_path / 'c.db'}"))
    db.close()
    with pytest.raises(DatabaseClosedError, match="'shut' is closed"):
        db.health_check()


def test_health_timeout_comes_from_config_and_can_be_overridden(blackhole: int) -> None:
    db = Database(
        DatabaseConfig(
            name="cfg", url=f"postgresql://a:b@127.0.0.1:{blackhole}/x", health_timeout=0.3
        )
    )
    try:
        started = time.monotonic()
        assert db.health_check().status == "unhealthy"
        assert time.monotonic() - started < 0.8
        started = time.monotonic()
        result = db.health_check(timeout=0.1)
        assert time.monotonic() - started < 0.5
        assert result.error is not None and "within 0.1s" in result.error
    finally:
        db.close()


async def test_a_backend_without_an_engine_is_checked_through_its_own_queries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBWIRE_DUCKDB_OFFLINE", "1")
    db = dbwire.connect(
        "s3://bucket/prefix",
        name="lake_health",
        user="key-id",
        password="hunter2-s3",
        options={"endpoint": f"127.0.0.1:{free_port()}", "url_style": "path", "use_ssl": "false"},
    )
    try:
        assert not db.backend.has_engine
        # The check lists the bucket (test_s3.py: healthy against a live S3 server), so an
        # endpoint with nothing behind it is unhealthy, not a false "healthy" from SELECT 1.
        result = db.health_check(timeout=20)
        assert (result.status, result.backend) == ("unhealthy", "s3")
        assert "hunter2-s3" not in (result.error or "")
        assert not (await db.async_health_check(timeout=20)).healthy
        status = db.get_pool_status()
        assert status.checked_out is None and status.pool_class.startswith("none")
    finally:
        db.close()


def test_configured_health_query_is_the_one_run(pg_url: str) -> None:
    slow = Database(
        DatabaseConfig(
            name="slowcheck", url=pg_url, health_query="SELECT pg_sleep(2)", health_timeout=0.3
        )
    )
    fine = Database(
        DatabaseConfig(name="tablecheck", url=pg_url, health_query="SELECT count(*) FROM pg_class")
    )
    try:
        started = time.monotonic()
        result = slow.health_check()
        assert result.status == "unhealthy" and time.monotonic() - started < 1.5
        assert fine.health_check().status == "healthy"
        before = fine.get_stats().queries
        fine.health_check()
        assert fine.get_stats().queries == before + 1  # the configured statement ran
    finally:
        slow.close()
        fine.close()
