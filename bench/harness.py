"""The timing harness: interleaved A/B samples, medians, spreads, ratios and budgets."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Op = Callable[[], object]
AsyncOp = Callable[[], Awaitable[object]]
Status = Literal["PASS", "OVER", "info", "pending", "error"]


@dataclass(frozen=True)
class Iterations:
    """How many timed samples (per side) and untimed warm-up calls a case makes."""

    samples: int
    warmup: int

    def scaled(self, factor: float, minimum: int = 3) -> Iterations:
        return Iterations(
            max(minimum, int(self.samples * factor)), max(1, int(self.warmup * factor))
        )


FULL = Iterations(samples=2000, warmup=200)
QUICK = Iterations(samples=12, warmup=3)


@dataclass(frozen=True)
class Stats:
    """Per-operation timings in nanoseconds: the median and the p10-p90 spread."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        return cls(
            median=statistics.median(ordered),
            p10=_quantile(ordered, 0.10),
            p90=_quantile(ordered, 0.90),
            n=len(ordered),
        )

    def as_json(self) -> dict[str, float]:
        return {
            "median_us": self.median / 1e3,
            "p10_us": self.p10 / 1e3,
            "p90_us": self.p90 / 1e3,
            "n": self.n,
        }


def _quantile(ordered: list[float], q: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Comparison:
    """A and B timed side by side; `ratio` is the median of the per-pair ratios A_i / B_i.

    Each A sample is divided by the B sample taken right next to it, so a burst of load
    from other processes that slows both cancels out instead of moving one median.
    """

    a: Stats
    b: Stats
    ratio: float
    # Python function calls per operation of A and B (cProfile): unlike a time, a count
    # does not move with the machine's load, so it shows where A's extra cost is.
    calls: tuple[float, float] | None = None

    @classmethod
    def of(
        cls,
        a_samples: list[float],
        b_samples: list[float],
        calls: tuple[float, float] | None = None,
    ) -> Comparison:
        pairs = [x / y for x, y in zip(a_samples, b_samples, strict=True) if y > 0]
        ratio = statistics.median(pairs) if pairs else float("nan")
        return cls(Stats.of(a_samples), Stats.of(b_samples), ratio, calls)


CALL_COUNT_RUNS = 40


def _profiling_elsewhere() -> bool:
    # cProfile cannot nest: under `python -m bench --profile` the counts are left out.
    return sys.getprofile() is not None


def calls_per_op(op: Op, runs: int = CALL_COUNT_RUNS) -> float | None:
    """Python calls per run of `op`, counted by cProfile over `runs` runs."""
    if _profiling_elsewhere():
        return None
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for _ in range(runs):
            op()
    finally:
        profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / runs  # type: ignore[attr-defined]


async def calls_per_op_async(op: AsyncOp, runs: int = CALL_COUNT_RUNS) -> float | None:
    """calls_per_op() for a coroutine function; the event loop's own calls count too."""
    if _profiling_elsewhere():
        return None
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        for _ in range(runs):
            await op()
    finally:
        profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / runs  # type: ignore[attr-defined]


def _pair(a: float | None, b: float | None) -> tuple[float, float] | None:
    return None if a is None or b is None else (a, b)


def time_one(op: Op, iterations: Iterations) -> Stats:
    """Median time of one operation after a warm-up."""
    for _ in range(iterations.warmup):
        op()
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(iterations.samples):
        start = clock()
        op()
        samples.append(clock() - start)
    return Stats.of(samples)


def interleave(a: Op, b: Op, iterations: Iterations) -> Comparison:
    """Time `a` and `b` in one process, alternating A B B A ... so drift hits both alike."""
    for _ in range(iterations.warmup):
        a()
        b()
    clock = time.perf_counter_ns
    a_samples: list[float] = []
    b_samples: list[float] = []
    order = ((a, a_samples), (b, b_samples))
    for i in range(iterations.samples):
        for op, samples in order if i % 2 == 0 else order[::-1]:
            start = clock()
            op()
            samples.append(clock() - start)
    runs = min(CALL_COUNT_RUNS, iterations.samples)
    calls = _pair(calls_per_op(a, runs), calls_per_op(b, runs))
    return Comparison.of(a_samples, b_samples, calls)


async def interleave_async(a: AsyncOp, b: AsyncOp, iterations: Iterations) -> Comparison:
    """The async twin of interleave(): both sides run on the same event loop."""
    for _ in range(iterations.warmup):
        await a()
        await b()
    clock = time.perf_counter_ns
    a_samples: list[float] = []
    b_samples: list[float] = []
    order = ((a, a_samples), (b, b_samples))
    for i in range(iterations.samples):
        for op, samples in order if i % 2 == 0 else order[::-1]:
            start = clock()
            await op()
            samples.append(clock() - start)
    runs = min(CALL_COUNT_RUNS, iterations.samples)
    calls = _pair(await calls_per_op_async(a, runs), await calls_per_op_async(b, runs))
    return Comparison.of(a_samples, b_samples, calls)


async def time_one_async(op: AsyncOp, iterations: Iterations) -> Stats:
    for _ in range(iterations.warmup):
        await op()
    clock = time.perf_counter_ns
    samples: list[float] = []
    for _ in range(iterations.samples):
        start = clock()
        await op()
        samples.append(clock() - start)
    return Stats.of(samples)


# -- rows and budgets -------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """A limit on one number of a row; `text` is how RESULTS.md states it."""

    limit: float
    text: str
    # ratio: dbwire / baseline; floor: dbwire / floor; delta_ms: dbwire - baseline (ms);
    # reference: dbwire / Row.reference (for example the slowest single health check).
    metric: Literal["ratio", "floor", "delta_ms", "reference"] = "ratio"


@dataclass
class Row:
    """One line of the results table."""

    case: str
    operation: str
    baseline_name: str = ""
    dbwire: Stats | None = None
    baseline: Stats | None = None
    floor: Stats | None = None
    paired_ratio: float | None = None  # Comparison.ratio, when both sides were interleaved
    paired_floor_ratio: float | None = None  # the same against the floor, when interleaved
    reference: float | None = None  # ns; what a "reference" budget divides by
    budget: Budget | None = None
    status: Status = "info"
    note: str = ""
    explanation: str = ""  # why an OVER row is over, when the case itself knows
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.dbwire is None or self.baseline is None or self.baseline.median == 0:
            return None
        return self.dbwire.median / self.baseline.median

    @property
    def floor_ratio(self) -> float | None:
        if self.paired_floor_ratio is not None:
            return self.paired_floor_ratio
        subject = self.dbwire or self.baseline
        if subject is None or self.floor is None or self.floor.median == 0:
            return None
        return subject.median / self.floor.median

    def budget_value(self) -> float | None:
        if self.budget is None or self.dbwire is None:
            return None
        metric = self.budget.metric
        if metric == "ratio":
            return self.ratio
        if metric == "floor":
            return self.floor_ratio
        if metric == "delta_ms":
            if self.baseline is None:
                return None
            return (self.dbwire.median - self.baseline.median) / 1e6
        if self.reference is None or self.reference == 0:
            return None
        return self.dbwire.median / self.reference

    def judge(self) -> Row:
        """Set PASS or OVER from the budget; rows without one stay "info"."""
        value = self.budget_value()
        if value is not None and self.budget is not None:
            self.status = "PASS" if value <= self.budget.limit else "OVER"
        return self

    def as_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "operation": self.operation,
            "baseline_name": self.baseline_name,
            "dbwire": self.dbwire.as_json() if self.dbwire else None,
            "baseline": self.baseline.as_json() if self.baseline else None,
            "floor": self.floor.as_json() if self.floor else None,
            "reference_us": None if self.reference is None else self.reference / 1e3,
            "ratio": self.ratio,
            "floor_ratio": self.floor_ratio,
            "floor_ratio_paired": self.paired_floor_ratio is not None,
            "budget": None if self.budget is None else asdict(self.budget),
            "budget_value": self.budget_value(),
            "status": self.status,
            "note": self.note,
            **({"explanation": self.explanation} if self.explanation else {}),
            **({"extra": self.extra} if self.extra else {}),
        }


def row_from_json(data: dict[str, Any]) -> Row:
    """The inverse of Row.as_json(), to render RESULTS.md again from results.json."""

    def stats(value: dict[str, float] | None) -> Stats | None:
        if not value:
            return None
        return Stats(
            value["median_us"] * 1e3, value["p10_us"] * 1e3, value["p90_us"] * 1e3, int(value["n"])
        )

    budget = data.get("budget")
    reference = data.get("reference_us")
    return Row(
        case=data["case"],
        operation=data["operation"],
        baseline_name=data.get("baseline_name", ""),
        dbwire=stats(data.get("dbwire")),
        baseline=stats(data.get("baseline")),
        floor=stats(data.get("floor")),
        paired_ratio=data.get("ratio"),
        paired_floor_ratio=data.get("floor_ratio") if data.get("floor_ratio_paired") else None,
        reference=None if reference is None else reference * 1e3,
        budget=None if budget is None else Budget(**budget),
        status=data["status"],
        note=data.get("note", ""),
        explanation=data.get("explanation", ""),
        extra=data.get("extra", {}),
    )


def compared(
    case: str, operation: str, baseline_name: str, timing: Comparison, **fields: Any
) -> Row:
    """A row for dbwire (A) against its baseline (B), judged against its budget if any."""
    if timing.calls is not None:
        fields["extra"] = {
            **fields.get("extra", {}),
            "calls_per_op": [round(timing.calls[0], 1), round(timing.calls[1], 1)],
        }
    row = Row(
        case=case,
        operation=operation,
        baseline_name=baseline_name,
        dbwire=timing.a,
        baseline=timing.b,
        paired_ratio=timing.ratio,
        **fields,
    )
    return row.judge()


def failed(case: str, operation: str, exc: BaseException, **extra: Any) -> Row:
    """An "error" row for one part of a case, so the case's other rows are still made."""
    traceback.print_exception(exc)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return Row(
        case=case,
        operation=operation,
        status="error",
        note=f"{type(exc).__name__}: {first}",
        extra=dict(extra),
    )


def pending(case: str, operation: str, reason: str, budget: Budget | None = None) -> Row:
    return Row(case=case, operation=operation, budget=budget, status="pending", note=reason)


def format_time(ns: float | None) -> str:
    """14.2 us, 3.10 ms, 1.20 s: three significant digits."""
    if ns is None:
        return "—"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return _three_digits(ns / scale) + " " + unit
    return f"{ns:.0f} ns"


def _three_digits(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"
