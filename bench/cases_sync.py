"""PostgreSQL over psycopg: the floor, connect(), session(), execute_query(), pre-ping, threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

import dbwire
from bench.context import SELECT_ONE, Context
from bench.harness import (
    Budget,
    Comparison,
    Iterations,
    Row,
    Stats,
    compared,
    failed,
    interleave,
)

# dbwire's server-backend pool defaults, passed explicitly to both sides so the baseline
# engine always has exactly the pool dbwire builds.
SAME_POOL: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 10,
    "pool_timeout": 30.0,
    "pool_recycle": 3600,
    "pool_pre_ping": True,
}

# The layer's own cost: SQLAlchemy with the same pool and no ping on checkout. dbwire keeps
# its default pre-ping (a ping only after pre_ping_idle or a hang-up on the socket), so what
# that costs per checkout is inside the budget too.
NO_PING_POOL: dict[str, Any] = {**SAME_POOL, "pool_pre_ping": False}

LAYER_BUDGET = Budget(1.05, "<= 1.05x SQLAlchemy, same pool, no pre-ping")
PRE_PING_BUDGET = Budget(1.05, "<= 1.05x pre-ping off")

_STATEMENT = text(SELECT_ONE)
NO_PING_NOTE = (
    "the budget row: SQLAlchemy with the same pool and pool_pre_ping=False, so the ratio is "
    "dbwire's own cost; dbwire keeps its default pre-ping, which pings only a connection idle "
    "over pre_ping_idle (1 s) or whose socket shows a hang-up"
)
IDLE_PING_NOTE = (
    "same settings as dbwire's defaults: both sides have pool_pre_ping=True; SQLAlchemy "
    "pings on every checkout, dbwire only a connection idle over pre_ping_idle (1 s) or "
    "whose socket shows a hang-up"
)


def share(ctx: Context, engine: Engine) -> None:
    """Fill the engine's pool with the run's shared connections, in a fixed order.

    The queue pool hands connections out first in, first out, so a one-thread loop rotates
    over the whole pool, and two engines filled alike stay in step: in every A/B pair both
    sides use the same server process. (One connection per side would leave each side's
    time resting on one backend's luck with the scheduler; on a loaded 2-CPU machine that
    alone moved a ratio by 30%.)
    """
    size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 1
    shared = ctx.shared_connections(size)
    turn = iter(shared)
    # A do_connect listener that returns a connection replaces the driver's connect();
    # dbwire's own do_connect hook (credentials) still runs first.
    event.listen(engine, "do_connect", lambda *_args: next(turn))
    held = [engine.connect() for _ in range(size)]
    used = [conn.connection.driver_connection for conn in held]
    assert all(a is b for a, b in zip(used, shared, strict=True)), "pool not on shared conns"
    for conn in held:
        conn.close()


def database(ctx: Context, name: str, **overrides: Any) -> dbwire.Database:
    """A dbwire Database on the run's server, its pool filled with the shared connections."""
    db = dbwire.connect(ctx.pg_url, name=name, logger=ctx.null_logger, **overrides)
    ctx.on_close(db.close)
    share(ctx, db.engine)
    return db


def _engine(ctx: Context, **options: Any) -> Engine:
    engine = create_engine(ctx.sa_url("psycopg"), **options)
    ctx.on_close(engine.dispose)
    share(ctx, engine)
    return engine


def case_floor(ctx: Context) -> list[Row]:
    floor = ctx.floor()
    return [
        Row(
            case="floor",
            operation="—",
            baseline_name="raw psycopg `SELECT 1` on an open connection (autocommit)",
            baseline=floor,
            floor=floor,
            note="the physical floor: one round trip over loopback",
        )
    ]


def no_ping_engine(ctx: Context) -> Engine:
    """SQLAlchemy on the run's shared connections with dbwire's pool and no pre-ping."""
    return _engine(ctx, **NO_PING_POOL)


def _two_baselines(
    ctx: Context,
    case: str,
    operation: str,
    baseline: str,
    dbwire_op: Callable[[], None],
    baseline_op: Callable[[Engine], Callable[[], None]],
) -> list[Row]:
    """dbwire against SQLAlchemy without pre-ping (budgeted) and with it (dbwire's defaults)."""
    fair = interleave(dbwire_op, baseline_op(no_ping_engine(ctx)), ctx.iterations)
    same = interleave(dbwire_op, baseline_op(_engine(ctx, **SAME_POOL)), ctx.iterations)
    extra = {"backend": "postgresql", "driver": "psycopg"}
    return [
        compared(
            case,
            operation,
            f"{baseline}, same pool, `pool_pre_ping=False`",
            fair,
            floor=ctx.floor(),
            budget=LAYER_BUDGET,
            note=NO_PING_NOTE,
            extra={**extra, "baseline": "no_ping"},
        ),
        compared(
            case,
            operation,
            f"{baseline}, same settings as dbwire's defaults (`pool_pre_ping=True`)",
            same,
            floor=ctx.floor(),
            note=IDLE_PING_NOTE,
            extra={**extra, "baseline": "same_settings"},
        ),
    ]


def case_connect(ctx: Context) -> list[Row]:
    db = database(ctx, "bench_connect", **SAME_POOL)

    def with_dbwire() -> None:
        with db.connect() as conn:
            conn.execute(_STATEMENT).all()

    def with_sqlalchemy(engine: Engine) -> Callable[[], None]:
        def op() -> None:
            with engine.connect() as conn:
                conn.execute(_STATEMENT).all()

        return op

    return _two_baselines(
        ctx,
        "connect",
        "PostgreSQL: `db.connect()` + `SELECT 1`",
        "`engine.connect()` + `SELECT 1`",
        with_dbwire,
        with_sqlalchemy,
    )


def case_session(ctx: Context) -> list[Row]:
    db = database(ctx, "bench_session", **SAME_POOL)

    def with_dbwire() -> None:
        with db.session() as session:
            session.execute(_STATEMENT).all()

    def with_sqlalchemy(engine: Engine) -> Callable[[], None]:
        factory = sessionmaker(engine, expire_on_commit=False, autoflush=False)

        def op() -> None:
            with factory.begin() as session:
                session.execute(_STATEMENT).all()

        return op

    rows = _two_baselines(
        ctx,
        "session",
        "PostgreSQL: `db.session()` + `SELECT 1` + commit",
        "`sessionmaker(engine).begin()` + `SELECT 1`",
        with_dbwire,
        with_sqlalchemy,
    )
    try:
        mariadb = _mariadb_session(ctx)
    except Exception as exc:  # MariaDB's failure leaves the PostgreSQL rows
        mariadb = failed(
            "session",
            "MariaDB: `db.session()` + `SELECT 1` + commit",
            exc,
            backend="mariadb",
            driver="pymysql",
        )
    return [*rows, mariadb]


def _mariadb_session(ctx: Context) -> Row:
    """The same on MariaDB (PyMySQL), against SQLAlchemy's pool without pre-ping."""
    from bench.targets import MARIADB, fill_pool

    db = MARIADB.database(ctx, "bench_session_mariadb", **SAME_POOL)
    engine = create_engine(MARIADB.sa_url(ctx, False), **NO_PING_POOL)
    ctx.on_close(engine.dispose)
    factory = sessionmaker(engine, expire_on_commit=False, autoflush=False)
    fill_pool(db.engine)
    fill_pool(engine)

    def with_dbwire() -> None:
        with db.session() as session:
            session.execute(_STATEMENT).all()

    def with_sqlalchemy() -> None:
        with factory.begin() as session:
            session.execute(_STATEMENT).all()

    return compared(
        "session",
        "MariaDB: `db.session()` + `SELECT 1` + commit",
        "`sessionmaker(engine).begin()` + `SELECT 1` on PyMySQL, same pool, `pool_pre_ping=False`",
        interleave(with_dbwire, with_sqlalchemy, ctx.iterations),
        budget=LAYER_BUDGET,
        note=NO_PING_NOTE,
        extra={"backend": "mariadb", "driver": "pymysql", "baseline": "no_ping"},
    )


def core_execute_query(engine: Engine, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    """What execute_query() does by hand with SQLAlchemy Core."""
    with engine.connect() as conn:
        result = conn.execute(text(sql))
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]
        conn.commit()
    return columns, rows


def case_pre_ping(ctx: Context) -> list[Row]:
    on = database(ctx, "bench_pre_ping_on", **SAME_POOL)
    off = database(ctx, "bench_pre_ping_off", **{**SAME_POOL, "pool_pre_ping": False})

    def checkout(db: dbwire.Database) -> Callable[[], None]:
        def op() -> None:
            with db.connect() as conn:
                conn.execute(_STATEMENT).all()

        return op

    return [
        compared(
            "pre_ping",
            "checkout + `SELECT 1`, `pool_pre_ping=True` (dbwire's default)",
            "the same with `pool_pre_ping=False`",
            interleave(checkout(on), checkout(off), ctx.iterations),
            floor=ctx.floor(),
            budget=PRE_PING_BUDGET,
            note=(
                "dbwire pings a connection idle over pre_ping_idle (1 s) or whose socket shows "
                "a hang-up; tests/reliability/test_server_recovery.py proves the recovery"
            ),
        ),
    ]


# -- 8 threads ------------------------------------------------------------------------------
THREADS = 8


class _Crew:
    """Eight parked threads that run `ops_each` calls of one function per round."""

    def __init__(self, threads: int) -> None:
        self._start = threading.Barrier(threads + 1)
        self._done = threading.Barrier(threads + 1)
        self._op: Callable[[], object] = lambda: None
        self._ops_each = 0
        self._stop = False
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._work, name=f"bench-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            self._start.wait()
            if self._stop:
                return
            try:
                for _ in range(self._ops_each):
                    self._op()
            except BaseException as exc:
                self._errors.append(exc)
            self._done.wait()

    def round(self, op: Callable[[], object], ops_each: int) -> None:
        """Run `ops_each` calls of `op` on every thread; return when all are done."""
        self._op, self._ops_each = op, ops_each
        self._start.wait()
        self._done.wait()
        if self._errors:
            raise self._errors[0]

    def close(self) -> None:
        self._stop = True
        self._start.wait()
        for thread in self._threads:
            thread.join()


def case_threads(ctx: Context) -> list[Row]:
    pool = {**SAME_POOL, "pool_size": THREADS, "max_overflow": 0}
    db = database(ctx, "bench_threads", **pool)

    def with_dbwire() -> None:
        with db.session() as session:
            session.execute(_STATEMENT).all()

    rows = []
    # Against the layer's own cost (no pre-ping), then against dbwire's settings (pinging).
    for pre_ping, label in ((False, "`pool_pre_ping=False`"), (True, "`pool_pre_ping=True`")):
        engine = _engine(ctx, **{**pool, "pool_pre_ping": pre_ping})
        factory = sessionmaker(engine, expire_on_commit=False, autoflush=False)

        def with_sqlalchemy(factory: sessionmaker[Session] = factory) -> None:
            session: Session
            with factory.begin() as session:
                session.execute(_STATEMENT).all()

        timing = _threaded(ctx, with_dbwire, with_sqlalchemy)
        rows.append(
            compared(
                "threads",
                f"`db.session()` round trip, {THREADS} threads, pool of {THREADS}",
                f"`sessionmaker(engine).begin()`, same threads and pool, {label}",
                timing,
                floor=ctx.floor(),
                note=(
                    f"wall time per operation; {1e9 / timing.a.median:,.0f} vs "
                    f"{1e9 / timing.b.median:,.0f} operations/s"
                ),
            )
        )
    return rows


def _threaded(ctx: Context, a: Callable[[], None], b: Callable[[], None]) -> Comparison:
    """a and b in rounds of THREADS threads at once, per operation."""
    ops_each = 4 if ctx.quick else 20
    rounds: Iterations = ctx.iterations.scaled(0.05, minimum=4)
    crew = _Crew(THREADS)
    try:
        timing = interleave(
            lambda: crew.round(a, ops_each), lambda: crew.round(b, ops_each), rounds
        )
    finally:
        crew.close()
    per_round = THREADS * ops_each
    return Comparison(_per_op(timing.a, per_round), _per_op(timing.b, per_round), timing.ratio)


def _per_op(stats: Stats, ops: int) -> Stats:
    return Stats(stats.median / ops, stats.p10 / ops, stats.p90 / ops, stats.n)
