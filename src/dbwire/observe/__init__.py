"""Observation of a database: query counters and logs, pool holders, metrics.

`queries` times statements (counters, slow-query log, query logging); `holders` tracks
who holds each pooled connection and who waits; `observation` gathers one database's
numbers; `metrics` renders them in Prometheus' text format and `otel` as
OpenTelemetry instruments (both optional extras, imported only when used).
"""

from __future__ import annotations

from dbwire.observe.holders import PoolTimings, PoolTracker
from dbwire.observe.observation import Observation, ObservationSnapshot
from dbwire.observe.queries import QueryObserver, QueryStats

__all__ = [
    "Observation",
    "ObservationSnapshot",
    "PoolTimings",
    "PoolTracker",
    "QueryObserver",
    "QueryStats",
]
