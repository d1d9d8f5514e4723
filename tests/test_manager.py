"""Manager: config shapes, lookup, setup with retries, stats, workers, sharing across threads."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from dbwire import (
    Config,
    ConfigError,
    ConnectError,
    Database,
    HealthResult,
    Manager,
    UnknownBackendError,
    UnknownDatabaseError,
    load_config,
)
from servers import free_port


def _lite(tmp_path: Path, name: str) -> dict[str, str]:
    return {"url": f"sqlite:///{tmp_path / f'{name}.db'}"}


def test_from_a_toml_file_a_dict_or_a_config(tmp_path: Path) -> None:
    toml = tmp_path / "dbwire.toml"
    toml.write_text(f'[databases.main]\nurl = "sqlite:///{tmp_path / "m.db"}"\n')
    from_file = Manager.from_config(toml)
    from_dict = Manager.from_config({"databases": {"main": _lite(tmp_path, "m")}})
    from_dbs = Manager({"dbs": {"main": _lite(tmp_path, "m")}})  # seed 003's shape
    from_cfg = Manager(load_config(toml))
    for manager in (from_file, from_dict, from_dbs, from_cfg):
        assert manager.list_databases() == ["main"]
        assert isinstance(manager.config, Config)
        assert manager.db("main").execute_query("SELECT 1 AS one")[1] == [{"one": 1}]
        manager.close_all()
    assert from_file.config.source == str(toml)


def test_logger_injection_in_either_argument_order(tmp_path: Path) -> None:
    logger = logging.getLogger("myapp.infra")
    config = {"dbs": {"main": _lite(tmp_path, "m")}}
    for manager in (Manager(config, logger=logger), Manager(logger, config)):  # seed 003 order
        assert manager.logger is logger
        assert manager.db("main").logger is logger
        manager.close_all()


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    manager = Manager(
        {"databases": {"primary": _lite(tmp_path, "p"), "replica": _lite(tmp_path, "r")}}
    )
    with pytest.raises(UnknownDatabaseError) as caught:
        manager.db("primray")
    message = str(caught.value)
    assert "'primray'" in message and "primary, replica" in message
    assert "did you mean 'primary'" in message
    assert "primary" in manager and "nope" not in manager
    assert list(manager) == ["primary", "replica"]
    with pytest.raises(UnknownDatabaseError):
        manager.health_check("nope")


def test_a_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown field 'pool_sise'"):
        Manager({"databases": {"main": {"url": "sqlite://", "pool_sise": 3}}})


def test_setup_records_failures_and_keeps_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hunter2-setup"
    manager = Manager(
        {
            "databases": {
                "good": _lite(tmp_path, "g"),
                "down": {"url": f"postgresql://u:{secret}@127.0.0.1:{free_port()}/x"},
                "alien": {"url": "nosuchdb://localhost/x"},
            }
        }
    )
    caplog.set_level(logging.INFO, logger="dbwire")
    manager.setup()
    assert set(manager.errors) == {"down", "alien"}
    assert isinstance(manager.errors["down"], ConnectError)
    assert isinstance(manager.errors["alien"], UnknownBackendError)
    assert manager.db("good").health_check().healthy
    with pytest.raises(UnknownBackendError):
        manager.db("alien")  # the recorded error, raised where the database is asked for
    stats = manager.get_stats()
    assert (stats["successful_setups"], stats["failed_setups"]) == (1, 2)
    assert set(stats["errors"]) == {"down", "alien"}
    assert secret not in caplog.text
    assert secret not in str(stats)
    assert "database 'down': setup failed" in caplog.text
    manager.close_all()


def test_setup_retries_with_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manager = Manager(
        {
            "databases": {
                "flaky": {
                    "url": f"postgresql://u:p@127.0.0.1:{free_port()}/x",
                    "connect_retries": 3,
                }
            }
        }
    )
    caplog.set_level(logging.INFO, logger="dbwire")
    started = time.monotonic()
    manager.setup()
    took = time.monotonic() - started
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert [m.split(" failed")[0] for m in retries] == [
        "database 'flaky': attempt 1 of 4",
        "database 'flaky': attempt 2 of 4",
        "database 'flaky': attempt 3 of 4",
    ]
    # 0.05 * (1 + 2 + 4) at most, at least half of it: jitter within the backoff.
    assert 0.15 < took < 2.0
    assert set(manager.errors) == {"flaky"}
    manager.close_all()


def test_stats_per_database(tmp_path: Path) -> None:
    manager = Manager({"databases": {"a": _lite(tmp_path, "a"), "b": _lite(tmp_path, "b")}})
    manager.setup()
    for _ in range(3):
        manager.db("a").execute_query("SELECT 1")
    stats = manager.get_stats()
    assert stats["successful_setups"] == 2
    a, b = stats["databases"]["a"], stats["databases"]["b"]
    assert a["queries"] == 4 and b["queries"] == 1  # setup ran one health query each
    assert a["errors"] == 0 and a["max_ms"] > 0
    assert a["pool"]["checked_out"] == 0 and a["pool"]["size"] == 5
    manager.close_all()


def test_health_check_one_or_all(tmp_path: Path) -> None:
    manager = Manager({"dbs": {"a": _lite(tmp_path, "a"), "b": _lite(tmp_path, "b")}})
    one = manager.health_check("a")
    assert isinstance(one, HealthResult) and one.name == "a" and one.healthy
    every = manager.health_check()
    assert list(every) == ["a", "b"]
    assert all(result["status"] == "healthy" for result in every.values())
    manager.close_all()


def test_one_manager_shared_by_many_threads(tmp_path: Path) -> None:
    manager = Manager({"databases": {"shared": _lite(tmp_path, "s")}})
    seen: list[Database] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(32)

    def work() -> None:
        barrier.wait()
        try:
            db = manager.db("shared")
            db.execute_query("SELECT 1")
            seen.append(db)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(seen) == 32 and len({id(db) for db in seen}) == 1, "one Database, built once"
    assert len({id(db.engine) for db in seen}) == 1
    assert manager.get_stats()["databases"]["shared"]["queries"] == 32
    manager.close_all()


def test_close_all_closes_and_a_later_use_builds_anew(tmp_path: Path) -> None:
    with Manager({"databases": {"main": _lite(tmp_path, "m")}}) as manager:
        first = manager.db("main")
        first.execute_query("SELECT 1")
        manager.close_all()
        assert first.closed
        second = manager.db("main")
        assert second is not first and not second.closed
    assert second.closed


def test_close_worker_closes_pools_but_keeps_databases(pg_url: str) -> None:
    manager = Manager({"databases": {"main": {"url": pg_url}}})
    db = manager.db("main")
    db.execute_query("SELECT 1")
    assert db.get_pool_status().checked_in == 1
    manager.close_worker()
    assert db.get_pool_status().checked_in == 0
    assert not db.closed
    manager.init_worker()
    assert db.get_stats().queries == 0
    assert db.execute_query("SELECT 2 AS two")[1] == [{"two": 2}]
    manager.close_all()


async def test_async_worker_close_and_health(pg_url: str) -> None:
    manager = Manager({"databases": {"main": {"url": pg_url}}})
    db = manager.db("main")
    await db.async_execute_query("SELECT 1")
    results = await manager.async_health_check()
    assert results["main"].healthy
    await manager.aclose_worker()
    assert db.get_pool_status(is_async=True).checked_in == 0
    await manager.aclose_all()


def test_manager_wait(tmp_path: Path, pg_url: str) -> None:
    manager = Manager(
        {
            "databases": {
                "pg": {"url": pg_url},
                "lite": _lite(tmp_path, "l"),
                "gone": {"url": f"postgresql://u:p@127.0.0.1:{free_port()}/x"},
            }
        }
    )
    waited = manager.wait(timeout=10, names=["pg", "lite"])
    assert set(waited) == {"pg", "lite"}
    started = time.monotonic()
    with pytest.raises(ConnectError, match=r"not ready within 0\.5s: gone") as caught:
        manager.wait(timeout=0.5)
    assert time.monotonic() - started < 3
    assert "database 'gone'" in str(caught.value)
    with pytest.raises(UnknownDatabaseError):
        manager.wait(names=["nope"])
    manager.close_all()
