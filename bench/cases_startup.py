"""Start-up costs: loading a 500-database configuration, and `import dbwire`."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from bench.context import REPO, Context
from bench.harness import Budget, Comparison, Iterations, Row, compared, time_one
from dbwire import load_config

CONFIG_DATABASES = 500
IMPORT_BUDGET = Budget(50.0, "<= 50 ms over `import sqlalchemy`", metric="delta_ms")


def _config_toml(count: int) -> str:
    blocks = []
    for i in range(count):
        blocks.append(
            f"[databases.db_{i:03d}]\n"
            f'url = "postgresql://app@db-{i % 7}.internal:5432/app_{i}"\n'
            f"pool_size = {5 + i % 4}\n"
            "pool_pre_ping = true\n"
            f'replicas = ["postgresql://app@replica-{i % 3}.internal/app_{i}"]\n'
        )
    return "\n".join(blocks)


def case_config(ctx: Context) -> list[Row]:
    path = ctx.tmp / "dbwire.toml"
    document = _config_toml(CONFIG_DATABASES)
    path.write_text(document, encoding="utf-8")
    environ: dict[str, str] = {}
    config = load_config(path, environ)
    assert len(config.databases) == CONFIG_DATABASES, len(config.databases)
    iterations = ctx.iterations.scaled(0.01, minimum=3)
    loaded = time_one(lambda: load_config(path, environ), iterations)
    parsed = time_one(lambda: tomllib.loads(path.read_text(encoding="utf-8")), iterations)
    return [
        Row(
            case="config",
            operation=f"`load_config()` of a {CONFIG_DATABASES}-database dbwire.toml",
            baseline_name="`tomllib` parse of the same file",
            dbwire=loaded,
            baseline=parsed,
            note=f"{loaded.median / CONFIG_DATABASES / 1e3:.1f} us per database",
        )
    ]


_TIMED_IMPORT = (
    "import time; t = time.perf_counter_ns(); import {module}; print(time.perf_counter_ns() - t)"
)


def _import_ns(module: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=_neutral_cwd(),
    ).stdout
    return float(out.strip().splitlines()[-1])


def _neutral_cwd() -> str:
    # Not the repo root: ./dbwire.toml or ./pyproject.toml there must not be read on import.
    return os.path.dirname(sys.executable)


def case_import(ctx: Context) -> list[Row]:
    iterations = Iterations(samples=2, warmup=0) if ctx.quick else Iterations(samples=25, warmup=2)
    for _ in range(iterations.warmup):
        _import_ns("dbwire")
        _import_ns("sqlalchemy")
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(iterations.samples):
        pair = (("dbwire", mine), ("sqlalchemy", theirs))
        for module, samples in pair if i % 2 == 0 else pair[::-1]:
            samples.append(_import_ns(module))
    timing = Comparison.of(mine, theirs)
    return [
        compared(
            "import",
            "`import dbwire` in a fresh interpreter",
            "`import sqlalchemy` in a fresh interpreter",
            timing,
            budget=IMPORT_BUDGET,
            note=(
                f"dbwire adds {(timing.a.median - timing.b.median) / 1e6:.0f} ms "
                "(it imports sqlalchemy itself)"
            ),
        )
    ]
