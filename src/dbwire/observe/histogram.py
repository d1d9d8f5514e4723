"""A fixed-bucket histogram of seconds, cheap enough for every checkout and statement.

Written by hand because the hot path must not depend on an optional extra: the
Prometheus and OpenTelemetry exporters read these buckets (or receive each value) only
when they are installed.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
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


# Values wait in a list until this many have come (or someone reads): the hot path then
# pays one list append, not a bisect and a lock, per value.
FOLD_AT = 256


class Histogram:
    """Seconds observed into BUCKETS; values are also passed to every registered sink.

    `observe()` appends to `pending` (a list append is atomic, so no lock is taken) and
    folds the pending values into the buckets once FOLD_AT of them wait; every read folds
    first. A hot path that already runs Python code may append to `pending` itself and
    call fold() when `len(pending) >= fold_at`. With a sink (OpenTelemetry) each value is
    folded, and handed on, at once.
    """

    __slots__ = ("_counts", "_lock", "_max", "_sinks", "_sum", "fold_at", "pending")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._max = 0.0
        self._sinks: tuple[Sink, ...] = ()
        self.pending: list[float] = []
        self.fold_at = FOLD_AT

    def observe(self, seconds: float) -> None:
        """Count one value (le semantics: a value equal to a bound falls in that bucket)."""
        pending = self.pending
        pending.append(seconds)
        if len(pending) >= self.fold_at:
            self.fold()

    def fold(self) -> None:
        """Move the pending values into the buckets (and hand them to the sinks)."""
        with self._lock:
            pending = self.pending
            taken = len(pending)
            values = pending[:taken]
            # Only the values copied are removed: appends made meanwhile stay pending.
            del pending[:taken]
            if values:
                # Sorted once, each bucket's count is the distance between two bounds'
                # positions: ten bisections a batch instead of one per value.
                values.sort()
                counts = self._counts
                below = 0
                for i, bound in enumerate(BUCKETS):
                    upto = bisect_right(values, bound, below)  # le: equal to a bound is in
                    counts[i] += upto - below
                    below = upto
                counts[-1] += taken - below
                self._sum += sum(values)
                if values[-1] > self._max:
                    self._max = values[-1]
            sinks = self._sinks
        for sink in sinks:
            for value in values:
                sink(value)

    def add_sink(self, sink: Sink) -> None:
        """Also hand every later value to `sink` (an OpenTelemetry histogram's record)."""
        self.fold()
        with self._lock:
            self._sinks = (*self._sinks, sink)
            self.fold_at = 1

    def snapshot(self) -> HistogramSnapshot:
        """The counts right now."""
        self.fold()
        with self._lock:
            counts = tuple(self._counts)
            total = self._sum
        return HistogramSnapshot(BUCKETS, counts, total, sum(counts))

    @property
    def max(self) -> float:
        """The largest value observed."""
        self.fold()
        return self._max

    def reset(self) -> None:
        """Forget every value (a forked child starts from zero, with a fresh lock)."""
        self._lock = threading.Lock()
        del self.pending[:]  # in place: hot paths may hold the list
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self._max = 0.0
