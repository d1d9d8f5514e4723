"""Read replicas on real PostgreSQL streaming replication (a primary and a pg_basebackup -R
standby): routing, read-your-writes, lag and a standby that stops."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

import dbwire
from dbwire import ConfigError, Database, DatabaseConfig, UnknownDatabaseError
from servers.silent import SilentServer
from servers.standby import StandbyServer

IN_RECOVERY = text("SELECT pg_is_in_recovery()")


def _db(standby: StandbyServer, name: str, **fields: Any) -> Database:
    config = DatabaseConfig(name=name, url=standby.primary.url, replicas=[standby.url], **fields)
    return dbwire.connect(config)


@pytest.fixture(scope="module")
def table(pg_standby: StandbyServer) -> str:
    import psycopg

    with psycopg.connect(pg_standby.primary.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text)")
    pg_standby.wait_caught_up()
    return "notes"


@pytest.fixture
def db(pg_standby: StandbyServer, table: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    if not pg_standby.is_running():
        pg_standby.start()
    database = _db(pg_standby, request.node.name[:40], replica_backoff_s=0.3)
    yield database
    database.close()


def _write(db: Database) -> bool:
    with db.session() as s:
        s.execute(text("INSERT INTO notes (body) VALUES ('w')"))
        return bool(s.execute(IN_RECOVERY).scalar())


def test_thousand_readonly_sessions_on_standby_writes_on_primary(db: Database) -> None:
    # Written in a context of its own: a write pins its own context's reads to the primary.
    assert contextvars.copy_context().run(_write, db) is False
    on_standby = 0
    for _ in range(1000):
        with db.session(readonly=True) as s:
            on_standby += s.execute(IN_RECOVERY).scalar() is True
    assert on_standby == 1000
    assert db.execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)[1] == [{"r": True}]
    assert _write(db) is False  # writes stay on the primary


def test_replica_engine_is_read_only_itself(db: Database) -> None:
    replica = db._replicas.replicas[0].db  # type: ignore[union-attr]
    assert replica.readonly
    with replica.session() as s:
        assert s.execute(text("SHOW default_transaction_read_only")).scalar() == "on"


def test_async_readonly_sessions_on_standby(db: Database) -> None:
    async def main() -> list[bool]:
        # Within the replica's pool (5 + 10 overflow): a full replica pool spills reads
        # over to the primary instead of queueing (test_full_replica_pool_spills_over).
        gate = asyncio.Semaphore(10)

        async def one() -> bool:
            async with gate, db.async_session(readonly=True) as s:
                return bool((await s.execute(IN_RECOVERY)).scalar())

        try:
            flags = await asyncio.gather(*(one() for _ in range(200)))
            _, rows = await db.async_execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)
            return [*flags, rows[0]["r"]]
        finally:
            await db.aclose()

    assert all(asyncio.run(main()))


def test_read_after_write_in_same_context_sees_it(db: Database, pg_standby: StandbyServer) -> None:
    pg_standby.pause_replay()  # the standby cannot have the row: only the primary can
    try:
        with db.session() as s:
            s.execute(text("INSERT INTO notes (body) VALUES ('ryw-sync')"))
        with db.session(readonly=True) as s:
            row = s.execute(
                text("SELECT pg_is_in_recovery(), count(*) FROM notes WHERE body = 'ryw-sync'")
            ).one()
        assert tuple(row) == (False, 1)

        other: list[Any] = []

        def elsewhere() -> None:  # a new thread starts with a context of its own
            with db.session(readonly=True) as s:
                other.append(s.execute(IN_RECOVERY).scalar())

        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        assert other == [True]

        async def main() -> tuple[Any, Any]:
            async def writer() -> Any:
                async with db.async_session() as s:
                    await s.execute(text("INSERT INTO notes (body) VALUES ('ryw-async')"))
                async with db.async_session(readonly=True) as s:
                    return (
                        await s.execute(
                            text(
                                "SELECT pg_is_in_recovery(), count(*) FROM notes "
                                "WHERE body = 'ryw-async'"
                            )
                        )
                    ).one()

            async def reader() -> Any:
                await asyncio.sleep(0.2)  # after the writer committed
                async with db.async_session(readonly=True) as s:
                    return (await s.execute(IN_RECOVERY)).scalar()

            try:
                return await asyncio.gather(writer(), reader())
            finally:
                await db.aclose()

        # A fresh context: this test's own thread is pinned by its sync write above.
        written, read_elsewhere = contextvars.Context().run(asyncio.run, main())
        assert tuple(written) == (False, 1)
        assert read_elsewhere is True
    finally:
        pg_standby.resume_replay()


def test_read_your_writes_ends_after_its_window(pg_standby: StandbyServer, table: str) -> None:
    db = _db(pg_standby, "ryw_window", read_your_writes_s=0.3)
    try:
        db.execute_query("INSERT INTO notes (body) VALUES ('q')")
        assert db.execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)[1] == [
            {"r": False}
        ]
        time.sleep(0.5)
        assert db.execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)[1] == [
            {"r": True}
        ]
    finally:
        db.close()


def test_paused_standby_beyond_max_lag_is_skipped(pg_standby: StandbyServer, table: str) -> None:
    db = _db(
        pg_standby,
        "lagging",
        max_replica_lag_s=1.0,
        replica_check_interval_s=0.2,
        replica_backoff_s=1.5,  # long enough to still be in back-off at the health check
        read_your_writes_s=0,
    )
    try:
        with db.session(readonly=True) as s:
            assert s.execute(IN_RECOVERY).scalar() is True
        pg_standby.pause_replay()
        try:
            db.execute_query("INSERT INTO notes (body) VALUES ('lag')")  # received, not replayed
            time.sleep(1.5)
            with db.session(readonly=True) as s:
                assert s.execute(IN_RECOVERY).scalar() is False
            state = db._replicas.replicas[0]  # type: ignore[union-attr]
            assert state.lag_s is not None and state.lag_s > 1.0
            # ... and the primary's metrics carry it, under the replica's name only.
            lags = db.observation.snapshot().replica_lag
            assert list(lags.values()) and max(lags.values()) > 1.0
            assert all(pg_standby.password not in label for label in lags)
            assert "max_replica_lag_s" in (db.health_check().replicas[0].error or "")
        finally:
            pg_standby.resume_replay()
        pg_standby.wait_caught_up()
        time.sleep(1.6)  # the back-off ends; the next check measures 0 lag
        with db.session(readonly=True) as s:
            assert s.execute(IN_RECOVERY).scalar() is True
    finally:
        db.close()


def test_health_and_pool_status_show_the_replicas(db: Database) -> None:
    with db.session(readonly=True) as s:
        s.execute(IN_RECOVERY)
    health = db.health_check()
    assert health.healthy
    assert [r.name for r in health.replicas] == [f"{db.name}.replica1"]
    assert health.replicas[0].healthy
    status = db.get_pool_status()
    assert len(status.replicas) == 1 and status.replicas[0].checked_in >= 1  # type: ignore[operator]
    assert status.as_dict()["replicas"][0]["pool_class"]
    assert "replicas" not in status.as_dict()["replicas"][0]
    assert health.as_dict()["replicas"][0]["status"] == "healthy"
    password = db.config.replicas_with_passwords()[0].split(":")[2].split("@")[0]
    assert password not in repr(health) + repr(status) + repr(db.config)


def test_replicas_by_name_of_another_database(pg_standby: StandbyServer, table: str) -> None:
    config = dbwire.load_config(
        {
            "databases": {
                "main": {"url": pg_standby.primary.url, "replicas": ["reader"]},
                "reader": {"url": pg_standby.url},
            }
        }
    )
    db = dbwire.connect("main", config=config)
    try:
        assert db.execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)[1] == [
            {"r": True}
        ]
        assert db._replicas.replicas[0].db.readonly  # type: ignore[union-attr]
    finally:
        db.close()


def test_bad_replica_settings_are_refused_before_connect(pg_standby: StandbyServer) -> None:
    with pytest.raises(ConfigError, match="replica_strategy"):
        dbwire.connect("postgresql://a@h/d", replica_strategy="fastest", name="strategy")
    config = dbwire.load_config(
        {"databases": {"main": {"url": "postgresql://a@h/d", "replicas": ["raeder"]}}}
    )
    with pytest.raises(UnknownDatabaseError, match="raeder"):
        dbwire.connect("main", config=config)
    with pytest.raises(ConfigError, match="itself"):
        dbwire.connect(
            "main",
            config={"databases": {"main": {"url": "postgresql://a@h/d", "replicas": ["main"]}}},
        )
    with pytest.raises(ConfigError, match="max_replica_lag_s"):
        dbwire.connect(
            "postgresql://a@h/d", replicas=["sqlite:///x.db"], max_replica_lag_s=1, name="mixed"
        )


def test_readonly_query_refuses_writes_before_choosing_a_server(db: Database) -> None:
    with pytest.raises(dbwire.ReadOnlyError):
        db.execute_query("DELETE FROM notes", readonly=True)


def test_stopped_standby_reads_go_to_primary_with_no_failed_session(
    pg_standby: StandbyServer, table: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = _db(pg_standby, "standby_down", replica_backoff_s=0.2, read_your_writes_s=0)
    try:
        for _ in range(20):  # the replica's pool holds live connections
            with db.session(readonly=True) as s:
                assert s.execute(IN_RECOVERY).scalar() is True
        pg_standby.stop()
        failures = 0
        places: list[bool] = []
        began = time.monotonic()
        # Long enough for several back-offs to end: each retry of the replica must also
        # fall back on the primary without failing the session that made it.
        while time.monotonic() - began < 1.0 or len(places) < 300:
            try:
                with db.session(readonly=True) as s:
                    places.append(s.execute(IN_RECOVERY).scalar())
            except Exception:
                failures += 1
        assert failures == 0
        assert not any(places)

        async def main() -> list[Any]:
            async def one() -> Any:
                async with db.async_session(readonly=True) as s:
                    return (await s.execute(IN_RECOVERY)).scalar()

            try:
                found = list(await asyncio.gather(*(one() for _ in range(50))))
                await asyncio.sleep(0.3)  # back-off over: the replica is tried again
                found += await asyncio.gather(*(one() for _ in range(50)))
                found.append(
                    (
                        await db.async_execute_query(
                            "SELECT pg_is_in_recovery() AS r", readonly=True
                        )
                    )[1][0]["r"]
                )
                return found
            finally:
                await db.aclose()

        health = db.health_check()
        assert health.healthy and not health.replicas[0].healthy
        shown = repr(health) + repr(db.get_pool_status())
        assert asyncio.run(main()) == [False] * 101
        # Every skip was logged, and no log line or report shows the replica's password.
        assert "skipped for 0.2 s (connect failed" in caplog.text
        assert pg_standby.password not in caplog.text + shown
    finally:
        db.close()
        pg_standby.start()


def test_full_replica_pool_spills_over_to_the_primary(db: Database) -> None:
    async def main() -> list[Any]:
        async def one() -> Any:
            async with db.async_session(readonly=True) as s:
                found = (await s.execute(IN_RECOVERY)).scalar()
                await asyncio.sleep(0.3)  # hold the connection: the replica pool fills
                return found

        try:
            return list(await asyncio.gather(*(one() for _ in range(40))))
        finally:
            await db.aclose()

    places = contextvars.Context().run(asyncio.run, main())
    assert places.count(True) == 15  # pool_size 5 + max_overflow 10 on the standby
    assert places.count(False) == 25


def test_replica_that_never_answers_costs_one_connect_timeout(
    pg_standby: StandbyServer, table: str
) -> None:
    with SilentServer() as silent:
        replica = f"postgresql://dbwire:pw@127.0.0.1:{silent.port}/dbwire"
        db = dbwire.connect(
            DatabaseConfig(
                name="silent_replica",
                url=pg_standby.primary.url,
                replicas=[replica],
                connect_timeout=1,
                replica_backoff_s=60,
            )
        )
        try:
            began = time.monotonic()
            with db.session(readonly=True) as s:  # waits for the connect timeout once ...
                assert s.execute(IN_RECOVERY).scalar() is False
            first = time.monotonic() - began
            began = time.monotonic()
            for _ in range(50):  # ... then the replica is skipped: no wait at all
                with db.session(readonly=True) as s:
                    assert s.execute(IN_RECOVERY).scalar() is False
            rest = time.monotonic() - began
            assert 0.9 < first < 10, first
            assert rest < first, (first, rest)
            shown = db.health_check(timeout=1)
            assert shown.healthy and not shown.replicas[0].healthy
            assert "did not answer" in (shown.replicas[0].error or "")
            assert "pw@" not in repr(shown)
        finally:
            db.close()


def _two_replicas(standby: StandbyServer, name: str, strategy: str) -> Database:
    config = DatabaseConfig(
        name=name,
        url=standby.primary.url,
        replicas=[standby.url, standby.url],  # two replica pools on one standby
        replica_strategy=strategy,  # type: ignore[arg-type]
        read_your_writes_s=0,
    )
    return dbwire.connect(config)


def _replica_of(db: Database, session: Any) -> str:
    bind = session.get_bind()
    for state in db._replicas.replicas:  # type: ignore[union-attr]
        if state.db.engine is bind:
            return state.name
    return "primary"


def test_round_robin_alternates_between_replicas(pg_standby: StandbyServer, table: str) -> None:
    db = _two_replicas(pg_standby, "rr", "round_robin")
    try:
        seen = []
        for _ in range(6):
            with db.session(readonly=True) as s:
                s.execute(IN_RECOVERY)
                seen.append(_replica_of(db, s))
        assert seen == ["rr.replica1", "rr.replica2"] * 3
    finally:
        db.close()


def test_least_loaded_picks_the_replica_with_free_connections(
    pg_standby: StandbyServer, table: str
) -> None:
    db = _two_replicas(pg_standby, "ll", "least_loaded")
    try:
        held = [db.session(readonly=True) for _ in range(3)]
        for s in held:  # each takes the replica whose pool is least used at that moment
            s.execute(IN_RECOVERY)
        places = [_replica_of(db, s) for s in held]
        assert sorted(places) == ["ll.replica1", "ll.replica1", "ll.replica2"] or sorted(
            places
        ) == ["ll.replica1", "ll.replica2", "ll.replica2"]
        busier = max(set(places), key=places.count)
        with db.session(readonly=True) as s:  # goes to the less busy one
            s.execute(IN_RECOVERY)
            assert _replica_of(db, s) != busier
        for s in held:
            s.close()
    finally:
        db.close()


def test_commits_of_plain_session_factories_pin_reads_too(
    pg_standby: StandbyServer, table: str
) -> None:
    db = _db(pg_standby, "plain_factories")
    try:

        def sync_write() -> Any:
            with db.Session() as s:  # SQLAlchemy's own `with`: the caller commits
                s.execute(text("INSERT INTO notes (body) VALUES ('factory')"))
                s.commit()
            return db.execute_query("SELECT pg_is_in_recovery() AS r", readonly=True)[1]

        assert contextvars.Context().run(sync_write) == [{"r": False}]

        async def async_write() -> Any:
            try:
                async with db.AsyncSession() as s:
                    await s.execute(text("INSERT INTO notes (body) VALUES ('factory')"))
                    await s.commit()
                async with db.async_session(readonly=True) as s:
                    return (await s.execute(IN_RECOVERY)).scalar()
            finally:
                await db.aclose()

        assert contextvars.Context().run(asyncio.run, async_write()) is False
    finally:
        db.close()
