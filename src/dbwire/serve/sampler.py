"""Status sampling: every connection's health latency and pool occupancy, every interval,
kept for the last window (15 minutes) in a bounded deque per connection."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dbwire.database import Database
from dbwire.errors import DbwireError
from dbwire.types import HealthResult, PoolStatus

logger = logging.getLogger("dbwire.serve")

WINDOW_S = 900


@dataclass(frozen=True)
class Sample:
    """One point of a connection's status series."""

    t: float
    latency_ms: float | None
    status: str
    checked_out: int
    idle: int
    waiting: int
    size: int | None


def sample_of(db: Database | None, result: HealthResult, now: float | None = None) -> Sample:
    """A sample from a health result and the database's pool right now."""
    pool: PoolStatus | None = None
    if db is not None:
        try:
            pool = db.get_pool_status()
        except DbwireError:
            pool = None
    return Sample(
        t=round(time.time() if now is None else now, 3),
        latency_ms=round(result.response_time_ms, 3) if result.healthy else None,
        status=result.status,
        checked_out=(pool.checked_out or 0) if pool else 0,
        idle=(pool.checked_in or 0) if pool else 0,
        waiting=int(getattr(pool, "waiting", 0) or 0) if pool else 0,
        size=pool.size if pool else None,
    )


class Sampler:
    """A daemon thread that samples every connection each interval; stop() ends it."""

    def __init__(
        self,
        names: Callable[[], list[str]],
        measure: Callable[[], dict[str, Sample]],
        *,
        interval: float = 5.0,
        window: float = WINDOW_S,
    ) -> None:
        if not interval > 0 or not math.isfinite(interval):
            raise ValueError("sample_interval must be a positive number of seconds")
        self.interval = float(interval)
        self.window = float(window)
        self._names = names
        self._measure = measure
        self._maxlen = max(1, math.ceil(window / interval))
        self._series: dict[str, deque[Sample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling (once; later calls do nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="dbwire-serve-sampler", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sampling and wait for the thread (a running check ends within its timeout)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._thread = None

    @property
    def running(self) -> bool:
        """True while the sampling thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample_once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample_once(self) -> None:
        """Take one sample of every connection now, all checked at once (each check is
        bounded by its health timeout, so one hanging server delays no other)."""
        try:
            samples = self._measure()
        except Exception as exc:  # sampling must outlive any one bad round
            logger.warning("dbwire serve: status sampling failed: %s", type(exc).__name__)
            return
        names = set(self._names())
        for name, sample in samples.items():
            if name in names:
                self.add(name, sample)
        with self._lock:
            for gone in set(self._series) - names:
                del self._series[gone]

    def add(self, name: str, sample: Sample) -> None:
        """Append a sample to a connection's series (the oldest falls off past the window)."""
        with self._lock:
            series = self._series.get(name)
            if series is None:
                series = self._series[name] = deque(maxlen=self._maxlen)
            series.append(sample)

    def forget(self, name: str) -> None:
        """Drop a connection's series (it was deleted)."""
        with self._lock:
            self._series.pop(name, None)

    def snapshot(self) -> dict[str, Any]:
        """GET /api/status: the interval, the window and each connection's samples."""
        cutoff = time.time() - self.window
        with self._lock:
            series = {
                name: [asdict(s) for s in points if s.t >= cutoff]
                for name, points in self._series.items()
            }
        return {"interval_s": self.interval, "window_s": int(self.window), "series": series}
