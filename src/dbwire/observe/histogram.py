"""A fixed-bucket histogram of seconds, cheap enough for every checkout and statement.

Written by hand because the hot path must not depend on an optional extra: the
Prometheus and OpenTelemetry exporters read these buckets (or receive each value) only
when they are installed.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

# OpenTelemetry's advised boundaries for db.client.* durations, in seconds.
BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

Sink = Callable[[float], None]


@dataclass(frozen=True)
class HistogramSnapshot:
    """Counts per bucket (non-cumulative; the last one is +Inf), the sum and the count."""

    buckets: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    count: int

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' (le, cumulative count) pairs, +Inf last."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            pairs.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return pairs


class Histogram:
    """Seconds observed into BUCKETS; values are also passed to every registered sink."""

    __slots__ = ("_counts", "_lock", "_sinks", "_sum")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._sinks: tuple[Sink, ...] = ()

    def observe(self, seconds: float) -> None:
        """Count one value (le semantics: a value equal to a bound falls in that bucket)."""
        index = bisect_left(BUCKETS, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds
        for sink in self._sinks:
            sink(seconds)

    def add_sink(self, sink: Sink) -> None:
        """Also hand every later value to `sink` (an OpenTelemetry histogram's record)."""
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def snapshot(self) -> HistogramSnapshot:
        """The counts right now."""
        with self._lock:
            counts = tuple(self._counts)
            total = self._sum
        return HistogramSnapshot(BUCKETS, counts, total, sum(counts))

    def reset(self) -> None:
        """Forget every value (a forked child starts from zero, with a fresh lock)."""
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
