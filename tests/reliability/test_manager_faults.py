"""Ten databases, three of them broken: setup keeps the seven, health answers in one timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dbwire import ConnectError, Manager
from servers import DatabaseServer, free_port

HEALTH_TIMEOUT = 1.0


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A listening port that completes TCP handshakes (backlog 1) and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def ten(
    pg_server: DatabaseServer,
    pg_url: str,
    mysql_url: str,
    blackhole: int,
    tmp_path: Path,
) -> Iterator[Manager]:
    """Seven working databases on four backends, two unreachable and one blackholed."""
    pg_other_db = pg_url.rsplit("/", 1)[0] + "/postgres"
    common = {"health_timeout": HEALTH_TIMEOUT}
    config = {
        "dbs": {  # seed 003's shape
            "pg_main": {"url": pg_url, **common},
            "pg_readonly": {"url": pg_url, "readonly": True, **common},
            "pg_admin_db": {"url": pg_other_db, **common},
            "mysql_main": {"url": mysql_url, **common},
            "mariadb_main": {"url": mysql_url.replace("mysql://", "mariadb://", 1), **common},
            "sqlite_file": {"url": f"sqlite:///{tmp_path / 'ten.db'}", **common},
            "duckdb_mem": {"url": "duckdb:///:memory:", **common},
            "pg_down": {"url": f"postgresql://app:pw@127.0.0.1:{free_port()}/app", **common},
            "mysql_down": {"url": f"mysql://app:pw@127.0.0.1:{free_port()}/app", **common},
            # connect_timeout far above the health timeout: only dbwire's deadline helps.
            "pg_blackhole": {
                "url": f"postgresql://app:pw@127.0.0.1:{blackhole}/app",
                "connect_timeout": 30,
                **common,
            },
        }
    }
    manager = Manager.from_config(config)
    yield manager
    for name in ("pg_down", "mysql_down", "pg_blackhole"):
        manager.db(name).dispose_pools(close=False)
    manager.close_all()


BROKEN = {"pg_down", "mysql_down", "pg_blackhole"}


def test_setup_keeps_the_seven_and_names_the_three(ten: Manager) -> None:
    started = time.monotonic()
    ten.setup()
    took = time.monotonic() - started
    assert set(ten.errors) == BROKEN
    assert took < 2 * HEALTH_TIMEOUT + 1, f"setup took {took:.2f}s"
    for name, error in ten.errors.items():
        assert isinstance(error, ConnectError)
        assert f"database {name!r}" in str(error)
        assert "Fix" in str(error) or "check" in str(error)
    assert "did not answer" in str(ten.errors["pg_blackhole"])
    stats = ten.get_stats()
    assert (stats["successful_setups"], stats["failed_setups"]) == (7, 3)

    working = [n for n in ten.list_databases() if n not in BROKEN]
    assert len(working) == 7
    for name in working:
        _, rows = ten.db(name).execute_query("SELECT 1 AS one")
        assert rows == [{"one": 1}], name
    with ten.db("pg_main").session() as s:
        assert s.execute(text("SELECT 1")).scalar_one() == 1


def test_health_of_all_ten_answers_in_under_twice_the_timeout(ten: Manager) -> None:
    ten.setup()
    started = time.monotonic()
    results = ten.health_check()
    took = time.monotonic() - started
    assert took < 2 * HEALTH_TIMEOUT, f"health_check() took {took:.2f}s"
    assert list(results) == ten.list_databases()
    unhealthy = {name for name, result in results.items() if not result.healthy}
    assert unhealthy == BROKEN
    assert results["pg_blackhole"].response_time_ms >= HEALTH_TIMEOUT * 1000 * 0.9
    for name in BROKEN:
        assert results[name].error
    for name, result in results.items():
        if name not in BROKEN:
            assert result.status == "healthy" and result.error is None, name
            # seed 003 reads results as mappings
            assert result["response_time_ms"] < HEALTH_TIMEOUT * 1000


async def test_async_health_of_all_ten_answers_in_under_twice_the_timeout(
    ten: Manager,
) -> None:
    started = time.monotonic()
    results = await ten.async_health_check()
    took = time.monotonic() - started
    assert took < 2 * HEALTH_TIMEOUT, f"async_health_check() took {took:.2f}s"
    assert {n for n, r in results.items() if not r.healthy} == BROKEN
    await ten.aclose_all()
