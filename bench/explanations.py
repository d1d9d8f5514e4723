"""Why a row is (or was) OVER, and what was done: written after profiling, shown in RESULTS.md.

A case that knows its own cause can instead set Row.explanation (bench/collect.py does).
"""

# ruff: noqa: E501 - the Markdown tables below cannot wrap
from __future__ import annotations

_LAYER = """\
**Against SQLAlchemy without pre-ping, what is left is dbwire's per-checkout and
per-statement work; on this loaded 2-CPU machine it shows as 1.03-1.15x from run to run.**
Counted with `python -m bench.calls connect session` (calls do not move with load):
`db.connect()` + `SELECT 1` makes about 290 Python calls where `engine.connect()` makes 260,
and `db.session()` about 402 where `sessionmaker(engine).begin()` makes 389. The difference
is, per operation: the idle-ping check on checkout (`pool._maybe_ping` ->
`connection_looks_dead` -> one `select()` on the socket, which is how a restarted server is
noticed without a round trip), the idle stamp on checkin (`pool._stamp`, a clock read), and
the statement timing that `get_stats()` always keeps (`QueryObserver.record`: two
`perf_counter()` and a short lock), plus the pool and close hooks (`_checkin`,
`_close_after_close`). Client CPU per operation (thread time, same command) is about 5-10%
higher on `connect()` and 3-4% on `session()`; the server's share of the wall time is the
same on both sides, so the wall-time ratio should sit below the CPU ratio, and does when
the machine is quiet (1.03-1.04x in the quick runs). Under a load average of 10-16 the
client's CPU share of each sample grows (the round trip waits for a CPU), which pushes the
ratio towards the CPU ratio.

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
**Against the raw driver's `SELECT 1` on an open connection, execute_query pays for a pool
checkout and, where it still goes through SQLAlchemy Core, for Core's transaction and result
machinery.** Counted with `python -m bench.calls execute_query.postgresql
execute_query.mariadb execute_query.sqlite execute_query.duckdb` (Python calls per
operation, dbwire against the floor; client CPU per operation, thread time):

| backend | path | calls/op | round trips | where the extra goes |
|---|---|--:|--:|---|
| PostgreSQL (psycopg) | one-round-trip fast path (`fast_path.py`) | 185 vs 60 | 1 vs 1 | pool checkout/checkin (QueuePool's `Condition` lock and queue, the reset `rollback()` that psycopg answers locally), the idle-ping `select()`, `autocommit` switched on and back (local in psycopg, but two generator round trips through `psycopg.waiting.wait`), the statement counter |
| MariaDB (PyMySQL) | SQLAlchemy Core | 464 vs 166 | 3 vs 1 | Core's `COMMIT` and the pool's reset `ROLLBACK` are two more round trips (`pymysql _execute_command` +2), plus Core's execution context and result object |
| SQLite (sqlite3) | SQLAlchemy Core | 208 vs 5 | — | the floor is one C call (about 2 us); a pool checkout alone costs more than 10x that, and Core's execution context, cursor result and commit about 100 Python calls more |
| DuckDB (duckdb) | SQLAlchemy Core | 250 vs 7 | — | Core's `begin()`, `commit()` and the pool's `rollback()` are three DuckDB transaction calls, which cost DuckDB about 1 ms of CPU together: client CPU 1.26 ms against 0.17 ms |

The fix for MariaDB, SQLite and DuckDB is the PostgreSQL one: run the statement on the
pooled driver connection in autocommit, with no Core transaction (the core work under way
makes `execute_query` one round trip on every backend). What cannot go without giving up the
pool is the checkout itself: about 20-40 us of Python on this machine, which is most of the
1.5x budget on PostgreSQL (floor 40-80 us) and many times the in-process floors of SQLite
(2 us) and DuckDB; on those two backends 1.5x of the floor is not reachable by anything
that takes a pooled connection per call."""

_ASYNC_QUERY = """\
**The async path adds SQLAlchemy's greenlet bridge on top of the sync costs.** Counted with
`python -m bench.calls async_execute_query.postgresql async_execute_query.mariadb
async_execute_query.sqlite`: 369 Python calls against raw asyncpg's 79, 867 against
aiomysql's 250, 761 against aiosqlite's 185. SQLAlchemy's async engine runs its sync core
in a greenlet (`greenlet_spawn`, 4-9 switches per call), and every `await` inside the
adapter (checkout, the statement, the reset on checkin) is an event-loop turn
(`_run_once`, `call_soon`, `select`); on MariaDB and SQLite the statement still goes through
Core (COMMIT and ROLLBACK are two more round trips on MariaDB, two more thread hops on
aiosqlite). The direct path (`fast_path.py`) already skips Core for asyncpg, but still checks
the connection out through `AsyncEngine.connect()` and `run_sync`, which is most of what is
left: checking the asyncpg connection out of the pool without the greenlet hop, and
running the statement with `await` on the driver connection directly, would take it close to
one event-loop turn over the floor. DuckDB has no async driver (SQLAlchemy runs it in a
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
