"""Connect timeouts: the effective connect_timeout, bounded driver connects, the timeout error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

from dbwire.config import DatabaseConfig
from dbwire.errors import ConnectError, describe

#: Seconds a connect (TCP, TLS, handshake and login) may take when the config sets none.
DEFAULT_CONNECT_TIMEOUT = 10.0

# Driver texts that mean "gave up waiting" when no TimeoutError is in the chain.
_TIMEOUT_TEXTS = ("timeout expired", "timed out", "no answer within")


def connect_timeout(config: DatabaseConfig, query: Mapping[str, Any] | None = None) -> float:
    """The connect timeout in seconds: the config's, else a `?connect_timeout=` in the URL,
    else DEFAULT_CONNECT_TIMEOUT. Never None: an unbounded connect hangs on a silent server.
    """
    if config.connect_timeout is not None:
        return float(config.connect_timeout)
    raw = (query or {}).get("connect_timeout")
    if isinstance(raw, str):
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
    return DEFAULT_CONNECT_TIMEOUT


def libpq_seconds(timeout: float) -> int:
    """libpq's connect_timeout takes whole seconds and treats anything below 2 as 2."""
    return max(2, round(timeout))


def is_timeout(exc: BaseException) -> bool:
    """True when exc (or an exception it was raised from) is a driver giving up waiting."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        text = str(seen).lower()
        if any(marker in text for marker in _TIMEOUT_TEXTS):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def timeout_error(
    database: str, host: str | None, port: int | None, timeout: float, *, what: str = "connect"
) -> ConnectError:
    """The ConnectError of a connect (or attach) that got no answer in time."""
    where = f"{host or 'localhost'}:{port}" if port else (host or "localhost")
    return ConnectError(
        f"database {database!r} (host {where}): no answer within {timeout:.1f} s "
        f"(connect_timeout) while trying to {what}; Fix: check that the server is up and "
        "answering (a hung server, a stopped VM or a firewall that drops packets looks like "
        "this), or raise connect_timeout",
        database=database,
    )


def unreachable_error(
    database: str, host: str | None, port: int | None, exc: OSError
) -> ConnectError:
    """The ConnectError of a connect the network refused (nothing listening, unknown host)."""
    where = f"{host or 'localhost'}:{port}" if port else (host or "localhost")
    return ConnectError(
        f"database {database!r} (host {where}): could not connect: {describe(exc, ())}. "
        "Fix: check that the server is running and listening on that host and port, and "
        "that the host name resolves",
        database=database,
    )


AsyncOpen = Callable[..., Coroutine[Any, Any, Any]]


def bounded_async_connect(
    open_connection: AsyncOpen, timeout: float, database: str, *, grace: float = 0.0
) -> AsyncOpen:
    """Wrap an async driver's connect so it ends within timeout (+ grace) seconds, and a
    timeout comes out as dbwire's ConnectError instead of a bare TimeoutError.

    SQLAlchemy's async adapters call it with the driver's keyword arguments (`async_creator_fn`),
    so host and port for the message are the ones actually dialled. `grace` leaves room for
    a driver that enforces the same timeout itself (asyncpg) to give up first and clean up.
    """

    async def connect(*args: Any, **kwargs: Any) -> Any:
        import asyncio

        try:
            async with asyncio.timeout(timeout + grace):
                return await open_connection(*args, **kwargs)
        except TimeoutError:
            port = kwargs.get("port")
            raise timeout_error(
                database, kwargs.get("host"), port if isinstance(port, int) else None, timeout
            ) from None
        except ConnectError:
            raise
        except OSError as exc:
            # asyncpg raises the socket's own error (refused, unknown host), which SQLAlchemy
            # does not wrap, since it is no DBAPI error: dbwire's handle_error never sees it.
            port = kwargs.get("port")
            raise unreachable_error(
                database, kwargs.get("host"), port if isinstance(port, int) else None, exc
            ) from exc

    return connect


async def open_aiomysql(*args: Any, **kwargs: Any) -> Any:
    """aiomysql.connect(), closing the half-open connection if it is cancelled or fails.

    aiomysql's own connect_timeout covers only opening the socket, and on cancellation it
    leaves the socket open; aiomysql.connect() is exactly Connection(...) + _connect(), so
    doing the two here keeps a handle to close.
    """
    import aiomysql

    conn = aiomysql.Connection(*args, **kwargs)
    try:
        await conn._connect()
    except BaseException:
        conn.close()
        raise
    return conn


async def open_asyncpg(*args: Any, **kwargs: Any) -> Any:
    """asyncpg.connect() (imported on first use)."""
    import asyncpg

    return await asyncpg.connect(*args, **kwargs)


@contextlib.contextmanager
def pymysql_reads_bounded(connection: Any, timeout: float) -> Iterator[None]:
    """PyMySQL's read and write timeouts capped at `timeout` for the calls made inside, the
    connection's own values back afterwards (PyMySQL applies them before each read and
    write): a round trip on an established connection then ends on a silent server."""
    read, write = connection._read_timeout, connection._write_timeout
    connection._read_timeout = timeout if read is None else min(read, timeout)
    connection._write_timeout = timeout if write is None else min(write, timeout)
    try:
        yield
    finally:
        connection._read_timeout, connection._write_timeout = read, write
