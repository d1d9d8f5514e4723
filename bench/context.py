"""What every case shares: the iteration counts, the servers, the floors, cleanup."""

from __future__ import annotations

import itertools
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.harness import FULL, QUICK, Iterations, Stats, time_one

REPO = Path(__file__).resolve().parent.parent
# tests/servers/ starts the same throwaway servers the test suite uses (no pytest needed).
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

SELECT_ONE = "SELECT 1"
FLOOR_CONNECTIONS = 5


class Context:
    """Shared state of one run; the PostgreSQL and MariaDB servers start on first use."""

    def __init__(self, *, quick: bool) -> None:
        self.quick = quick
        self.iterations: Iterations = QUICK if quick else FULL
        self._tmp = tempfile.TemporaryDirectory(prefix="dbwire-bench-")
        self.tmp = Path(self._tmp.name)
        self._server: Any = None
        self._mysql_server: Any = None
        self._floor: Stats | None = None
        self._floor_op: Callable[[], None] | None = None
        self._shared: dict[int, list[Any]] = {}
        self._closers: list[Callable[[], None]] = []
        self.null_logger = _null_logger()

    # -- the server ---------------------------------------------------------------------
    @property
    def pg_url(self) -> str:
        """postgresql://user:password@127.0.0.1:PORT/db of the run's server."""
        if self._server is None:
            from servers import PostgresServer

            self._server = _started(lambda: PostgresServer.from_env() or PostgresServer())
        url: str = self._server.url
        return url

    @property
    def mysql_url(self) -> str:
        """mysql://user:password@127.0.0.1:PORT/db of the run's MariaDB server (started once)."""
        if self._mysql_server is None:
            from servers import MYSQL_URL_ENV, MariaDBServer

            self._mysql_server = _started(
                lambda: MariaDBServer.from_env(MYSQL_URL_ENV) or MariaDBServer()
            )
        url: str = self._mysql_server.url
        return url

    def sa_url(self, driver: str) -> str:
        """The server's URL for SQLAlchemy with an explicit driver, e.g. 'psycopg'."""
        return self.pg_url.replace("postgresql://", f"postgresql+{driver}://", 1)

    # -- shared measurements -----------------------------------------------------------
    def shared_connections(self, count: int) -> list[Any]:
        """`count` open psycopg connections that every engine of a comparison pools.

        Both sides of a comparison then talk to the same server processes in the same
        order (see bench.cases_sync.share), so the scheduler cannot favour one side's
        backends; on a loaded 2-CPU machine that alone moved a ratio by 10% between runs.
        """
        if count not in self._shared:
            import psycopg

            conns = [psycopg.connect(self.pg_url) for _ in range(count)]
            for conn in conns:
                self.on_close(conn.close)
            self._shared[count] = conns
        return self._shared[count]

    def floor_op(self) -> Callable[[], None]:
        """One raw psycopg `SELECT 1` on an open connection.

        Five connections, kept open for the run, take turns like the pools' connections do
        (bench.cases_sync.fill_pool), so no ratio rests on one server process's scheduling.
        """
        if self._floor_op is None:
            import psycopg

            conns = [
                psycopg.connect(self.pg_url, autocommit=True) for _ in range(FLOOR_CONNECTIONS)
            ]
            for conn in conns:
                self.on_close(conn.close)
            turn = itertools.cycle(conns)

            def op() -> None:
                with next(turn).cursor() as cur:
                    cur.execute(SELECT_ONE)
                    cur.fetchall()

            self._floor_op = op
        return self._floor_op

    def floor(self) -> Stats:
        """The floor every sync PostgreSQL row is compared with, measured once per run."""
        if self._floor is None:
            self._floor = time_one(self.floor_op(), self.iterations)
        return self._floor

    def server_version(self) -> str | None:
        """The PostgreSQL server's version, if this run started (or used) one."""
        if self._server is None:
            return None
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return None if row is None else str(row[0])

    def mysql_version(self) -> str | None:
        """The MariaDB server's version, if this run started (or used) one."""
        if self._mysql_server is None:
            return None
        import pymysql

        with pymysql.connect(**mysql_params(self.mysql_url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        return None if row is None else str(row[0])

    # -- cleanup ------------------------------------------------------------------------
    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        errors: list[BaseException] = []
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception as exc:  # keep closing the rest; report afterwards
                errors.append(exc)
        self._closers.clear()
        try:
            for server in (self._server, self._mysql_server):
                if server is not None:
                    server.cleanup()
        finally:
            self._tmp.cleanup()
        if errors:
            raise errors[0]


def _started(make: Callable[[], Any], attempts: int = 2) -> Any:
    """A started server; a failed start is cleaned up and tried once more on a new one.

    On a machine shared with other test runs, mariadb-install-db has been seen to fail when
    another run's cleanup removed its temporary table files from /tmp; a second fresh
    server gets past that. A server that fails twice is a real failure and is raised.
    """
    for attempt in range(attempts):
        server = make()
        try:
            server.start()
        except Exception:
            server.cleanup()
            if attempt == attempts - 1:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _null_logger() -> logging.Logger:
    """dbwire's loggers, sent to a NullHandler: records are made and dropped, nothing printed."""
    logger = logging.getLogger("dbwire")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def mysql_params(url: str) -> dict[str, Any]:
    """PyMySQL connect() keywords for a mysql:// URL (aiomysql calls `database` `db`)."""
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "",
        "password": parsed.password or "",
        "database": parsed.database or "",
    }
