"""One database's observation: its pools' trackers, query durations, health and replica lag.

The Database owns one Observation and calls `install(engine)` for each engine it builds;
the exporters (Prometheus, OpenTelemetry) read `snapshot()`, which does no IO.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dbwire import health
from dbwire.observe.histogram import Histogram, HistogramSnapshot
from dbwire.observe.holders import PoolTimings, PoolTracker
from dbwire.types import HealthResult, PoolStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class ObservationSnapshot:
    """What the exporters show for one database, read at one moment."""

    pool_name: str
    db_system: str
    used: int
    idle: int
    max: int | None
    idle_max: int | None
    pending: int
    timeouts: int
    connects: int
    create_time: HistogramSnapshot
    wait_time: HistogramSnapshot
    use_time: HistogramSnapshot
    operation_duration: HistogramSnapshot | None
    healthy: bool | None
    health_response_s: float | None
    replica_lag: dict[str, float] = field(default_factory=dict)


def replica_label(replica: str) -> str:
    """A replica's name as a metric label: a URL becomes host:port, never its userinfo."""
    if "://" not in replica and "@" not in replica:
        return replica[:200]
    parts = urlsplit(replica if "://" in replica else f"//{replica}")
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


class Observation:
    """The trackers of one Database's engines (sync, and one per event loop) and more."""

    def __init__(
        self,
        name: str,
        db_system: str,
        *,
        operation_duration: Histogram | None = None,
        leak_warning_s: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.db_system = db_system
        self.operation_duration = operation_duration
        self.leak_warning_s = leak_warning_s
        self.logger = logger or logging.getLogger("dbwire")
        self.timings = PoolTimings()
        self._lock = threading.Lock()
        self._trackers: weakref.WeakKeyDictionary[Engine, PoolTracker] = weakref.WeakKeyDictionary()
        self._health: HealthResult | None = None
        self._lag: dict[str, float] = {}

    def install(self, engine: Engine) -> PoolTracker:
        """Track the holders, waiting callers and timings of this engine's pool."""
        tracker = PoolTracker(
            self.name,
            timings=self.timings,
            leak_warning_s=self.leak_warning_s,
            logger=self.logger,
        )
        tracker.install(engine)
        with self._lock:
            self._trackers[engine] = tracker
        return tracker

    def close(self) -> None:
        """The Database closed: its trackers give no more leak warnings."""
        with self._lock:
            trackers = list(self._trackers.values())
        for tracker in trackers:
            tracker.stop_watching()

    def tracker(self, engine: Engine) -> PoolTracker | None:
        """The tracker of an engine installed here, if any."""
        with self._lock:
            return self._trackers.get(engine)

    def pool_status(self, engine: Engine) -> PoolStatus:
        """health.pool_status() of the engine's pool, with its holders and waiting callers."""
        tracker = self.tracker(engine)
        if tracker is None:
            return health.pool_status(engine.pool)
        return health.pool_status(engine.pool, holders=tracker.holders(), waiting=tracker.waiting)

    def record_health(self, result: HealthResult) -> None:
        """Keep the last health check's outcome for the health gauge."""
        self._health = result

    def record_replica_lag(self, replica: str, seconds: float | None) -> None:
        """Set (or, with None, drop) how far a replica is behind, in seconds."""
        label = replica_label(replica)
        with self._lock:
            if seconds is None:
                self._lag.pop(label, None)
            else:
                self._lag[label] = float(seconds)

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's holders and timings are not this process's."""
        self._lock = threading.Lock()
        self.timings.reset()
        for tracker in list(self._trackers.values()):
            tracker.reset_after_fork()

    def snapshot(self) -> ObservationSnapshot:
        """Every number the exporters show, summed over this database's live pools.

        With a NullPool (or any pool that keeps no idle connections) every checkout is a
        connect, so `used` counts open connections and `idle` stays 0.
        """
        with self._lock:
            items = list(self._trackers.items())
            lag = dict(self._lag)
        used = idle = pending = 0
        most = idle_most = 0
        queues = unbounded = False
        for engine, tracker in items:
            from sqlalchemy.pool import QueuePool  # an engine exists: SQLAlchemy is loaded

            pool = engine.pool
            pending += tracker.waiting
            if isinstance(pool, QueuePool):
                queues = True
                used += pool.checkedout()
                idle += pool.checkedin()
                idle_most += pool.size()
                if pool._max_overflow < 0:
                    unbounded = True  # unlimited overflow: no maximum to report
                else:
                    most += pool.size() + pool._max_overflow
            else:
                used += len(tracker.holders())
        result = self._health
        timings = self.timings
        with timings.lock:
            timeouts, connects = timings.timeouts, timings.connects
        return ObservationSnapshot(
            pool_name=self.name,
            db_system=self.db_system,
            used=used,
            idle=idle,
            max=most if queues and not unbounded else None,
            idle_max=idle_most if queues else None,
            pending=pending,
            timeouts=timeouts,
            connects=connects,
            create_time=timings.create_time.snapshot(),
            wait_time=timings.wait_time.snapshot(),
            use_time=timings.use_time.snapshot(),
            operation_duration=(
                self.operation_duration.snapshot() if self.operation_duration else None
            ),
            healthy=None if result is None else result.healthy,
            health_response_s=None if result is None else result.response_time_ms / 1000.0,
            replica_lag=lag,
        )
