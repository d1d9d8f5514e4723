"""OpenTelemetry instruments for the same numbers (the `otel` extra: opentelemetry-api).

Gauges are observable instruments read from each database's snapshot when the reader
collects; durations are histograms recorded as they happen (an OpenTelemetry histogram
cannot be observed). Names and attributes are the database client semantic conventions.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dbwire.errors import MissingDependencyError
from dbwire.observe.histogram import BUCKETS
from dbwire.observe.metrics import HISTOGRAMS
from dbwire.observe.observation import Observation, ObservationSnapshot

POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
SYSTEM = "db.system.name"

Measures = Iterator[tuple[float, dict[str, str]]]
Pick = Callable[[ObservationSnapshot], Measures]

# (name, unit, description, what to read from a snapshot); counters cumulative
_GAUGES: tuple[tuple[str, str, str, str], ...] = (
    ("db.client.connection.max", "{connection}", "The maximum number of open connections", "max"),
    (
        "db.client.connection.idle.max",
        "{connection}",
        "The maximum number of idle connections",
        "idle_max",
    ),
    (
        "db.client.connection.pending_requests",
        "{request}",
        "Pending requests for a connection",
        "pending",
    ),
)


def _metrics_api() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError:
        raise MissingDependencyError(
            "OpenTelemetry instruments need opentelemetry-api; "
            "install it with: pip install 'dbwire[otel]'"
        ) from None
    return metrics


def _attributes(pool_name: str, db_system: str) -> dict[str, str]:
    return {POOL_NAME: pool_name, SYSTEM: db_system}


def _count(snap: ObservationSnapshot) -> Measures:
    base = _attributes(snap.pool_name, snap.db_system)
    yield snap.idle, {**base, STATE: "idle"}
    yield snap.used, {**base, STATE: "used"}


def _field(attr: str) -> Pick:
    def pick(snap: ObservationSnapshot) -> Measures:
        value = getattr(snap, attr)
        if value is not None:
            yield value, _attributes(snap.pool_name, snap.db_system)

    return pick


class OtelInstruments:
    """The instruments on one Meter (the global provider's "dbwire" meter unless given),
    fed by the observations of `source` and any added later with add()."""

    def __init__(self, source: Callable[[], Iterable[Observation]], meter: Any = None) -> None:
        metrics = _metrics_api()
        self.meter = meter if meter is not None else metrics.get_meter("dbwire")
        self._source = source
        self._lock = threading.Lock()
        self._fed: weakref.WeakSet[Observation] = weakref.WeakSet()
        m = self.meter
        m.create_observable_up_down_counter(
            "db.client.connection.count",
            [self._callback(_count)],
            unit="{connection}",
            description="The number of connections that are currently in state "
            "described by the state attribute",
        )
        for name, unit, description, attr in _GAUGES:
            m.create_observable_up_down_counter(
                name, [self._callback(_field(attr))], unit=unit, description=description
            )
        m.create_observable_counter(
            "db.client.connection.timeouts",
            [self._callback(_field("timeouts"))],
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to "
            "obtain a connection from the pool",
        )
        self._histograms = {
            attr: m.create_histogram(
                otel_name,
                unit="s",
                description=doc,
                explicit_bucket_boundaries_advisory=list(BUCKETS),
            )
            for _prom, otel_name, doc, attr in HISTOGRAMS
        }
        for observation in list(source()):
            self.add(observation)

    def _callback(self, pick: Pick) -> Callable[[Any], list[Any]]:
        from opentelemetry.metrics import Observation as Measured

        def callback(_options: Any) -> list[Any]:
            return [
                Measured(value, attrs)
                for observation in list(self._source())
                for value, attrs in pick(observation.snapshot())
            ]

        return callback

    def add(self, observation: Observation) -> None:
        """Record this database's durations from now on (each observation once)."""
        with self._lock:
            if observation in self._fed:
                return
            self._fed.add(observation)
        attrs = _attributes(observation.name, observation.db_system)
        timings = observation.timings
        feeds = {
            "create_time": timings.create_time,
            "wait_time": timings.wait_time,
            "use_time": timings.use_time,
            "operation_duration": observation.operation_duration,
        }
        for attr, histogram in feeds.items():
            if histogram is not None:
                histogram.add_sink(_recorder(self._histograms[attr], attrs))


def _recorder(instrument: Any, attrs: dict[str, str]) -> Callable[[float], None]:
    def record(value: float) -> None:
        instrument.record(value, attrs)

    return record
