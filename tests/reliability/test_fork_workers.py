"""Forked worker processes never reuse the parent's pooled connections."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from multiprocessing.queues import Queue
from typing import Any

import pytest

from dbwire import Database, DatabaseConfig, Manager, lifecycle

WORKERS = 8
QUERIES = 200


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """A PostgreSQL Database whose pool already holds connections the parent used."""
    db = Database(DatabaseConfig(name="forked", url=pg_url, pool_size=4, max_overflow=4))
    conns = [db.connect() for _ in range(3)]
    for conn in conns:
        conn.exec_driver_sql("SELECT 1")
    for conn in conns:
        conn.close()
    assert db.get_pool_status().checked_in == 3
    yield db
    db.close()


def _backend_pid(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _worker(db: Database, results: Queue[Any], index: int) -> None:
    pids: set[int] = set()
    errors: list[str] = []
    for _ in range(QUERIES):
        try:
            pids.add(_backend_pid(db))
        except Exception as exc:
            errors.append(repr(exc))
    results.put((index, os.getpid(), pids, errors, db.get_stats().queries))


def test_forked_workers_and_the_parent_never_share_a_backend(pg_db: Database) -> None:
    ctx = multiprocessing.get_context("fork")
    results: Queue[Any] = ctx.Queue()
    parent_pids: set[int] = {_backend_pid(pg_db)}
    parent_errors: list[str] = []
    stop = threading.Event()

    def parent_keeps_querying() -> None:
        while not stop.is_set():
            try:
                parent_pids.add(_backend_pid(pg_db))
            except Exception as exc:
                parent_errors.append(repr(exc))

    querying = threading.Thread(target=parent_keeps_querying)
    querying.start()
    try:
        # Forked while a parent thread is in the middle of using the pool.
        workers = [ctx.Process(target=_worker, args=(pg_db, results, i)) for i in range(WORKERS)]
        for worker in workers:
            worker.start()
        reports = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(30)
            assert worker.exitcode == 0
    finally:
        stop.set()
        querying.join(30)

    assert not parent_errors, parent_errors[:3]
    seen: dict[int, str] = {pid: "parent" for pid in parent_pids}
    for index, os_pid, pids, errors, queries in reports:
        assert os_pid != os.getpid()
        assert not errors, f"worker {index}: {errors[:3]}"
        assert queries == QUERIES, "a child counts only its own queries"
        assert pids, f"worker {index} saw no backend"
        for pid in pids:
            assert pid not in seen, f"backend {pid} used by worker {index} and {seen[pid]}"
            seen[pid] = f"worker {index}"
    assert len(seen) >= WORKERS + 1


def _one_query(db: Database, results: Queue[Any]) -> None:
    results.put(_backend_pid(db))


def test_without_fork_safety_a_child_reuses_the_parents_connection(pg_db: Database) -> None:
    """The control experiment: it shows what the test above would catch."""
    held = [pg_db.connect() for _ in range(3)]  # the three pooled connections
    parent_pids = {conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for conn in held}
    for conn in held:
        conn.close()
    ctx = multiprocessing.get_context("fork")
    results: Queue[Any] = ctx.Queue()
    lifecycle.set_fork_safety(False)
    try:
        child = ctx.Process(target=_one_query, args=(pg_db, results))
        child.start()
        child_pid = results.get(timeout=30)
        child.join(30)
    finally:
        lifecycle.set_fork_safety(True)
    assert child_pid in parent_pids, "the child used the parent's pooled connection"
    # That connection's protocol state is now shared with a dead process: drop it.
    pg_db.dispose_pools()


def test_manager_init_and_close_worker_hooks(pg_url: str) -> None:
    manager = Manager({"databases": {"main": {"url": pg_url}}})
    try:
        parent_pid = _backend_pid(manager.db("main"))
        ctx = multiprocessing.get_context("fork")
        results: Queue[Any] = ctx.Queue()

        def worker() -> None:
            manager.init_worker(verify=True)  # seed 002: first thing in a worker
            pid = _backend_pid(manager.db("main"))
            manager.close_worker()  # seed 002: last thing in a worker
            results.put((pid, manager.errors, manager.db("main").get_pool_status().checked_in))

        lifecycle.set_fork_safety(False)  # the explicit hooks alone must be enough
        try:
            child = ctx.Process(target=worker)
            child.start()
            child_pid, errors, checked_in = results.get(timeout=30)
            child.join(30)
        finally:
            lifecycle.set_fork_safety(True)
        assert child.exitcode == 0
        assert child_pid != parent_pid
        assert errors == {}
        assert checked_in == 0, "close_worker() closed the worker's pooled connections"
        assert _backend_pid(manager.db("main")) == parent_pid
    finally:
        manager.close_all()
