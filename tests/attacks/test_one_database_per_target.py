"""One Database per target per process: dbwire.connect() and every Manager share it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import dbwire
from dbwire import Database, DatabaseClosedError, Manager


def _sqlite(tmp_path: Path) -> dict[str, Any]:
    return {"databases": {"main": {"url": f"sqlite:///{tmp_path / 'main.db'}"}}}


def test_manager_and_connect_share_one_database_from_a_dict(tmp_path: Path) -> None:
    cfg = _sqlite(tmp_path)
    manager = Manager(cfg)
    try:
        db = manager.db("main")
        assert db is dbwire.connect("main", config=cfg)
        # The other order: connect() first, then a second Manager.
        assert Manager(cfg).db("main") is db
        assert db.engine is dbwire.connect("main", config=cfg).engine
    finally:
        manager.close_all()


def test_manager_and_connect_share_one_database_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "dbwire.toml"
    path.write_text(f'[databases.main]\nurl = "sqlite:///{tmp_path / "f.db"}"\n')
    first = dbwire.connect("main", config=str(path))
    try:
        assert Manager(path).db("main") is first
        assert Manager(dbwire.load_config(path)).db("main") is first
    finally:
        first.close()


def test_a_write_through_one_handle_is_read_through_the_other(pg_url: str) -> None:
    cfg = {"databases": {"pg": {"url": pg_url, "pool_size": 2}}}
    manager = Manager(cfg)
    try:
        db = dbwire.connect("pg", config=cfg)
        assert manager.db("pg") is db
        with db.session() as s:
            s.execute(text("CREATE TABLE IF NOT EXISTS one_target (v int)"))
            s.execute(text("DELETE FROM one_target"))
            s.execute(text("INSERT INTO one_target VALUES (7)"))
        with manager.db("pg").connect() as conn:
            assert conn.execute(text("SELECT v FROM one_target")).scalar_one() == 7
            # The connection above is checked out of the one pool both handles share.
            assert db.get_pool_status().checked_out == 1
        with db.session() as s:
            s.execute(text("DROP TABLE one_target"))
    finally:
        manager.close_all()


def test_closed_database_leaves_the_registry(tmp_path: Path) -> None:
    cfg = _sqlite(tmp_path)
    manager = Manager(cfg)
    old = manager.db("main")
    dbwire.connect("main", config=cfg).close()
    assert old.closed
    with pytest.raises(DatabaseClosedError):
        old.execute_query("SELECT 1")
    # Both roads lead to one new, open Database.
    new = manager.db("main")
    assert new is not old and not new.closed
    assert dbwire.connect("main", config=cfg) is new
    assert new.execute_query("SELECT 1 AS x") == (["x"], [{"x": 1}])
    manager.close_all()
    assert new.closed
    newer = dbwire.connect("main", config=cfg)
    assert newer is not new and not newer.closed
    assert Manager(cfg).db("main") is newer
    newer.close()


def test_aclose_also_leaves_the_registry(tmp_path: Path) -> None:
    cfg = _sqlite(tmp_path)
    db = dbwire.connect("main", config=cfg)

    async def use_and_close() -> None:
        async with db.async_session() as s:
            assert (await s.execute(text("SELECT 1"))).scalar_one() == 1
        await db.aclose()

    asyncio.run(use_and_close())
    assert db.closed
    fresh = Manager(cfg).db("main")
    assert fresh is not db and not fresh.closed
    fresh.close()


def test_different_settings_are_different_targets(tmp_path: Path) -> None:
    cfg = _sqlite(tmp_path)
    made: list[Database] = []

    def keep(db: Database) -> Database:
        made.append(db)
        return db

    try:
        base = keep(dbwire.connect("main", config=cfg))
        assert keep(dbwire.connect("main", config=cfg, pool_size=3)) is not base
        # Same URL under another name, and the same name with another password.
        other = {"databases": {"copy": cfg["databases"]["main"]}}
        assert keep(Manager(other).db("copy")) is not base
        pw_a = {"databases": {"m": {"url": "postgresql://u:a@127.0.0.1:1/d"}}}
        pw_b = {"databases": {"m": {"url": "postgresql://u:b@127.0.0.1:1/d"}}}
        a, b = keep(Manager(pw_a).db("m")), keep(Manager(pw_b).db("m"))
        assert a is not b
        assert dbwire.connect("m", config=pw_b) is b
        # An environment variable that changes a setting makes another target.
        env = {"DBWIRE_MAIN__POOL_SIZE": "4"}
        from_env = keep(dbwire.connect("main", config=cfg, environ=env))
        assert from_env is not base
        assert Manager(cfg, environ=env).db("main") is from_env
    finally:
        for db in made:
            db.close()


def test_many_threads_asking_both_ways_get_one_database(tmp_path: Path) -> None:
    cfg = _sqlite(tmp_path)
    seen: list[Database] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def ask(use_manager: bool) -> None:
        start.wait()
        db = Manager(cfg).db("main") if use_manager else dbwire.connect("main", config=cfg)
        with lock:
            seen.append(db)

    threads = [threading.Thread(target=ask, args=(i % 2 == 0,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 16
    assert len({id(db) for db in seen}) == 1
    seen[0].close()
