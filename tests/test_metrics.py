"""Metrics: Prometheus text (manager.metrics(), FastAPI /metrics, `dbwire check --prometheus`)
and OpenTelemetry instruments, against the real PostgreSQL server; numbers must match
get_pool_status(), and no secret may reach a metric.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Connection
from typer.testing import CliRunner

from dbwire import Database, Manager, PoolTimeoutError
from dbwire.cli import app
from dbwire.integrations.fastapi import create_metrics_router

HERE = Path(__file__).name
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(exposition: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} missing; have {sorted(k[0] for k in samples)}"
    return samples[key]


def _password(pg_url: str) -> str:
    password = urlsplit(pg_url).password
    assert password, "the throwaway server's URL carries a password"
    return unquote(password)


@pytest.fixture
def manager(pg_url: str) -> Iterator[Manager]:
    config = {
        "databases": {
            "main": {"url": pg_url, "pool_size": 5, "max_overflow": 0, "pool_timeout": 0.5}
        }
    }
    with Manager(config) as m:
        yield m


def hold_connection_in_a_known_place(db: Database) -> Connection:
    conn = db.connect()
    conn.execute(text("SELECT 1"))
    return conn


def _labels() -> dict[str, str]:
    return {"pool_name": "main", "db_system": "postgresql"}


def test_metrics_route_matches_pool_status_while_connections_are_held(
    manager: Manager, pg_url: str
) -> None:
    db = manager.db("main")
    app_ = FastAPI()
    app_.include_router(create_metrics_router(manager))
    held = [hold_connection_in_a_known_place(db) for _ in range(3)]
    try:
        with TestClient(app_) as client:
            response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
        status = db.get_pool_status()
        labels = _labels()
        assert status.checked_out == 3 and len(status.holders) == 3
        assert _value(samples, "db_client_connection_count", **labels, state="used") == 3
        assert (
            _value(samples, "db_client_connection_count", **labels, state="idle")
            == status.checked_in
        )
        assert _value(samples, "db_client_connection_max", **labels) == 5
        assert _value(samples, "db_client_connection_idle_max", **labels) == 5
        assert _value(samples, "db_client_connection_pending_requests", **labels) == 0
        assert _value(samples, "db_client_connection_timeouts_total", **labels) == 0
        assert _value(samples, "db_client_connection_wait_time_seconds_count", **labels) >= 3
        assert _value(samples, "db_client_connection_create_time_seconds_count", **labels) >= 3
        assert _value(samples, "db_client_operation_duration_seconds_count", **labels) >= 3
        assert _value(
            samples, "db_client_operation_duration_seconds_bucket", **labels, le="+Inf"
        ) == _value(samples, "db_client_operation_duration_seconds_count", **labels)
    finally:
        for conn in held:
            conn.close()
    after = _samples(manager.metrics())
    assert _value(after, "db_client_connection_count", **_labels(), state="used") == 0
    assert _value(after, "db_client_connection_use_time_seconds_count", **_labels()) >= 3
    assert _password(pg_url) not in response.text


def test_timeout_counts_and_names_the_holder(manager: Manager) -> None:
    db = manager.db("main")
    held = [hold_connection_in_a_known_place(db) for _ in range(5)]
    try:
        with pytest.raises(PoolTimeoutError) as caught:
            db.connect().close()
        message = str(caught.value)
        assert "hold_connection_in_a_known_place" in message and HERE in message
        samples = _samples(manager.metrics())
        assert _value(samples, "db_client_connection_timeouts_total", **_labels()) == 1
        assert _value(samples, "db_client_connection_count", **_labels(), state="used") == 5
    finally:
        for conn in held:
            conn.close()


def test_database_session_holders_and_leak_warning(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbwire")
    config = {
        "databases": {
            "leaky": {
                "url": pg_url,
                "pool_size": 5,
                "max_overflow": 0,
                "pool_timeout": 0.5,
                "leak_warning_s": 0.2,
            }
        }
    }
    with Manager(config) as m:
        db = m.db("leaky")

        def run_a_report_and_forget_the_session() -> object:
            session = db.session()
            session.execute(text("SELECT 1"))
            return session

        sessions = [run_a_report_and_forget_the_session() for _ in range(5)]
        with pytest.raises(PoolTimeoutError) as caught, db.session() as s:
            s.execute(text("SELECT 1"))
        assert "run_a_report_and_forget_the_session" in str(caught.value)
        time.sleep(0.6)
        for session in sessions:
            session.close()  # type: ignore[attr-defined]
        warnings = [
            r.getMessage() for r in caplog.records if "leak_warning_s=0.2" in r.getMessage()
        ]
        assert len(warnings) == 5, caplog.text  # once per checkout, not per watch tick
        assert all("run_a_report_and_forget_the_session" in w for w in warnings)
        assert _password(pg_url) not in caplog.text


async def test_async_database_leak_warning_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dbwire")
    with Manager({"databases": {"a": {"url": pg_url, "leak_warning_s": 0.2}}}) as m:
        db = m.db("a")

        async def keep_an_async_session_open() -> None:
            async with db.async_session() as s:
                await s.execute(text("SELECT 1"))
                status = db.get_pool_status(is_async=True)
                assert [h.where.split(" in ")[-1] for h in status.holders] == [
                    "keep_an_async_session_open"
                ]
                assert status.holders[0].task
                await asyncio.sleep(0.7)

        await keep_an_async_session_open()
        await db.aclose()
    warnings = [r for r in caplog.records if "leak_warning_s=0.2" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    assert "keep_an_async_session_open" in warnings[0].getMessage()


def _otel_points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[object]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_otel_instruments_report_the_same_numbers(manager: Manager) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("test")
    instruments = manager.instrument_otel(meter)
    assert manager.instrument_otel(meter) is instruments, "one set of instruments per meter"
    db = manager.db("main")
    held = [hold_connection_in_a_known_place(db) for _ in range(2)]
    try:
        points = _otel_points(reader)
        status = db.get_pool_status()
        by_state = {
            p.attributes["db.client.connection.state"]: p.value  # type: ignore[attr-defined]
            for p in points["db.client.connection.count"]
        }
        assert by_state == {"used": 2, "idle": status.checked_in}
        (most,) = points["db.client.connection.max"]
        assert most.value == 5  # type: ignore[attr-defined]
        assert most.attributes == {  # type: ignore[attr-defined]
            "db.client.connection.pool.name": "main",
            "db.system.name": "postgresql",
        }
        (pending,) = points["db.client.connection.pending_requests"]
        assert pending.value == 0  # type: ignore[attr-defined]
        (wait,) = points["db.client.connection.wait_time"]
        assert wait.count == 2  # type: ignore[attr-defined]
        with pytest.raises(PoolTimeoutError):
            for _ in range(4):
                held.append(hold_connection_in_a_known_place(db))
        points = _otel_points(reader)
        (timeouts,) = points["db.client.connection.timeouts"]
        assert timeouts.value == 1  # type: ignore[attr-defined]
        (duration,) = points["db.client.operation.duration"]
        assert duration.count == db.get_stats().queries  # type: ignore[attr-defined]
    finally:
        for conn in held:
            conn.close()
    prom = _samples(manager.metrics())
    assert _value(prom, "db_client_connection_timeouts_total", **_labels()) == 1


def test_no_secret_in_any_metric_output(pg_url: str) -> None:
    password = _password(pg_url)
    config = {"databases": {"main": {"url": pg_url}}}
    with Manager(config) as m:
        db = m.db("main")
        with db.session() as s:
            s.execute(text("SELECT 1"))
        # a caller that passes a replica URL gets host:port as the label, never its login
        db.observation.record_replica_lag(f"postgresql://app:{password}@replica-1:5433/app", 1.5)
        reader = InMemoryMetricReader()
        m.instrument_otel(MeterProvider(metric_readers=[reader]).get_meter("t"))
        exposition = m.metrics(check_health=True)
        otel = repr(reader.get_metrics_data())
    assert password not in exposition and password not in otel
    samples = _samples(exposition)
    labels = _labels()
    assert _value(samples, "dbwire_replica_lag_seconds", **labels, replica="replica-1:5433") == 1.5
    assert _value(samples, "dbwire_database_healthy", **labels) == 1.0
    for key in samples:
        assert {name for name, _ in key[1]} <= {"pool_name", "db_system", "state", "replica", "le"}


def test_check_prometheus_prints_parseable_metrics(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "dbwire.toml"
    config.write_text(f'[databases.primary]\nurl = "{pg_url}"\n')
    result = CliRunner().invoke(app, ["check", "--config", str(config), "--prometheus"])
    assert result.exit_code == 0, result.output
    samples = _samples(result.stdout)
    labels = {"pool_name": "primary", "db_system": "postgresql"}
    assert _value(samples, "dbwire_database_healthy", **labels) == 1.0
    assert _value(samples, "db_client_connection_count", **labels, state="used") == 0
    assert _value(samples, "db_client_connection_create_time_seconds_count", **labels) >= 1
    assert _password(pg_url) not in result.output


def test_managers_have_their_own_registries(pg_url: str) -> None:
    import prometheus_client

    before = {m.name for m in prometheus_client.REGISTRY.collect()}
    with (
        Manager({"databases": {"one": {"url": pg_url}}}) as a,
        Manager({"databases": {"two": {"url": "sqlite://"}}}) as b,
    ):
        a.db("one")
        b.db("two")
        text_a, text_b = a.metrics(), b.metrics()
    assert 'pool_name="one"' in text_a and 'pool_name="two"' not in text_a
    assert 'pool_name="two"' in text_b and 'db_system="sqlite"' in text_b
    assert {m.name for m in prometheus_client.REGISTRY.collect()} == before


def test_null_pool_metrics_count_connects(pg_url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from dbwire.observe import Observation
    from dbwire.observe.metrics import PrometheusExporter
    from dbwire.pool import hooked_pool_class

    engine = create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://"),
        poolclass=hooked_pool_class(NullPool),
    )
    observation = Observation("bouncer", "postgresql")
    observation.install(engine)
    exporter = PrometheusExporter(lambda: [observation.snapshot()])
    labels = {"pool_name": "bouncer", "db_system": "postgresql"}
    try:
        held = [engine.connect() for _ in range(2)]
        samples = _samples(exporter.text())
        assert _value(samples, "db_client_connection_count", **labels, state="used") == 2
        assert _value(samples, "db_client_connection_count", **labels, state="idle") == 0
        assert ("db_client_connection_max", tuple(sorted(labels.items()))) not in samples
        for conn in held:
            conn.close()
        with engine.connect():
            pass
        samples = _samples(exporter.text())
        assert _value(samples, "db_client_connection_count", **labels, state="used") == 0
        assert _value(samples, "db_client_connection_create_time_seconds_count", **labels) == 3
        assert _value(samples, "db_client_connection_wait_time_seconds_count", **labels) == 3
    finally:
        engine.dispose()


def test_a_server_that_never_answers_shows_as_pending_then_no_holder() -> None:
    import threading

    from dbwire import ConnectError
    from servers.silent import SilentServer

    with SilentServer() as silent:
        url = f"postgresql://app:pw@127.0.0.1:{silent.port}/app?connect_timeout=2"
        with Manager({"databases": {"hung": {"url": url}}}) as m:
            db = m.db("hung")
            errors: list[BaseException] = []

            def connect_to_the_silent_server() -> None:
                try:
                    db.connect().close()
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=connect_to_the_silent_server)
            thread.start()
            deadline = time.monotonic() + 5
            while db.get_pool_status().waiting != 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            labels = {"pool_name": "hung", "db_system": "postgresql"}
            samples = _samples(m.metrics())
            status = db.get_pool_status()
            assert _value(samples, "db_client_connection_pending_requests", **labels) == 1
            # SQLAlchemy counts the slot being connected as checked out; metrics agree
            assert (
                _value(samples, "db_client_connection_count", **labels, state="used")
                == status.checked_out
            )
            assert status.holders == ()
            thread.join(10)
            assert not thread.is_alive()
            assert len(errors) == 1 and isinstance(errors[0], ConnectError)
            status = db.get_pool_status()
            assert status.waiting == 0 and status.holders == ()
            samples = _samples(m.metrics())
            assert _value(samples, "db_client_connection_pending_requests", **labels) == 0
            assert _value(samples, "db_client_connection_create_time_seconds_count", **labels) == 0


def test_histogram_batches_count_each_value_in_its_le_bucket() -> None:
    """A folded batch counts like one bisection per value: a value equal to a bound is in
    that bound's bucket, a value above the last bound is in +Inf."""
    from bisect import bisect_left

    from dbwire.observe.histogram import BUCKETS, FOLD_AT, Histogram

    values = [0.0, *BUCKETS, 0.003, 0.07, 7.0, 20.0] * (FOLD_AT // 8)
    histogram = Histogram()
    for value in values:
        histogram.observe(value)
    expected = [0] * (len(BUCKETS) + 1)
    for value in values:
        expected[bisect_left(BUCKETS, value)] += 1
    snapshot = histogram.snapshot()
    assert snapshot.counts == tuple(expected)
    assert snapshot.count == len(values)
    assert snapshot.total == pytest.approx(sum(values))
    assert histogram.max == 20.0
