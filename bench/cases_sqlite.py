"""SQLite (a file in WAL mode): the sqlite3 floor and db.session() against SQLAlchemy."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

import dbwire
from bench.cases_sync import LAYER_BUDGET
from bench.context import SELECT_ONE, Context
from bench.harness import Row, compared, interleave, time_one

_STATEMENT = text(SELECT_ONE)


def sqlite_sides(ctx: Context, path: Path, name: str) -> tuple[dbwire.Database, sessionmaker[Any]]:
    """A dbwire Database and a plain SQLAlchemy session factory on one SQLite file (WAL)."""
    url = f"sqlite:///{path}"
    db = dbwire.connect(url, name=name, logger=ctx.null_logger)
    ctx.on_close(db.close)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    ctx.on_close(engine.dispose)
    db.execute_query(SELECT_ONE)  # creates the file, WAL on
    return db, sessionmaker(engine, expire_on_commit=False, autoflush=False)


def case_sqlite(ctx: Context) -> list[Row]:
    path = ctx.tmp / "bench.sqlite"
    db, factory = sqlite_sides(ctx, path, "bench_sqlite")
    raw = sqlite3.connect(path, check_same_thread=False)
    ctx.on_close(raw.close)

    def floor_op() -> None:
        cursor = raw.cursor()
        cursor.execute(SELECT_ONE)
        cursor.fetchall()
        cursor.close()

    def session_dbwire() -> None:
        with db.session() as session:
            session.execute(_STATEMENT).all()

    def session_sqlalchemy() -> None:
        with factory.begin() as session:
            session.execute(_STATEMENT).all()

    floor = time_one(floor_op, ctx.iterations)
    sessions = interleave(session_dbwire, session_sqlalchemy, ctx.iterations)
    return [
        Row(
            case="sqlite",
            operation="—",
            baseline_name="SQLite floor: raw sqlite3 `SELECT 1` on one connection",
            baseline=floor,
            floor=floor,
            extra={"backend": "sqlite", "driver": "sqlite3", "baseline": "floor"},
        ),
        compared(
            "sqlite",
            "SQLite: `db.session()` + `SELECT 1` + commit",
            "`sessionmaker(engine).begin()`, default pool (SQLite has no pre-ping)",
            sessions,
            floor=floor,
            budget=LAYER_BUDGET,
            extra={"backend": "sqlite", "driver": "sqlite3", "baseline": "no_ping"},
        ),
    ]
