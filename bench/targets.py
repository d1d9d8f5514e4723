"""The four backends and their raw drivers' floors: `SELECT 1` on an open connection.

A floor is what the driver alone costs, with nothing of SQLAlchemy or dbwire on top: the
connections are opened once, in autocommit, and each call is one `SELECT 1` and its rows.
On the servers the floor takes turns over FLOOR_CONNECTIONS connections, as dbwire's
filled pool does (fill_pool); the embedded databases use one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

import dbwire
from bench.context import FLOOR_CONNECTIONS, SELECT_ONE, Context, mysql_params

Op = Callable[[], None]
AsyncOp = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """One backend as the bench sees it: dbwire's URL, SQLAlchemy's, the raw drivers."""

    key: str  # postgresql, mariadb, sqlite, duckdb: Row.extra["backend"]
    label: str  # PostgreSQL, MariaDB, ...: how RESULTS.md names it
    sync_driver: str
    async_driver: str | None  # None: no async driver of its own (DuckDB)
    url: Callable[[Context], str]  # dbwire's URL (starts the server on first use)
    sa_url: Callable[[Context, bool], str]  # SQLAlchemy's URL, sync or async driver
    sync_floor: Callable[[Context], Op]
    async_floor: Callable[[Context], Awaitable[tuple[AsyncOp, Callable[[], Awaitable[None]]]]]
    is_server: bool = True

    def database(self, ctx: Context, name: str, **overrides: Any) -> dbwire.Database:
        """A dbwire Database on this backend, closed with the run."""
        db = dbwire.connect(self.url(ctx), name=name, logger=ctx.null_logger, **overrides)
        ctx.on_close(db.close)
        return db

    def extra(self, *, is_async: bool) -> dict[str, str]:
        driver = self.async_driver if is_async else self.sync_driver
        return {"backend": self.key, "driver": driver or f"{self.sync_driver} in a thread"}


def fill_pool(engine: Engine) -> None:
    """Open the whole pool, so a one-thread loop rotates over every connection (FIFO).

    The floors rotate over FLOOR_CONNECTIONS connections too: on a loaded machine one
    server process's (or thread's) luck with the scheduler otherwise decides a ratio; one
    connection per side moved the MariaDB ratio between 0.9x and 8x from run to run.
    """
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    held = [engine.connect() for _ in range(size)]
    for conn in held:
        conn.close()


async def fill_async_pool(engine: AsyncEngine) -> None:
    """fill_pool() for an async engine."""
    pool = engine.sync_engine.pool
    size = pool.size() if isinstance(pool, QueuePool) else 1
    held = [await engine.connect().start() for _ in range(size)]
    for conn in held:
        await conn.close()


# -- PostgreSQL -------------------------------------------------------------------------
async def _asyncpg_floor(ctx: Context) -> tuple[AsyncOp, Callable[[], Awaitable[None]]]:
    import asyncpg

    conns = [await asyncpg.connect(ctx.pg_url) for _ in range(FLOOR_CONNECTIONS)]
    turn = itertools.cycle(conns)

    async def op() -> None:
        await next(turn).fetch(SELECT_ONE)

    async def close() -> None:
        for conn in conns:
            await conn.close()

    return op, close


# -- MariaDB ----------------------------------------------------------------------------
def _pymysql_floor(ctx: Context) -> Op:
    import pymysql

    conns = [
        pymysql.connect(**mysql_params(ctx.mysql_url), autocommit=True)
        for _ in range(FLOOR_CONNECTIONS)
    ]
    for conn in conns:
        ctx.on_close(conn.close)
    turn = itertools.cycle(conns)

    def op() -> None:
        with next(turn).cursor() as cur:
            cur.execute(SELECT_ONE)
            cur.fetchall()

    return op


async def _aiomysql_floor(ctx: Context) -> tuple[AsyncOp, Callable[[], Awaitable[None]]]:
    import aiomysql

    params = mysql_params(ctx.mysql_url)
    params["db"] = params.pop("database")
    conns = [await aiomysql.connect(**params, autocommit=True) for _ in range(FLOOR_CONNECTIONS)]
    turn = itertools.cycle(conns)

    async def op() -> None:
        async with next(turn).cursor() as cur:
            await cur.execute(SELECT_ONE)
            await cur.fetchall()

    async def close() -> None:
        for conn in conns:
            conn.close()

    return op, close


# -- SQLite -----------------------------------------------------------------------------
def sqlite_path(ctx: Context) -> str:
    return str(ctx.tmp / "bench.sqlite")


def _sqlite3_floor(ctx: Context) -> Op:
    import sqlite3

    conn = sqlite3.connect(sqlite_path(ctx), check_same_thread=False, isolation_level=None)
    ctx.on_close(conn.close)

    def op() -> None:
        cursor = conn.cursor()
        cursor.execute(SELECT_ONE)
        cursor.fetchall()
        cursor.close()

    return op


async def _aiosqlite_floor(ctx: Context) -> tuple[AsyncOp, Callable[[], Awaitable[None]]]:
    import aiosqlite

    conn = await aiosqlite.connect(sqlite_path(ctx), isolation_level=None)

    async def op() -> None:
        async with conn.execute(SELECT_ONE) as cursor:
            await cursor.fetchall()

    return op, conn.close


# -- DuckDB -----------------------------------------------------------------------------
def _duckdb_floor(ctx: Context) -> Op:
    import duckdb

    # Its own file: DuckDB refuses a second connection to one file with other settings,
    # and `SELECT 1` reads no table, so the file makes no difference to the floor.
    conn = duckdb.connect(str(ctx.tmp / "floor.duckdb"))
    ctx.on_close(conn.close)

    def op() -> None:
        conn.execute(SELECT_ONE).fetchall()

    return op


async def _duckdb_thread_floor(ctx: Context) -> tuple[AsyncOp, Callable[[], Awaitable[None]]]:
    sync_op = _duckdb_floor(ctx)

    async def op() -> None:
        await asyncio.to_thread(sync_op)

    async def close() -> None:
        return None

    return op, close


POSTGRESQL = Target(
    key="postgresql",
    label="PostgreSQL",
    sync_driver="psycopg",
    async_driver="asyncpg",
    url=lambda ctx: ctx.pg_url,
    sa_url=lambda ctx, is_async: ctx.sa_url("asyncpg" if is_async else "psycopg"),
    sync_floor=lambda ctx: ctx.floor_op(),
    async_floor=_asyncpg_floor,
)
MARIADB = Target(
    key="mariadb",
    label="MariaDB",
    sync_driver="pymysql",
    async_driver="aiomysql",
    url=lambda ctx: ctx.mysql_url,
    sa_url=lambda ctx, is_async: ctx.mysql_url.replace(
        "mysql://", "mysql+aiomysql://" if is_async else "mysql+pymysql://", 1
    ),
    sync_floor=_pymysql_floor,
    async_floor=_aiomysql_floor,
)
SQLITE = Target(
    key="sqlite",
    label="SQLite",
    sync_driver="sqlite3",
    async_driver="aiosqlite",
    url=lambda ctx: f"sqlite:///{sqlite_path(ctx)}",
    sa_url=lambda ctx, is_async: (
        f"sqlite+{'aiosqlite' if is_async else 'pysqlite'}:///" + sqlite_path(ctx)
    ),
    sync_floor=_sqlite3_floor,
    async_floor=_aiosqlite_floor,
    is_server=False,
)
DUCKDB = Target(
    key="duckdb",
    label="DuckDB",
    sync_driver="duckdb",
    async_driver=None,
    url=lambda ctx: f"duckdb:///{ctx.tmp / 'bench.duckdb'}",
    sa_url=lambda ctx, is_async: f"duckdb:///{ctx.tmp / 'bench.duckdb'}",
    sync_floor=_duckdb_floor,
    async_floor=_duckdb_thread_floor,
    is_server=False,
)

TARGETS = (POSTGRESQL, MARIADB, SQLITE, DUCKDB)
