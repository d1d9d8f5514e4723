"""Why a row is (or was) OVER, and what was done: written after profiling, shown in RESULTS.md.

A case that knows its own cause can instead set Row.explanation (bench/collect.py does).
"""

from __future__ import annotations

_EVENTS = """\
**Was OVER (1.19x) until the listeners moved; if it shows OVER again, look here first.**
Cause (cProfile of 1,000 `connect()` + `SELECT 1`): a single *Connection-level* listener
(`begin`, `before/after_cursor_execute`) sets `engine._has_events`, and from then on every
Connection builds a joined dispatcher and runs about 7 event hooks per checkout and statement,
about 130 more Python calls per operation. Dialect-level listeners (`do_execute`,
`handle_error`, `do_connect`) cost nothing of the kind.

Fix, in dbwire now: statements are timed in `do_execute*` DialectEvents
(`QueryObserver.install`), and the read-only `begin` listener lives only on the read-only
`execution_options()` engine (`Database._listen_readonly`), so writable connections never
dispatch it. On a noisy 2-CPU machine the ratio still moves by a few percent run to run."""

EXPLANATIONS: dict[str, str] = {
    "connect": _EVENTS,
    "session": "Same history as **connect**: sessions check out a Connection.\n\n" + _EVENTS,
    "threads": "Same history as **connect**: Connection-level listeners.",
    "observe": """\
With query logging on, each statement makes a `LogRecord` (`Logger.makeRecord` and
`findCaller`'s stack walk dominate) and masks the statement (`QueryObserver._shown`: whitespace
collapse, password scrub, URL mask). Timing itself is a dialect-level listener and one short
lock. A row over 1.10x here is logging cost, which the budget includes on purpose.""",
    "execute_query": """\
**Was OVER (4.6x the floor) through SQLAlchemy Core**: pre-ping, `BEGIN`, the statement and
`COMMIT` are four round trips where the floor has one, plus Core's execution machinery.

Fix, in dbwire now (`Database._execute_direct`): the SQL is compiled once per string exactly
as `text()` compiles it (LRU cache), run on the pooled psycopg connection switched to
autocommit (a client-side flag, no round trip) and switched back, with errors wrapped into the
same SQLAlchemy/dbwire classes and the statement counted by the observer. Read-only databases
and drivers that cannot switch autocommit locally keep the Core path.""",
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
