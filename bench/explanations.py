"""Why a row is (or was) OVER, and what was done: written after profiling, shown in RESULTS.md.

A case that knows its own cause can instead set Row.explanation (bench/collect.py does).
"""

from __future__ import annotations

_LAYER = """\
**What dbwire adds per checkout and statement, and where it runs.** Counted with
`python -m bench.calls connect session` (calls do not move with load): `db.connect()` +
`SELECT 1` makes about 290 Python calls where `engine.connect()` makes 260, `db.session()`
about 412 where `sessionmaker(engine).begin()` makes 389, MariaDB's `session()` 557 against
532. The difference is, per operation: the idle-window pre-ping (a clock read and one
`poll()` on a poll object built when the connection opened, which is how a restarted server
is noticed without a round trip), the holder record (a frame walk to the caller, two clock
reads, one dict store), the statement timing that `get_stats()` keeps (two `perf_counter()`
and a list append; the histogram folds values in batches), and the read-only and
closed-means-closed checks at checkin. All of it runs inside dbwire's pool
(`dbwire.pool.HookedPool._do_get` / `_do_return_conn`, told to `PoolHooks`): no pool event
listener is installed, so SQLAlchemy's checkout keeps its no-listener fast path.

On a server round trip that was within the budget (1.03-1.05x) on a machine whose round
trip was long against its Python (raw psycopg `SELECT 1` 105 us, raw sqlite3 0.95 us); on
one where Python ran twice as slowly and the round trip took 69 us, the same ~3 us of work
per checkout read 1.07-1.10x. On SQLite, where the whole
`session()` is 75 us of client CPU and no waiting, the same ~20 calls (about 5 us) show as
1.07x. What cannot go: restart detection, who-holds-the-pool and always-on statistics are
promises of the README.

History: this row was OVER at 1.17x while the same work ran as pool events (a checkout
listener for the ping, four checkin listeners, a wrapper around `pool.connect` for the
holder): each listener costs SQLAlchemy's dispatch plus a call, and any checkout listener
switches every checkout to the slow path; before that, at 1.19x, while Connection-level
listeners (`begin`, `before/after_cursor_execute`) were installed: one such listener sets
`engine._has_events` and every Connection runs about 7 event hooks per checkout and
statement. If calls per operation jump again, look for a new listener first."""

_EXECUTE_QUERY = """\
**One round trip on every backend; what is left over the raw driver is the pool entry
taken and returned, which on SQLite is many times the floor itself.** Counted with
`python -m bench.calls execute_query.postgresql execute_query.mariadb execute_query.sqlite
execute_query.duckdb` (Python calls per operation, dbwire against the raw driver; client CPU,
thread time): PostgreSQL 149 against 60 (59 us against 28 us), MariaDB 244 against 167
(49 us against 28 us), SQLite 78 against 5 (9 us against 1.1 us), DuckDB 89 against 7.

The path: the statement compiled once per SQL text (an LRU cache), a pool entry taken
directly (`fast_path.take_entry`: the pool's own `_do_get` and `get_connection`, with no
`_ConnectionFairy`, finalizer or reset-on-return, since nothing is begun in autocommit),
the statement on the driver's cursor in autocommit (left on for psycopg, asyncpg and MySQL
until a Core checkout needs it off), dict rows, and the entry returned. Of SQLite's 78
calls, 30 are SQLAlchemy's queue (`Condition`-guarded get and put), 15 dbwire's checkout
work (holder, stats), and 20 dbwire's own path (open check, plan, timing, shaping rows).

Why SQLite cannot reach 1.5x: its `SELECT 1` is one C call (1.5 us); a pooled connection
per call, which is what makes execute_query safe from any thread and able to replace a
broken connection, costs a lock-guarded queue get and put alone (about 3 us). A caller that
needs the C-call floor can keep `db.engine.raw_connection()` open itself."""

_ASYNC_QUERY = """\
**One awaited driver call per statement, on the event loop; what is left is the pool
entry and dbwire's own bookkeeping.** `fast_path.async_direct` takes an idle pool entry
without a greenlet (the greenlet only where the pool must connect, wait or ping), awaits
the backend's `direct_fetcher` (asyncpg `fetch`; an aiomysql cursor; one hop to aiosqlite's
thread for execute, fetch and commit, against the raw floor's three; one DuckDB worker
thread) and checks the entry back in. Counted with `python -m bench.calls
async_execute_query.postgresql async_execute_query.mariadb async_execute_query.sqlite
async_execute_query.duckdb`: 157 Python calls against raw asyncpg's 80 (202 when the
statement ran in `greenlet_spawn` through SQLAlchemy's adapter), 332 against aiomysql's
251 (386), 128 against aiosqlite's 185 (382), 212 against DuckDB-in-a-thread's 132 (413).
The extra calls are the pool's queue get and put (SQLAlchemy's queue over asyncio's, about
15 calls) with dbwire's checkout and checkin hooks (the holder record, the idle ping's
socket poll, about 15), the compiled-statement cache and read-only plan, the timing and the
counters. PostgreSQL is the tightest: asyncpg's `SELECT 1` is so cheap that these ~40 us
of client CPU put it at 1.4-1.6x, depending on the machine's load.

What could still go: little without giving up the pool (a broken connection replaced, the
holder record, pool_timeout) or the counters; see **execute_query**."""

EXPLANATIONS: dict[str, str] = {
    "connect": _LAYER,
    "session": "The same per-checkout work as **connect** (the numbers are there).\n\n" + _LAYER,
    "async": "The same per-checkout work as **connect**, on the async pool.\n\n" + _LAYER,
    "threads": "Same history as **connect**: Connection-level listeners.",
    "sqlite": "The per-checkout work of **connect**, with nothing to hide it: a SQLite "
    "`session()` is about 75-120 us of client CPU and no waiting, so the same ~13 calls "
    "(304 against 291: the pool's checkout and checkin hooks with the holder record, the "
    "statement timing) show as 1.05-1.08x, where on PostgreSQL they are 1.03x. Most of it "
    "is the holder record (who holds each connection, from which line): 582dab9's own "
    "`sqlite` case, run against today's `src/` with the pool tracker left out, read "
    "1.005-1.027x, against 1.043-1.049x with it and 1.030-1.033x for 582dab9, which had "
    "no tracker (three alternated rounds each, 2026-12-03). The caller's frame is found "
    "from a remembered stack shape (two frame objects, not a walk), its line is worked "
    "out only when read, and a checkout that finds an idle connection skips the waiter "
    "count; what is left is CPython materialising those two frames, the holder record "
    "and the wait and use samples. In one process on 2026-12-04 (timeit, 3 x 3000): "
    "74.8 us with the tracker, 73.0 us without, 71.3 us for SQLAlchemy's own session; "
    "a leaner tracker (its first shape probed inline, histograms held directly) saved "
    "0.3-0.5 us of the 1.9.\n\n" + _LAYER,
    "async_execute_query": _ASYNC_QUERY,
    "observe": """\
**The query log's cost per statement: a `LogRecord` and the masking of the statement
text.** Counted with `python -m bench.calls observe`: about 460 Python calls per
`db.session()` + `SELECT 1` with observability on against 391 off. The extra calls are the
logging module's (`Logger.makeRecord`, `findCaller`'s stack walk, the handlers) and the
masking (`errors.scrub`: the known passwords' forms are cached per password, and each of the
four secret patterns runs only when the statement has a character it needs, e.g. `=`).
Timing itself is the same list append as with observability off.

History: 1.17x while each statement was masked twice and all four patterns ran on every
statement. What cannot go: a query log makes one record per statement; the budget includes
that on purpose.""",
    "execute_query": _EXECUTE_QUERY,
    "pre_ping": """\
**Was OVER (1.21-1.26x)**: SQLAlchemy's `pool_pre_ping` runs `SELECT 1` on every checkout.

Fix, in dbwire now (`dbwire.pool.install_idle_ping`, `pre_ping_idle`, default 1 s): ping only
a connection idle longer than that, or whose socket is closed or readable (a restarted server
or a terminated backend has sent its FIN); a failed ping replaces the connection and
every pooled one older than it, as `pool_pre_ping` does. What the window gives up is a
connection black-holed without a FIN within 1 s of its last use (HikariCP's
`aliveBypassWindowMs` makes the same trade); `pre_ping_idle = 0` restores ping-every-checkout.
`tests/reliability/test_server_recovery.py` proves restarts and `pg_terminate_backend` still
cost no failed checkout.

What is left per checkout is one `poll()` on the socket (a poll object built when the
connection opened) and a clock read, the price of noticing a restarted server without a
round trip: about a microsecond.""",
    "health": """\
**The budget is wrong for a server on loopback; the "remote server" row shows it holds where
it means something.** Over loopback a check is almost all CPU and almost no waiting: a pool
checkout, a round trip that wakes a server backend, and a thread (`health.Probe`) to bound
it, about 0.5 ms of CPU on this machine. Twenty checks need twenty times that CPU from 2
CPUs shared with the twenty server backends, and their Python parts run one at a time under
the GIL, so no client can answer in 1.5x one check: raw libpq with 20 pings in flight from one
thread (the *x floor* reference) already takes several times one ping.

The budget is about waiting, and concurrency is what removes waiting: on the
"remote server" row each check waits 50 ms for its answer (`health_query =
"SELECT pg_sleep(0.05)"`, standing in for network latency or a slow server), and twenty
concurrent checks answer in about the time of the slowest single one. A hung server is the
extreme case, bounded by `health_timeout` (tests/reliability/test_manager_faults.py: ten
databases, one blackholed, answer in about one timeout).""",
}
