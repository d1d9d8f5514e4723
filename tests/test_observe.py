"""Query observation: counters, errors, slow-query and query logs, thread safety, overhead."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dbwire import Database, DatabaseConfig, QueryStats


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Database]:
    """A file SQLite Database with every observation setting at its default."""
    db = Database(DatabaseConfig(name="lite", url=f"sqlite:///{tmp_path / 'o.db'}"))
    yield db
    db.close()


def test_counts_queries_errors_and_durations(lite: Database) -> None:
    assert lite.get_stats() == QueryStats(0, 0, 0, 0.0, 0.0)
    for _ in range(5):
        lite.execute_query("SELECT 1")
    with pytest.raises(Exception, match="no such table"):
        lite.execute_query("SELECT * FROM missing_table")
    stats = lite.get_stats()
    assert (stats.queries, stats.errors, stats.slow_queries) == (6, 1, 0)
    assert 0 < stats.max_ms <= stats.total_ms
    assert stats.avg_ms == pytest.approx(stats.total_ms / 6)
    assert set(stats.as_dict()) == {
        "queries",
        "errors",
        "slow_queries",
        "total_ms",
        "max_ms",
        "avg_ms",
    }
    lite.reset_stats()
    assert lite.get_stats().queries == 0


async def test_async_engine_counts_into_the_same_stats(tmp_path: Path) -> None:
    db = Database(DatabaseConfig(name="both", url=f"sqlite:///{tmp_path / 'b.db'}"))
    try:
        db.execute_query("SELECT 1")
        await db.async_execute_query("SELECT 2")
        assert db.get_stats().queries == 2
    finally:
        await db.aclose()


def test_counters_are_exact_under_threads(lite: Database) -> None:
    per_thread, threads = 200, 16
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        with lite.connect() as conn:
            for _ in range(per_thread):
                conn.exec_driver_sql("SELECT 1")

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert lite.get_stats().queries == per_thread * threads


def test_slow_queries_are_logged_with_the_statement_but_never_the_parameters(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret_param = "hunter2-parameter-value"
    db = Database(DatabaseConfig(name="slowpg", url=pg_url, slow_query_ms=50))
    caplog.set_level(logging.WARNING, logger="dbwire")
    try:
        with db.connect() as conn:
            conn.execute(text("SELECT pg_sleep(0.1), :token AS token"), {"token": secret_param})
            conn.execute(text("SELECT 1"))  # fast: not logged
        stats = db.get_stats()
        assert stats.slow_queries == 1
        assert stats.max_ms >= 100
        slow = [r for r in caplog.records if "slow query" in r.getMessage()]
        assert len(slow) == 1
        assert slow[0].levelno == logging.WARNING
        message = slow[0].getMessage()
        assert "database 'slowpg'" in message
        assert "pg_sleep(0.1)" in message
        assert "slow_query_ms=50" in message
        assert secret_param not in caplog.text
    finally:
        db.close()


def test_the_database_password_is_masked_in_logged_statements(
    pg_server: object, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    password = pg_url.split(":")[2].split("@")[0]
    db = Database(
        DatabaseConfig(name="maskpg", url=pg_url, log_queries=True, query_log_level="INFO")
    )
    caplog.set_level(logging.INFO, logger="dbwire")
    try:
        # A statement that spells the password out, as ALTER ROLE ... PASSWORD would.
        db.execute_query(f"SELECT '{password}' AS pw, 'postgresql://u:other-secret@h/d' AS url")
        logged = [r.getMessage() for r in caplog.records if "query:" in r.getMessage()]
        assert logged, caplog.text
        assert password not in caplog.text
        assert "other-secret" not in caplog.text
        assert "***" in logged[-1]
    finally:
        db.close()


def test_query_logging_at_the_configured_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(
        DatabaseConfig(
            name="logged",
            url=f"sqlite:///{tmp_path / 'l.db'}",
            log_queries=True,
            query_log_level="info",
        )
    )
    caplog.set_level(logging.INFO, logger="dbwire")
    try:
        db.execute_query("SELECT 42 AS answer")
        records = [r for r in caplog.records if "query:" in r.getMessage()]
        assert len(records) == 1
        assert records[0].levelno == logging.INFO
        assert "SELECT 42 AS answer" in records[0].getMessage()
        assert " ms: " in records[0].getMessage()
        caplog.clear()
        caplog.set_level(logging.WARNING, logger="dbwire")
        db.execute_query("SELECT 43")
        assert not [r for r in caplog.records if "query:" in r.getMessage()]
    finally:
        db.close()


def test_the_injected_logger_receives_the_logs(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("myapp.db")
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    logger.addHandler(handler)
    try:
        db = Database(
            DatabaseConfig(name="inj", url=f"sqlite:///{tmp_path / 'i.db'}", log_queries=True),
            logger=logger,
        )
        db.execute_query("SELECT 1")
        db.close()
        assert [r.levelno for r in records] == [logging.DEBUG]
        assert records[0].name == "myapp.db"
    finally:
        logger.removeHandler(handler)


def test_a_repeated_statement_stays_masked_as_the_known_secrets_change(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The logged form of a statement is kept for its next run; a secret learned later
    # (a rotated password) must still be masked in it, and one no longer known unmasked.
    from dbwire.observe import queries

    monkeypatch.setattr(queries, "_SECRETS_TTL", 0.0)  # the secrets are read on every log
    known = ["first-password"]
    logger = logging.getLogger("dbwire.test_shown")
    observer = queries.QueryObserver(
        "shown", logger=logger, log_queries=True, query_log_level="INFO", secrets=lambda: known
    )
    statement = "SELECT 'first-password', 'second-password'"
    caplog.set_level(logging.INFO, logger="dbwire.test_shown")
    shown: list[str] = []
    for secrets in (["first-password"], ["first-password"], ["second-password"], []):
        known = secrets
        caplog.clear()
        observer.record(statement, 0.001)
        (message,) = [r.getMessage() for r in caplog.records]
        shown.append(message.split(" ms: ", 1)[1])
    assert shown == [
        "SELECT '***', 'second-password'",
        "SELECT '***', 'second-password'",
        "SELECT 'first-password', '***'",
        "SELECT 'first-password', 'second-password'",
    ]
    monkeypatch.setattr(queries, "_SECRETS_TTL", 60.0)
    known = ["second-password"]
    cached = queries.QueryObserver(
        "kept", logger=logger, log_queries=True, query_log_level="INFO", secrets=lambda: known
    )
    for _ in range(3):  # with the secrets cached, the kept form is the masked one
        caplog.clear()
        cached.record(statement, 0.001)
        assert "'***'" in caplog.text and "second-password" not in caplog.text
