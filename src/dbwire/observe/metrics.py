"""Prometheus' text format for many databases (the `metrics` extra: prometheus_client).

Names are OpenTelemetry's database client metrics with dots as underscores and the unit
as a suffix (`db.client.connection.wait_time` -> `db_client_connection_wait_time_seconds`);
labels are `pool_name` (the database's name) and `db_system` (its backend) only, so no URL,
host or secret can reach a label. Every exporter has its own CollectorRegistry: nothing
is added to prometheus_client's global one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dbwire.errors import MissingDependencyError
from dbwire.observe.histogram import HistogramSnapshot
from dbwire.observe.observation import ObservationSnapshot

Source = Callable[[], Iterable[ObservationSnapshot]]
LABELS = ["pool_name", "db_system"]

# (Prometheus name, OpenTelemetry name, help, snapshot attribute)
HISTOGRAMS: tuple[tuple[str, str, str, str], ...] = (
    (
        "db_client_connection_create_time_seconds",
        "db.client.connection.create_time",
        "The time it took to create a new connection",
        "create_time",
    ),
    (
        "db_client_connection_wait_time_seconds",
        "db.client.connection.wait_time",
        "The time it took to obtain an open connection from the pool",
        "wait_time",
    ),
    (
        "db_client_connection_use_time_seconds",
        "db.client.connection.use_time",
        "The time between borrowing a connection and returning it to the pool",
        "use_time",
    ),
    (
        "db_client_operation_duration_seconds",
        "db.client.operation.duration",
        "Duration of database client operations",
        "operation_duration",
    ),
)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingDependencyError(
            "metrics in Prometheus' format need prometheus_client; "
            "install it with: pip install 'dbwire[metrics]'"
        ) from None
    return prometheus_client


class DbwireCollector:
    """A custom collector: reads every database's snapshot at scrape time, no IO."""

    def __init__(self, source: Source) -> None:
        self._source = source

    def describe(self) -> list[Any]:
        return []  # families depend on the databases present at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        snaps = list(self._source())
        count = GaugeMetricFamily(
            "db_client_connection_count",
            "The number of connections that are currently in the state described by 'state'",
            labels=[*LABELS, "state"],
        )
        gauges: dict[str, Any] = {
            "max": GaugeMetricFamily(
                "db_client_connection_max",
                "The maximum number of open connections allowed",
                labels=LABELS,
            ),
            "idle_max": GaugeMetricFamily(
                "db_client_connection_idle_max",
                "The maximum number of idle open connections allowed",
                labels=LABELS,
            ),
            "pending": GaugeMetricFamily(
                "db_client_connection_pending_requests",
                "The number of current pending requests for an open connection",
                labels=LABELS,
            ),
        }
        timeouts = CounterMetricFamily(
            "db_client_connection_timeouts",
            "The number of connection timeouts that have occurred trying to obtain a "
            "connection from the pool",
            labels=LABELS,
        )
        healthy = GaugeMetricFamily(
            "dbwire_database_healthy",
            "1 when the last health check passed, 0 when it failed",
            labels=LABELS,
        )
        health_time = GaugeMetricFamily(
            "dbwire_database_health_response_time_seconds",
            "How long the last health check took",
            labels=LABELS,
        )
        lag = GaugeMetricFamily(
            "dbwire_replica_lag_seconds",
            "How far a replica is behind its primary",
            labels=[*LABELS, "replica"],
        )
        histograms: dict[str, Any] = {
            attr: HistogramMetricFamily(name, doc, labels=LABELS, unit="seconds")
            for name, _otel, doc, attr in HISTOGRAMS
        }
        for snap in snaps:
            labels = [snap.pool_name, snap.db_system]
            count.add_metric([*labels, "idle"], snap.idle)
            count.add_metric([*labels, "used"], snap.used)
            for key, family in gauges.items():
                value = getattr(snap, key)
                if value is not None:
                    family.add_metric(labels, value)
            timeouts.add_metric(labels, snap.timeouts)
            if snap.healthy is not None:
                healthy.add_metric(labels, 1.0 if snap.healthy else 0.0)
            if snap.health_response_s is not None:
                health_time.add_metric(labels, snap.health_response_s)
            for replica, seconds in sorted(snap.replica_lag.items()):
                lag.add_metric([*labels, replica], seconds)
            for attr, family in histograms.items():
                histogram: HistogramSnapshot | None = getattr(snap, attr)
                if histogram is not None:
                    family.add_metric(
                        labels, buckets=histogram.cumulative(), sum_value=histogram.total
                    )
        yield count
        yield from gauges.values()
        yield timeouts
        yield from histograms.values()
        yield healthy
        yield health_time
        yield lag


class PrometheusExporter:
    """A private CollectorRegistry over a source of snapshots; `text()` is one scrape."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, source: Source) -> None:
        prometheus_client = _prometheus()
        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self.registry.register(DbwireCollector(source))

    def text(self) -> str:
        """The metrics in Prometheus' text exposition format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode("utf-8")
