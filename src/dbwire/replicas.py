"""Read replicas: which server read-only work goes to, and when a replica is skipped.

A primary Database with `replicas = [...]` owns one ReplicaSet. Each entry (a URL, or the
name of another configured database) becomes a read-only Database of its own, resolved
like any other (credentials, .pgpass, timeouts). Read-only sessions and queries go to a
replica picked by `replica_strategy`; a replica that fails a connect, or lags more than
`max_replica_lag_s` (checked at most every `replica_check_interval_s`), is skipped for
`replica_backoff_s`, and the read falls back to the primary. After a write committed in a
context (thread or asyncio task), that context's reads stay on the primary for
`read_your_writes_s`. The decisions are plain code; the sync and async callers differ only
in how they open a connection.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from time import monotonic
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from dbwire.config import DatabaseConfig, load_config, validate_database
from dbwire.errors import ConfigError, ConnectError, DbwireError, UnknownDatabaseError, describe
from dbwire.types import HealthResult, PoolStatus

# SQLAlchemy is imported where a replica's engine is used: a Database without replicas
# imports this module without it.
if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from dbwire.session_forms import AsyncScopeSession, ScopeSession

# dbwire.database.Database, which imports this module: named, not imported (no cycle).
Database = Any

__all__ = ["ReplicaSet", "ReplicaState", "build", "note_write", "reads_pinned"]

# Fields a replica given as a bare URL takes from its primary: how to log in and pool
# (passfile, timeouts, pool sizes, logging), never where to go or its own replicas.
_INHERITED = (
    "passfile",
    "password_file",
    "password_command",
    "password_command_ttl",
    "options",
    "connect_args",
    "pool_size",
    "max_overflow",
    "pool_timeout",
    "pool_recycle",
    "pool_pre_ping",
    "pre_ping_idle",
    "connect_timeout",
    "log_queries",
    "query_log_level",
    "slow_query_ms",
    "health_timeout",
    "health_query",
    "pooler",
    "pooler_pool",
)

# Replay lag in seconds: 0 when everything received is replayed (an idle primary is not
# lag), else the age of the last replayed transaction. NULL receive LSN (WAL from an
# archive, not streamed) falls through to the timestamp too.
LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0::float8 "
    "WHEN pg_last_wal_receive_lsn() IS NOT NULL "
    "AND pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) <= 0 "
    "THEN 0::float8 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), "
    "'Infinity')::float8 END"
)

# Per context, the primaries written to and until when reads stay there. The mapping is
# replaced, never changed in place: asyncio tasks share the parent's objects, so an
# in-place change would pin every sibling task too.
_RECENT_WRITES: contextvars.ContextVar[Mapping[int, float]] = contextvars.ContextVar(
    "dbwire_recent_writes", default=MappingProxyType({})
)
# Key of session.info holding the ReplicaSet a committing session's writes pin reads to.
WRITES_KEY = "dbwire_replica_set"


def note_write(replicas: ReplicaSet) -> None:
    """This context wrote to replicas' primary: keep its reads there for a while."""
    hold = replicas.primary.config.read_your_writes_s
    if hold <= 0:
        return
    current = dict(_RECENT_WRITES.get())
    now = monotonic()
    current = {key: until for key, until in current.items() if until > now}
    current[id(replicas)] = now + hold
    _RECENT_WRITES.set(MappingProxyType(current))


def reads_pinned(replicas: ReplicaSet) -> bool:
    """True while this context's reads must see its own recent writes (go to the primary)."""
    until = _RECENT_WRITES.get().get(id(replicas))
    return until is not None and until > monotonic()


# Every live ReplicaSet, for sessions made from db.Session() / db.AsyncSession() directly:
# their commits are matched to a primary by the engine they are bound to.
_SETS: weakref.WeakSet[ReplicaSet] = weakref.WeakSet()


def _after_commit(session: Any) -> None:
    replicas = session.info.get(WRITES_KEY)
    if replicas is not None:
        note_write(replicas)
        return
    bind = session.bind
    if bind is None or not _SETS:
        return
    for candidate in list(_SETS):
        if bind in candidate.primary._engines.all():
            note_write(candidate)
            return


_listening = False
_listen_lock = threading.Lock()


def _listen_commits() -> None:
    """One Session-class listener for every primary: a commit on a session whose factory
    carries a ReplicaSet pins that context's reads."""
    global _listening
    with _listen_lock:
        if not _listening:
            from sqlalchemy import event
            from sqlalchemy.orm import Session

            event.listen(Session, "after_commit", _after_commit)
            _listening = True


@dataclass
class ReplicaState:
    """One replica and what dbwire last learnt about it."""

    db: Database
    skipped_until: float = 0.0
    lag_checked_at: float = float("-inf")
    lag_s: float | None = None
    reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        """The replica's database name."""
        name: str = self.db.name
        return name

    def available(self, now: float) -> bool:
        """Not in back-off."""
        return now >= self.skipped_until


class ReplicaSet:
    """The replicas of one primary: picking, back-off, lag checks and read-your-writes."""

    def __init__(self, primary: Database, replicas: list[Database]) -> None:
        self.primary = primary
        self.replicas = [ReplicaState(db) for db in replicas]
        self._turn = itertools.count()
        config = primary.config
        self.strategy = config.replica_strategy
        self.max_lag = config.max_replica_lag_s
        self.check_interval = config.replica_check_interval_s
        self.backoff = config.replica_backoff_s
        self._factories: dict[bool, Any] = {}
        self._factory_lock = threading.Lock()
        _listen_commits()
        _SETS.add(self)

    # -- decisions (no IO) -----------------------------------------------------------
    def candidates(self) -> list[ReplicaState]:
        """The replicas to try, best first; empty: read on the primary."""
        if reads_pinned(self):
            return []
        now = monotonic()
        usable = [r for r in self.replicas if r.available(now) and not _saturated(r)]
        if len(usable) < 2:
            return usable
        if self.strategy == "least_loaded":
            return sorted(usable, key=_occupancy)
        start = next(self._turn) % len(usable)
        return usable[start:] + usable[:start]

    def lag_check_due(self, replica: ReplicaState) -> bool:
        """Whether this caller should measure replica's lag now; at most one caller per
        interval does, the others use the last verdict."""
        if self.max_lag is None:
            return False
        now = monotonic()
        with replica.lock:
            if now - replica.lag_checked_at < self.check_interval:
                return False
            replica.lag_checked_at = now
            return True

    def record_lag(self, replica: ReplicaState, lag_s: float | None) -> bool:
        """Store a measured lag; False (and a back-off) when it is beyond max_replica_lag_s."""
        replica.lag_s = lag_s
        # The primary's metrics show each replica's lag (db_client_replica_lag).
        self.primary.observation.record_replica_lag(replica.name, lag_s)
        if self.max_lag is not None and (lag_s is None or lag_s > self.max_lag):
            shown = "unknown" if lag_s is None else f"{lag_s:.1f} s"
            self._skip(
                replica,
                f"replay lag {shown} is over max_replica_lag_s={self.max_lag:g}",
            )
            return False
        replica.reason = None
        return True

    def record_failure(self, replica: ReplicaState, exc: BaseException) -> None:
        """A connect to replica failed: skip it for replica_backoff_s."""
        secrets = replica.db.known_secrets()
        self._skip(replica, "connect failed: " + describe(exc, secrets, first_line=True))

    def _skip(self, replica: ReplicaState, reason: str) -> None:
        replica.skipped_until = monotonic() + self.backoff
        # The next check after the back-off measures again.
        replica.lag_checked_at = float("-inf")
        replica.reason = reason
        self.primary.logger.warning(
            "database %r: replica %r skipped for %g s (%s); reads go to the primary",
            self.primary.name,
            replica.name,
            self.backoff,
            reason,
        )

    # -- IO: the probe is one sync function; async runs it on the async engine's greenlet --
    def _probe(self, conn: Connection, replica: ReplicaState) -> bool:
        """On a fresh checkout of `replica`: measure its lag when due; False when it lags
        beyond max_replica_lag_s (it is then in back-off)."""
        if self.lag_check_due(replica):
            from sqlalchemy import text

            lag = conn.execute(text(LAG_SQL)).scalar()
            if not self.record_lag(replica, _seconds(lag)):
                return False
        conn.rollback()
        return True

    def _probe_failed(self, replica: ReplicaState, exc: Exception) -> None:
        """A failed connect puts the replica in back-off; any other dbwire error is raised."""
        if isinstance(exc, DbwireError) and not _is_connect_failure(exc):
            raise exc
        self.record_failure(replica, exc)

    def pick(self) -> ReplicaState | None:
        """A replica that answers (and is not lagging), or None for the primary.

        A checkout proves the replica answers before work is handed to it, so a replica
        that just went down costs that read nothing: it falls through to the next
        replica or the primary.
        """
        from sqlalchemy import exc as sa_exc

        for replica in self.candidates():
            try:
                with replica.db.engine.connect() as conn:
                    if not self._probe(conn, replica):
                        continue
            except (DbwireError, sa_exc.DBAPIError, OSError) as exc:
                self._probe_failed(replica, exc)
                continue
            return replica
        return None

    async def async_pick(self) -> ReplicaState | None:
        """pick() on the replicas' async engines: the same probe, run through run_sync."""
        from sqlalchemy import exc as sa_exc

        for replica in self.candidates():
            try:
                async with replica.db.async_engine.connect() as conn:
                    if not await conn.run_sync(self._probe, replica):
                        continue
            except (DbwireError, sa_exc.DBAPIError, OSError) as exc:
                self._probe_failed(replica, exc)
                continue
            return replica
        return None

    # -- sessions --------------------------------------------------------------------
    def session(self, *, readonly: bool, auto_commit: bool) -> ScopeSession:
        """db.session() of the primary: read-only ones pick a server on first use
        (dbwire.replica_sessions), writable ones pin this context's reads when they commit."""
        session: ScopeSession
        if readonly:
            session = self._routed(is_async=False)()
        else:
            session = self.primary.Session()
            session.info[WRITES_KEY] = self
        session.dbwire_auto_commit = auto_commit
        return session

    def async_session(self, *, readonly: bool, auto_commit: bool) -> AsyncScopeSession:
        """The async twin of session()."""
        self.primary._check_open()
        session: AsyncScopeSession
        if readonly:
            session = self._routed(is_async=True)()
        else:
            session = self.primary._engines.async_side().factory(readonly=False)()
            session.info[WRITES_KEY] = self
        session.dbwire_auto_commit = auto_commit
        return session

    def _routed(self, *, is_async: bool) -> Any:
        with self._factory_lock:
            found = self._factories.get(is_async)
            if found is None:
                from dbwire import replica_sessions as routed

                info = {routed.SET_KEY: self}
                if is_async:
                    from sqlalchemy.ext.asyncio import async_sessionmaker

                    found = async_sessionmaker(
                        class_=routed.AsyncRoutedSession,
                        sync_session_class=routed.RoutedSyncSession,
                        expire_on_commit=False,
                        autoflush=False,
                        info=info,
                    )
                else:
                    from sqlalchemy.orm import sessionmaker

                    found = sessionmaker(
                        class_=routed.RoutedSession,
                        expire_on_commit=False,
                        autoflush=False,
                        info=info,
                    )
                self._factories[is_async] = found
            return found

    # -- reporting -------------------------------------------------------------------
    def __iter__(self) -> Iterator[ReplicaState]:
        return iter(self.replicas)

    def close(self) -> None:
        """Close every replica's pools."""
        for replica in self.replicas:
            replica.db.close()

    async def aclose(self) -> None:
        """Close every replica's pools, this loop's async ones on the loop."""
        for replica in self.replicas:
            await replica.db.aclose()


def _is_connect_failure(exc: DbwireError) -> bool:
    from dbwire.errors import PoolTimeoutError

    return isinstance(exc, ConnectError | PoolTimeoutError)


def _saturated(replica: ReplicaState) -> bool:
    """Every connection of the replica's pools is out (or being opened): a read would wait
    pool_timeout there, so it goes elsewhere. SQLAlchemy's queue pool wakes a waiter only
    when a connection comes back, not when a failed connect frees its slot, so waiting on
    a replica that just went down would cost pool_timeout per waiter."""
    owned = replica.db._engines
    engines = [owned.created_sync, *(e.sync_engine for e in owned.async_engines())]
    for engine in engines:
        pool: Any = engine.pool if engine is not None else None
        try:
            limit = pool.size() + pool._max_overflow
            if pool._max_overflow >= 0 and pool.checkedout() >= limit:
                return True
        except (AttributeError, TypeError):  # NullPool and friends: no limit to reach
            continue
    return False


def _occupancy(replica: ReplicaState) -> float:
    """Checked-out share of the replica's sync pool (0 for a pool not made yet)."""
    engine = replica.db._engines.created_sync
    if engine is None:
        return 0.0
    pool: Any = engine.pool
    try:
        out = float(pool.checkedout())
        size = float(max(1, pool.size()))
    except (AttributeError, TypeError):  # NullPool and friends keep no count
        return 0.0
    return out / size


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


# -- read-only queries and reports -----------------------------------------------------
QueryResult = tuple[list[str], list[dict[str, Any]]]


def execute_read(primary: Database, sql: str, params: Mapping[str, Any] | None) -> QueryResult:
    """execute_query(readonly=True): on a replica when one answers, else read-only on the
    primary. The statement guard refuses a write before any server is chosen."""
    primary._check_open()
    _guard(primary, sql)
    replicas = primary._replicas
    chosen = replicas.pick() if replicas is not None else None
    if chosen is not None and replicas is not None:
        try:
            answer: QueryResult = chosen.db.execute_query(sql, params)
            return answer
        except ConnectError as exc:  # it went down since the check: nothing ran there
            replicas.record_failure(chosen, exc)
    from sqlalchemy import text

    with primary.connect(readonly=True) as conn:
        result = conn.execute(text(sql), dict(params or {}))
        found = _collect(result)
        conn.commit()
    return found


async def async_execute_read(
    primary: Database, sql: str, params: Mapping[str, Any] | None
) -> QueryResult:
    """The async twin of execute_read()."""
    primary._check_open()
    _guard(primary, sql)
    replicas = primary._replicas
    chosen = await replicas.async_pick() if replicas is not None else None
    if chosen is not None and replicas is not None:
        try:
            found: QueryResult = await chosen.db.async_execute_query(sql, params)
            return found
        except ConnectError as exc:
            replicas.record_failure(chosen, exc)
    from sqlalchemy import text

    async with primary.async_connect(readonly=True) as conn:
        result = await conn.execute(text(sql), dict(params or {}))
        found = _collect(result)
        await conn.commit()
    return found


def _guard(primary: Database, sql: str) -> None:
    from dbwire.backends import readonly_guard

    readonly_guard.check_statement(sql, database=primary.name, dialect=primary.backend.dialect_name)


def _collect(result: Any) -> QueryResult:
    if not result.returns_rows:
        return [], []
    columns = list(result.keys())
    return columns, [dict(zip(columns, row, strict=True)) for row in result]


def _with_reason(result: HealthResult, replica: ReplicaState) -> HealthResult:
    """A replica's health, with why reads skip it (lag, a failed connect) while they do."""
    if replica.reason is None or replica.available(monotonic()):
        return result
    return replace(result, error=result.error or f"skipped by reads: {replica.reason}")


def health(replicas: ReplicaSet, result: HealthResult, timeout: float | None) -> HealthResult:
    """The primary's result with each replica's, checked at once (one timeout in all)."""
    from concurrent.futures import ThreadPoolExecutor

    states = list(replicas)
    with ThreadPoolExecutor(max_workers=len(states), thread_name_prefix="dbwire-replica") as run:
        found = list(run.map(lambda r: r.db.health_check(timeout), states))
    shown = tuple(_with_reason(r, s) for r, s in zip(found, states, strict=True))
    return replace(result, replicas=shown)


async def async_health(
    replicas: ReplicaSet, result: HealthResult, timeout: float | None
) -> HealthResult:
    """The async twin of health()."""
    import asyncio

    states = list(replicas)
    found = await asyncio.gather(*(r.db.async_health_check(timeout) for r in states))
    shown = tuple(_with_reason(r, s) for r, s in zip(found, states, strict=True))
    return replace(result, replicas=shown)


def pool_status(replicas: ReplicaSet, status: PoolStatus, *, is_async: bool) -> PoolStatus:
    """The primary's pool status with each replica's."""
    shown = tuple(r.db.get_pool_status(is_async=is_async) for r in replicas)
    return replace(status, replicas=shown)


# -- resolution ----------------------------------------------------------------------
def replica_configs(primary: DatabaseConfig) -> list[DatabaseConfig]:
    """Each `replicas` entry as a read-only DatabaseConfig of its own."""
    found: list[DatabaseConfig] = []
    siblings: Mapping[str, DatabaseConfig] | None = None
    for index, entry in enumerate(primary.replicas_with_passwords(), start=1):
        if "://" in entry or entry.startswith("sqlite:"):
            data: dict[str, Any] = {
                key: getattr(primary, key) for key in _INHERITED if key in primary.model_fields_set
            }
            data["url"] = entry
            data["readonly"] = True
            config = validate_database(
                data, name=f"{primary.name}.replica{index}", origin=f"{primary.name}.replicas"
            ).with_environ(primary.environ)
        else:
            if entry == primary.name:
                raise ConfigError(
                    f"database {primary.name!r}: field 'replicas' names the database itself; "
                    "list the replicas' URLs or the names of other configured databases",
                    database=primary.name,
                )
            if siblings is None:
                siblings = primary.siblings
                if siblings is None:
                    siblings = load_config(None, primary.environ).databases
            sibling = siblings.get(entry)
            if sibling is None:
                known = ", ".join(sorted(n for n in siblings if n != primary.name)) or "(none)"
                raise UnknownDatabaseError(
                    f"database {primary.name!r}: field 'replicas' names {entry!r}, which is "
                    f"not a configured database (configured: {known}); write its URL or "
                    "add [databases." + entry + "]",
                    database=primary.name,
                )
            config = sibling.with_env_prefix().with_overrides(readonly=True, replicas=[])
            if primary.environ is not None and config.environ is None:
                config = config.with_environ(primary.environ)
        if primary.max_replica_lag_s is not None and _family(config) != "postgresql":
            raise ConfigError(
                f"database {primary.name!r}: max_replica_lag_s is measured on PostgreSQL "
                f"standbys only, and replica {config.name!r} is {_family(config)}; remove "
                "max_replica_lag_s or list PostgreSQL replicas",
                database=primary.name,
            )
        found.append(config)
    return found


def _family(config: DatabaseConfig) -> str:
    key = (config.backend or config.scheme or "?").lower()
    return "postgresql" if key.startswith("postgres") else key


def build(primary: Database) -> ReplicaSet | None:
    """The primary's ReplicaSet (replicas built, nothing connected), or None without any."""
    if not primary.config.replicas:
        return None
    factory = type(primary)
    dbs = [factory(config, logger=primary.logger) for config in replica_configs(primary.config)]
    return ReplicaSet(primary, dbs)
