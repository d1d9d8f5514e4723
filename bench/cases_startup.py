"""Start-up costs: loading a 500-database configuration, and `import dbwire`."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from bench.bytecode import compile_dbwire
from bench.context import REPO, Context
from bench.harness import Budget, Comparison, Iterations, Row, compared, format_time, time_one
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


# Wall-clock and CPU time of the import alone, in the child that does it.
_TIMED_IMPORT = (
    "import time; w = time.perf_counter_ns(); c = time.process_time_ns(); import {module}; "
    "print(time.perf_counter_ns() - w, time.process_time_ns() - c)"
)


def _import_ns(module: str) -> tuple[float, float]:
    """(wall, CPU) nanoseconds of `import module` in a fresh interpreter."""
    compile_dbwire()  # the child reads dbwire's .pyc files, as an installed package has
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(
        [sys.executable, "-c", _TIMED_IMPORT.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=_neutral_cwd(),
    ).stdout
    wall, cpu = out.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _neutral_cwd() -> str:
    # Not the repo root: ./dbwire.toml or ./pyproject.toml there must not be read on import.
    return os.path.dirname(sys.executable)


def case_import(ctx: Context) -> list[Row]:
    iterations = Iterations(samples=2, warmup=0) if ctx.quick else Iterations(samples=15, warmup=2)
    for _ in range(iterations.warmup):
        _import_ns("dbwire")
        _import_ns("sqlalchemy")
    samples: dict[str, list[tuple[float, float]]] = {"dbwire": [], "sqlalchemy": []}
    for i in range(iterations.samples):
        pair = ("dbwire", "sqlalchemy")
        for module in pair if i % 2 == 0 else pair[::-1]:
            samples[module].append(_import_ns(module))
    # The budget is judged on CPU time: under load the wall clock of a fresh interpreter
    # mostly measures the wait for a CPU, which scales both imports and their difference.
    cpu = Comparison.of([c for _, c in samples["dbwire"]], [c for _, c in samples["sqlalchemy"]])
    wall = Comparison.of([w for w, _ in samples["dbwire"]], [w for w, _ in samples["sqlalchemy"]])
    return [
        compared(
            "import",
            "`import dbwire` in a fresh interpreter (CPU time of the import)",
            "`import sqlalchemy` in a fresh interpreter (CPU time)",
            cpu,
            budget=IMPORT_BUDGET,
            note=(
                f"dbwire adds {(cpu.a.median - cpu.b.median) / 1e6:.0f} ms of CPU "
                "(it imports sqlalchemy itself); wall clock "
                f"{format_time(wall.a.median)} against {format_time(wall.b.median)} "
                f"({(wall.a.median - wall.b.median) / 1e6:+.0f} ms, ratio {wall.ratio:.2f}x)"
            ),
            extra={
                "wall_ms": [round(wall.a.median / 1e6, 1), round(wall.b.median / 1e6, 1)],
            },
        )
    ]
