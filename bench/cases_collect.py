"""The collect case: rows made by bench/collect.py (LocalStore.collect), when it exists."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from bench.context import Context
from bench.harness import Budget, Row, Stats, pending


def case_collect(ctx: Context) -> list[Row]:
    operation = "`store.collect(db, ...)`"
    if importlib.util.find_spec("bench.collect") is None:
        return [pending("collect", operation, "pending: bench/collect.py is not there yet")]
    module = importlib.import_module("bench.collect")
    found = [row_from_mapping(item) for item in module.run(ctx.quick)]
    return found or [pending("collect", operation, "pending: bench/collect.py made no rows")]


def row_from_mapping(item: Mapping[str, Any]) -> Row:
    """A Row from collect.run()'s dicts: Row.as_json() keys, or plain `*_us` numbers."""
    budget: Budget | None = None
    raw_budget = item.get("budget")
    if isinstance(raw_budget, Mapping) and "limit" in raw_budget:
        budget = Budget(
            float(raw_budget["limit"]),
            str(raw_budget.get("text", "")),
            raw_budget.get("metric", "ratio"),
        )
    elif isinstance(item.get("budget_limit"), int | float):
        budget = Budget(float(item["budget_limit"]), str(item.get("budget_text", "")))
    row = Row(
        case=str(item.get("case", "collect")),
        operation=str(item.get("operation") or item.get("name") or "collect"),
        baseline_name=str(item.get("baseline_name") or item.get("baseline_label") or ""),
        dbwire=_stats(item, "dbwire"),
        baseline=_stats(item, "baseline"),
        floor=_stats(item, "floor"),
        paired_ratio=item.get("ratio") if isinstance(item.get("ratio"), int | float) else None,
        budget=budget,
        note=str(item.get("note", "")),
        explanation=str(item.get("explanation", "")),
        extra=dict(item.get("extra") or {}),
    )
    status = item.get("status")
    if budget is not None:
        row.judge()
    if row.status == "info" and status in ("PASS", "OVER", "info", "pending", "error"):
        row.status = status  # a verdict the case judged itself (peak RSS rows)
    return row


def _stats(item: Mapping[str, Any], side: str) -> Stats | None:
    value = item.get(side)
    if isinstance(value, Mapping) and "median_us" in value:
        median = float(value["median_us"]) * 1e3
        return Stats(
            median=median,
            p10=float(value.get("p10_us", value["median_us"])) * 1e3,
            p90=float(value.get("p90_us", value["median_us"])) * 1e3,
            n=int(value.get("n", 1)),
        )
    for key, scale in ((f"{side}_us", 1e3), (f"{side}_ms", 1e6), (f"{side}_ns", 1.0)):
        number = item.get(key)
        if isinstance(number, int | float):
            return Stats(float(number) * scale, float(number) * scale, float(number) * scale, 1)
    return None
