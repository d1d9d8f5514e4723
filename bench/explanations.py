"""Why a row is OVER, and the proposed fix: written after profiling, shown in RESULTS.md.

A case that knows its own cause can instead set Row.explanation (bench/collect.py does).
"""

from __future__ import annotations

_EVENTS = """\
**Cause** (cProfile of 1,000 `connect()` + `SELECT 1`, call counts dbwire minus SQLAlchemy):
about 130 more Python calls per operation, nearly all in SQLAlchemy's event system. dbwire
registers *Connection-level* listeners: `begin` (read-only, `Database._install_hooks`) and
`before_cursor_execute` / `after_cursor_execute` (`QueryObserver.install`, always on for
stats). A single such listener sets `engine._has_events`; from then on every Connection builds
a joined dispatcher and runs about 7 event hooks per checkout and statement
(`event/attr.py`: `_JoinedListener.__init__` 7x, `__iter__` 12x, `setattr`/`getattr` 14x per
operation). Measured alone on plain engines with no-op listeners: `begin` costs 1.09x,
`before/after_cursor_execute` 1.13x, while a dialect-level `do_execute` listener costs 1.00x
and `handle_error` (dialect-level since SQLAlchemy 2.0) 1.01x.

**Fix** (`database.py`, `observe.py`): keep every hook off the Connection events.
1. Time statements in `do_execute`, `do_execute_no_params` and `do_executemany` listeners
   (DialectEvents): call `dialect.do_execute(cursor, statement, parameters, context)` (or the
   matching method) inside `try/finally`, count, check slow, log, and return True so SQLAlchemy
   skips its own call. The timed scope is the cursor call, as with before/after_cursor_execute.
   Errors are still counted (the `finally`), so the observer's `handle_error` hook can go.
2. Register the read-only `begin` listener only on the read-only option engine:
   `ro = engine.execution_options(dbwire_readonly=True); event.listen(ro, "begin", _begin)`.
   SQLAlchemy keeps listeners added to an option engine local to it, so writable connections
   and sessions never dispatch it. `_readonly_factory()` and `connect(readonly=True)` then
   use `ro`. A database configured `readonly = true` still puts it on the main engine.

The "proposal" row is exactly this hook set (`bench/proposals.py: DialectLevelHooks`) on a
plain engine with the same pool; across runs it measured 1.01x to 1.03x. What it still adds
is the timing listener itself and the pool `checkin` listener."""

EXPLANATIONS: dict[str, str] = {
    "connect": _EVENTS,
    "session": "Same cause and fix as **connect**: the ORM session checks out a Connection, "
    "so every session pays for dbwire's Connection-level listeners (`begin`, "
    "`before/after_cursor_execute`).\n\n" + _EVENTS,
    "threads": "Same cause as **connect**: Connection-level listeners.",
    "observe": """\
**Cause** (cProfile diff, observability on minus off, per `db.session()`): with query logging
on, each statement makes a `LogRecord` (`Logger.makeRecord` and `findCaller`'s stack walk are
most of the added time) and runs `QueryObserver._shown()` (whitespace collapse, `scrub`,
`mask_text` regex; about a fifth of it). The statement is also timed through the
Connection-level cursor events described under **connect**.

**Fix**: time and log from the dialect-level `do_execute` listener (see **connect**), and cache
`_shown(statement)` in a small dict keyed by the statement, cleared whenever
`_known_secrets()` refreshes its list; repeated statements then cost one dict lookup.""",
    "execute_query": """\
**Cause** (cProfile of 3,000 calls): `execute_query()` goes through SQLAlchemy Core, which on
psycopg means 4 round trips where the floor has 1: the pool pre-ping (`do_ping`, `SELECT 1` in
autocommit), `BEGIN`, the statement, and `COMMIT` (`psycopg _exec_command` for BEGIN and
COMMIT on every call). On top comes Core's execution machinery (compiled-cache lookup,
execution context, `CursorResult`, event dispatch). No path through Core can reach 2.5x the
floor; SQLAlchemy Core alone is in the baseline column.

**Fix** (`Database.execute_query`, PostgreSQL first, today's Core path kept for read-only
databases and other backends until each has its fast path):
```python
@functools.lru_cache(maxsize=512)
def _compile(sql: str, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    compiled = text(sql).compile(dialect=dialect)  # `:name`, `\\:` and `%` exactly as text()
    order = tuple(compiled.positiontup or ()) if dialect.positional else None
    return compiled.string, order

def execute_query(self, sql, params=None):
    engine = self.engine
    dialect = engine.dialect
    statement, order = _compile(sql, dialect)
    values = dict(params or {})
    args = [values[name] for name in order] if order is not None else values
    fairy = engine.raw_connection()          # pool checkout, pre-ping by pool policy
    try:
        conn = fairy.driver_connection
        conn.autocommit = True               # psycopg 3: a client-side flag, no round trip
        try:
            with self._observer.timing(statement):   # keep stats, slow log, query log
                cursor = conn.cursor()
                cursor.execute(statement, args)      # one round trip; committed
                ...columns from cursor.description, rows as dicts...
        finally:
            if not conn.closed:
                conn.autocommit = False
    except dialect.loaded_dbapi.Error as exc:
        if dialect.is_disconnect(exc, fairy.dbapi_connection, None):
            fairy.invalidate(exc)
        wrapped = sa_exc.DBAPIError.instance(
            statement, args, exc, dialect.loaded_dbapi.Error, dialect=dialect
        )
        raise self._translated(wrapped) from exc     # same classes as today: ReadOnlyError, ...
    finally:
        fairy.close()
```
Autocommit gives "a statement that changes data is committed" in one round trip (SQLAlchemy's
own psycopg `do_ping` toggles autocommit the same way). Checked with the prototype in
`bench/proposals.py`: the same results as the Core path for parameters, `%` literals,
`CAST(:p AS int)`, `'a:b'` literals and DML commit; driver errors come out raw, hence the
wrapping. It also needs the **pre_ping** fix: with `pool_pre_ping=True` every checkout costs a
second round trip, which alone puts 2.5x out of reach. The "proposal" row measures both
together; under heavy load from other processes the floor itself moves, so read its ratio
with the load average above.""",
    "pre_ping": """\
**Cause**: SQLAlchemy's `pool_pre_ping` (dbwire's default for server backends) runs
`SELECT 1` on every checkout, one full round trip, about one floor: +20-25% on a checkout
plus `SELECT 1` (three round trips without the ping: BEGIN, the statement, ROLLBACK),
whatever dbwire does around it.

**Fix** (`Database._install_hooks` + a `DatabaseConfig.pre_ping_idle` field, default 1.0 s):
create the engine with `pool_pre_ping=False` and add two pool listeners:
- `checkin`: `record.info["dbwire_idle_since"] = time.monotonic()`;
- `checkout`: skip a fresh connection (no stamp); otherwise ping only if it was idle longer
  than `pre_ping_idle`, **or** its socket is readable
  (`select.select([pgconn.socket], [], [], 0)`: a server that restarted, was killed or
  terminated the backend has closed the socket, so EOF is waiting; for asyncpg,
  `connection.is_closed()`), as a backend method `connection_looks_dead(dbapi_conn)`.
  A failed ping that `dialect.is_disconnect()` recognises raises
  `sqlalchemy.exc.InvalidatePoolError`: the pool drops every older connection and retries the
  checkout on a new one, exactly what `pool_pre_ping` does.

Recovery checked with the prototype (`bench/proposals.py: install_idle_ping`) against
`tests/servers.py`: right after `restart()`, and after `kill()` + `start()`, the next five
checkouts all succeed (with no ping at all the first one fails). What the idle window gives
up is a connection silently black-holed (no FIN: a dropped NAT entry, a pulled cable) within
1 s of its last use; its first statement then fails as a disconnect, SQLAlchemy invalidates
the pool, and dbwire can retry once where it owns the whole statement (`execute_query`,
`health_check`). HikariCP makes the same trade with its 500 ms `aliveBypassWindowMs`. The
"proposal" row is this prototype.""",
    "import": """\
**Cause** (`python -X importtime -c "import dbwire"` against `import sqlalchemy`): on top of
SQLAlchemy Core, `import dbwire` loads `sqlalchemy.orm` (about a third of the added time;
`dbwire.database` imports `sessionmaker`, `Session`, `scoped_session` and
`sqlalchemy.ext.asyncio` at module level), pydantic with pydantic_core, annotated_types and
typing_inspection (another third, for `dbwire.config`), the `DatabaseConfig` schema build at
import (the self time of `dbwire.config`), and dbwire's own modules (manager, health, observe,
lifecycle, migrate, ... all imported by `dbwire/__init__.py`).

**Fix**:
1. `dbwire/__init__.py` keeps its sorted `__all__` but resolves names on first access with a
   module `__getattr__` (PEP 562) over a `{name: module}` table, a `__dir__` returning
   `__all__`, and the real imports under `if TYPE_CHECKING:` for type checkers. The errors may
   stay eager (`dbwire.errors` needs only `sqlalchemy.exc`). `from dbwire import connect`
   still works, and tests/test_public_api.py passes as it is (it checks `hasattr` for every
   name). `import dbwire` then costs about what `import sqlalchemy` does.
2. `database.py` imports `sqlalchemy.orm` and `sqlalchemy.ext.asyncio` inside the session and
   async properties (annotations under `TYPE_CHECKING`), so Core-only users
   (`connect()`, `execute_query()`, health checks) never load the ORM.
3. `DatabaseConfig` and `Config` get `ConfigDict(defer_build=True)`: the schema is built at the
   first validation instead of at import.
(1) brings the row within budget; (2) and (3) make the first `dbwire.connect(url)` cheaper too.""",
    "health": """\
**Cause**: over loopback a health check is almost all CPU and almost no waiting, so there
is little for concurrency to overlap. One check is a pool checkout with pre-ping, `BEGIN`,
`SELECT 1` and `ROLLBACK` through SQLAlchemy (4 round trips, each waking a server backend),
run on a new thread per database (`health.Probe`; starting a thread is about 0.1 ms here):
about 1 ms of CPU on this machine (the sequential baseline divided by 20). Twenty concurrent
checks still need twenty times that CPU, from 2 CPUs shared with the twenty server backends,
and their Python parts run one at a time under the GIL, so concurrent lands near sequential.
The budget's ratio has a floor of its own here: raw libpq with 20 `SELECT 1` in flight at
once on open connections (no Python between them) takes several times one raw ping (the note
gives this run's numbers; 3x to 17x across runs), so "<= 1.5x the slowest single check"
cannot be met over loopback on 2 CPUs by any client. It describes where concurrency pays: a
real network or a hung server, where a check is mostly waiting and the probes overlap their
waits.

**What would lower both numbers** (`health.py`):
1. Run the health query on the raw pooled driver connection in autocommit, without pre-ping
   (the health query is itself the ping; a failure invalidates the connection): one round
   trip instead of four, and none of Core's execution machinery.
2. Reuse one worker per database (a long-lived daemon thread or a per-Manager executor sized
   to the number of databases) instead of a new thread per probe; keep the deadline with
   `future.result(timeout)`. A database whose previous probe still hangs is reported
   unhealthy at once instead of piling up threads.
3. For psycopg, fan out without threads, as the x floor column does: send the health query on
   every database's connection (`pgconn.send_query`), wait on all sockets with one `select()`
   bounded by the deadline, read each answer (`consume_input`, `is_busy`, `get_result`); a
   socket still silent at the deadline is unhealthy. Threads remain for opening connections
   and for drivers without a non-blocking API. Twenty such checks take less than one check
   does today.""",
    "collect": "Measured by `bench/collect.py` (written with the LocalStore work): each path "
    "runs a few times, interleaved run by run, and its spread on a loaded machine is wide (see "
    "the spread column). An OVER within that spread is noise of the run; a cause and fix for a "
    "clear one belong with that module, whose rows can carry their own `explanation`.",
    "async": "Within the run's noise of the budget: the async path pays the same "
    "Connection-level listeners as **connect** (it runs the sync engine underneath), but "
    "greenlet and event-loop overhead dominate, so the share is smaller. Same fix.",
}
