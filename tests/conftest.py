"""Shared fixtures for the dbwire test suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from clean_env import CleanEnv
from servers import (
    DatabaseServer,
    ExternalServer,
    MariaDBServer,
    MotoServer,
    PostgresServer,
    ServerUnavailable,
)
from servers.pgbouncer import PgBouncerServer
from servers.standby import ReplicationPrimary, StandbyServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from servers.tls import TLSMariaDBServer, TLSPostgresServer

# --------------------------------------------------------------------------- database servers
# Started lazily (only when a test asks for them), once per session.  Set
# DBWIRE_TEST_POSTGRES_URL / DBWIRE_TEST_MYSQL_URL to use an existing server instead.


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _session_server(
    from_env: Callable[[], ExternalServer | None],
    factory: Callable[[], PostgresServer | MariaDBServer],
) -> Iterator[DatabaseServer]:
    external = from_env()
    if external is not None:
        yield external
        return
    try:
        server = factory()
    except ServerUnavailable as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        if _in_ci():
            pytest.fail(f"CI must run the database tests: {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def _running_url(server: DatabaseServer) -> str:
    """The server's URL, restarting it first if a fault test left it stopped or killed."""
    if not server.is_running():
        server.start()
    assert server.is_running(), f"{server!r} is not running"
    return server.url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DatabaseServer]:
    """The session's PostgreSQL server (throwaway, or external via the env var)."""
    yield from _session_server(PostgresServer.from_env, PostgresServer)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[DatabaseServer]:
    """The session's MariaDB server (throwaway, or external via the env var)."""
    yield from _session_server(MariaDBServer.from_env, MariaDBServer)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A local AWS (moto's server on loopback) for the AWS credential providers."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: DatabaseServer) -> str:
    """``postgresql://dbwire:<pw>@127.0.0.1:<port>/dbwire`` of a running server."""
    return _running_url(pg_server)


@pytest.fixture
def mysql_url(mysql_server: DatabaseServer) -> str:
    """``mysql://dbwire:<pw>@127.0.0.1:<port>/dbwire`` of a running server."""
    return _running_url(mysql_server)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CleanEnv:
    """The one clean environment: no PG*/MYSQL_*/DBWIRE_* variable, no DATABASE_URL, HOME
    and PGSYSCONFDIR inside tmp_path. Use `clean_env.set(...)` to add what a test needs."""
    return CleanEnv(monkeypatch, tmp_path)


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI must run the database tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def shared_extensions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DuckDB extension folder per test module (installing costs ~1 s per folder)."""
    return tmp_path_factory.mktemp("duckdb-extensions")


@pytest.fixture
def hermetic_duckdb(monkeypatch: pytest.MonkeyPatch, shared_extensions: Path) -> None:
    """DuckDB stores load extensions from the module's folder only: no download is tried."""
    monkeypatch.setenv("DBWIRE_DUCKDB_EXTENSION_DIRECTORY", str(shared_extensions))
    monkeypatch.setenv("DBWIRE_DUCKDB_OFFLINE", "1")


def _started_tls_server(kind: str) -> Iterator[Any]:
    """A started TLS-only server of tests/servers/tls.py (a class name), stopped afterwards."""
    from servers import tls

    try:
        server = getattr(tls, kind)()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def mysql_tls_server() -> Iterator[TLSMariaDBServer]:
    """A throwaway MariaDB that refuses clear-text logins; only the TLS tests start it."""
    yield from _started_tls_server("TLSMariaDBServer")


@pytest.fixture(scope="session")
def pg_tls_server() -> Iterator[TLSPostgresServer]:
    """A throwaway PostgreSQL that refuses clear-text TCP logins; only TLS tests start it."""
    yield from _started_tls_server("TLSPostgresServer")


@pytest.fixture(scope="module")
def pg_standby() -> Iterator[StandbyServer]:
    """A streaming standby (``pg_basebackup -R``) of its own primary (``.primary``), once
    per module; both are throwaway servers, stopped and removed at the end."""
    try:
        primary = ReplicationPrimary()
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    standby: StandbyServer | None = None
    try:
        primary.start()
        standby = StandbyServer(primary)
        standby.start()
        yield standby
    finally:
        if standby is not None:
            standby.cleanup()
        primary.cleanup()


@pytest.fixture(scope="module")
def pgbouncer(pg_server: DatabaseServer) -> Iterator[PgBouncerServer]:
    """PgBouncer in transaction mode in front of the session's PostgreSQL, once per module."""
    _running_url(pg_server)
    try:
        bouncer = PgBouncerServer(pg_server, pool_mode="transaction", default_pool_size=4)
    except ServerUnavailable as exc:
        _unavailable(str(exc))
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.cleanup()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """A headless Chromium (the system's, driven by Playwright) for one test module.

    Module-scoped: Playwright's sync driver keeps an event loop of its own, which is closed
    before the async tests of other modules run.
    """
    from servers.browser import Chromium

    try:
        browser = Chromium()
    except ServerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI must run the browser tests: {exc}", pytrace=False)
        pytest.skip(str(exc))
    with browser as launched:
        yield launched
