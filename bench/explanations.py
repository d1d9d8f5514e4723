"""Why a row is (or was) OVER, and what was done: written after profiling, shown in RESULTS.md.

A case that knows its own cause can instead set Row.explanation (bench/collect.py does).
"""

# ruff: noqa: E501 - the Markdown tables below cannot wrap
from __future__ import annotations

_LAYER = """\
**Against SQLAlchemy without pre-ping, what is left is dbwire's per-checkout and
per-statement work; on this loaded 2-CPU machine it shows as 1.02-1.15x from run to run.**
Full runs on this branch at load averages of 10-30 gave, for `connect()`: 1.15x, 1.06x,
1.02x, 1.07x; PostgreSQL `session()`: 1.08x, 1.08x, 1.03x; MariaDB `session()`: 1.08x,
1.06x, 1.09x; `async_session()` 0.99-1.13x on PostgreSQL and 0.95-1.00x on MariaDB.
Counted with `python -m bench.calls connect session` (calls do not move with load):
`db.connect()` + `SELECT 1` makes about 290 Python calls where `engine.connect()` makes 260,
and `db.session()` about 410 where `sessionmaker(engine).begin()` makes 389 (402 before the
latest core changes). The difference
is, per operation: the idle-ping check on checkout (`pool._maybe_ping` ->
`connection_looks_dead` -> one `select()` on the socket, which is how a restarted server is
noticed without a round trip), the idle stamp on checkin (`pool._stamp`, a clock read), and
the statement timing that `get_stats()` always keeps (`QueryObserver.record`: two
`perf_counter()` and a short lock), plus the pool and close hooks (`_checkin`,
`_close_after_close`). Client CPU per operation (thread time, same command) is about 5-10%
higher on `connect()` and 3-4% on `session()`; the server's share of the wall time is the
same on both sides, so on a quiet machine the wall-time ratio sits below the CPU ratio.
Under a load average of 10-30 each round trip also waits for a CPU, and a sample that does
more client work loses its CPU more often, which pushes the ratio towards the CPU ratio.
MariaDB's `session()` adds 24 calls (556 against 532), the same hooks.

What could still go: the `select()` could be skipped for a connection checked in less than
a few milliseconds ago (a server restart within that window is caught by the error path and
`InvalidatePoolError`), and the statement counter could be a lock-free per-thread counter.
What cannot: restart detection and always-on statistics are promises of the README.

History: this row was OVER at 1.19x (against the *pinging* baseline) while Connection-level
listeners (`begin`, `before/after_cursor_execute`) were installed: one such listener sets
`engine._has_events` and every Connection then runs about 7 event hooks per checkout and
statement. Statements are timed in `do_execute*` DialectEvents now (`QueryObserver.install`)
and the read-only `begin` listener lives only on the read-only engine; if calls per
operation jump by ~100 again, look there first."""

_EXECUTE_QUERY = """\
**One round trip on every backend now; what is left over the raw driver is the pool
checkout and checkin, which on the embedded databases is many times the floor itself.**
Counted with `python -m bench.calls execute_query.postgresql execute_query.mariadb
execute_query.sqlite execute_query.duckdb` (Python calls per operation against the floor;
client CPU per operation, thread time, on the loaded machine), and for the pool alone
`engine.raw_connection().close()` on the same engine:

| backend | calls/op | client CPU | pool checkout + checkin alone | where the rest goes |
|---|--:|--:|--:|---|
| PostgreSQL (psycopg) | 181 vs 60 | 125 us vs 42 us | 76 calls, 27 us | `autocommit` switched on and back (local in psycopg, but each a generator run through `psycopg.waiting.wait`), the idle-ping `select()`, plan cache, dict rows, the statement counter |
| MariaDB (PyMySQL) | 261 vs 167 | 88 us vs 34 us | 114 calls, 32 us | the pool (with the idle-ping `select()`), plan, dict rows, counter |
| SQLite (sqlite3) | 82 vs 5 | 17 us vs 1.2 us | 57 calls, 10 us | the floor is one C call; the pool alone is 8x it |
| DuckDB (duckdb) | 93 vs 7 | 215 us vs 126 us | 64 calls, 174 us | the pool's reset on checkin: a DuckDB `rollback()` costs about as much as the `SELECT 1` |

Why it cannot all go: a pooled connection per call is what makes execute_query safe from
any thread and able to recover from a dropped connection; SQLAlchemy's QueuePool checkout
and checkin (a `Condition`-guarded queue, the fairy, the reset) cost 10-30 us of Python on
this machine, which alone exceeds 0.5x of the SQLite floor (2 us) and is most of the 0.5x
of the PostgreSQL and MariaDB floors (40-80 us). What could still go: the reset on checkin
after a statement that ran in autocommit has nothing to roll back (a pool `reset` listener
can skip it: on DuckDB that is about half of the remaining cost), and on PostgreSQL the two
`autocommit` switches could be one by leaving pooled connections in autocommit between
Core checkouts, as the MariaDB backend already does."""

_ASYNC_QUERY = """\
**The async path pays the sync path's pool costs plus SQLAlchemy's greenlet bridge.**
Counted with `python -m bench.calls async_execute_query.postgresql
async_execute_query.mariadb async_execute_query.sqlite`: 227 Python calls against raw
asyncpg's 80 (client CPU 170 us vs 40 us), 416 against aiomysql's 251 (230 us vs 76 us),
385 against aiosqlite's 185 (261 us vs 69 us). The statement already runs in one greenlet
(`fast_path.async_execute`, one `greenlet_spawn`), but each await inside SQLAlchemy's
adapters (the checkout, the statement, the checkin) is a greenlet switch back to the event
loop (3 switches on asyncpg, 7-9 on aiomysql and aiosqlite) plus the pool checkout and
checkin of the sync path. Taking the driver connection out of the pool once and awaiting the
driver directly would leave about one pool checkout over the floor; what cannot go is that
checkout (see **execute_query**). DuckDB has no async driver (SQLAlchemy runs it in a
thread), so its row has no budget."""

EXPLANATIONS: dict[str, str] = {
    "connect": _LAYER,
    "session": "The same per-checkout work as **connect** (the numbers are there).\n\n" + _LAYER,
    "async": "The same per-checkout work as **connect**, on the async pool.\n\n" + _LAYER,
    "threads": "Same history as **connect**: Connection-level listeners.",
    "async_execute_query": _ASYNC_QUERY,
    "observe": """\
**The query log's cost per statement: a `LogRecord` and the secret masking of the statement
text, both redone for every statement.** Counted with `python -m bench.calls observe`: 543
Python calls per `db.session()` + `SELECT 1` with observability on against 401 off (client
CPU about 33% higher). The extra 140 calls are `Logger.makeRecord` and `findCaller`'s stack
walk (`_is_internal_frame`), and the masking of the logged statement
(`errors.mask_secret_patterns` -> `_forms`): for each statement the password's quoted forms
are built again (`urllib.parse.quote` and `quote_plus` 6 times, `str.encode` 12 times,
`re.sub` 8 times). Timing itself is a dialect-level listener and one short lock, as with
observability off.

What could go: the secret's quoted forms depend only on the secret, so they can be built
once per Database (or per credential rotation) instead of once per statement, which removes
about half of the extra calls; `stacklevel`/`findCaller` can be skipped by logging with
`stack_info=False` through `Logger.handle` of a prebuilt record. What cannot: a query log
makes one record per statement; the budget includes that on purpose.""",
    "execute_query": _EXECUTE_QUERY,
    "pre_ping": """\
**Was OVER (1.21-1.26x)**: SQLAlchemy's `pool_pre_ping` runs `SELECT 1` on every checkout.

Fix, in dbwire now (`dbwire.pool.install_idle_ping`, `pre_ping_idle`, default 1 s): ping only
a connection idle longer than that, or whose socket is closed or readable (a restarted server
or a terminated backend has sent its FIN); a failed ping raises `InvalidatePoolError`, so the
pool drops every older connection, as `pool_pre_ping` does. What the window gives up is a
connection black-holed without a FIN within 1 s of its last use (HikariCP's
`aliveBypassWindowMs` makes the same trade); `pre_ping_idle = 0` restores ping-every-checkout.
`tests/reliability/test_server_recovery.py` proves restarts and `pg_terminate_backend` still
cost no failed checkout.

What is left per checkout is a `select()` on the socket (and a clock read at checkin), the
price of noticing a restarted server without a round trip: a few microseconds, which puts
the ratio at 1.03-1.06x, on either side of the budget from run to run on this loaded
2-CPU machine (`python -m bench floor pre_ping` alone gave 1.03x twice after the full run
below gave 1.06x).""",
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
