"""Turning driver errors into dbwire's: secrets scrubbed, read-only and connect failures named.

Used by the engine's handle_error hook and by the fast query path alike, so both raise
the same classes with the same messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbwire import timeouts
from dbwire.errors import ConnectError, ReadOnlyError, describe, scrub_exception

if TYPE_CHECKING:
    from sqlalchemy.engine import ExceptionContext

    from dbwire.target import Target


def handle_error(db: Target, ctx: ExceptionContext) -> BaseException | None:
    """The engine's handle_error hook: scrub the chain, and name read-only and connect failures."""
    original = ctx.original_exception
    if ctx.is_pre_ping:
        return None  # the pool handles a failed ping by reconnecting
    # Whatever is raised chains to these: psycopg's error holds the connection (whose
    # repr shows the password), SQLAlchemy's the statement (ALTER ROLE .. PASSWORD).
    scrub_chain(db, original, ctx.sqlalchemy_exception)
    detail = driver_detail(db, original)
    if db.backend.is_readonly_violation(original):
        return readonly_error(db, detail)
    # A handshake that timed out reads as a "disconnect" (MySQL 2013); it is still a
    # failed connect, and gets the timeout's own message.
    if ctx.connection is None and (not ctx.is_disconnect or timeouts.is_timeout(original)):
        return connect_error(db, original, detail)
    return None


def readonly_error(db: Target, detail: str) -> ReadOnlyError:
    """The database refused a write because of read-only mode."""
    return ReadOnlyError(
        f"database {db.name!r} refused a write: the session or database is "
        f"read-only ({detail}). Use session(readonly=False) on a writable "
        "database for writes",
        database=db.name,
    )


def driver_detail(db: Target, exc: BaseException) -> str:
    """A driver error as one line, every known secret masked."""
    return describe(exc, db.known_secrets())


def scrub_chain(db: Target, *excs: BaseException | None) -> None:
    """Mask every known secret in these exceptions and what they chain to."""
    secrets = db.known_secrets()
    for exc in excs:
        scrub_exception(exc, secrets)


def connect_error(db: Target, exc: BaseException, detail: str) -> ConnectError:
    """A failed connect: a timeout, a rejected login, or a server that is not there."""
    if timeouts.is_timeout(exc) and not db.backend.is_auth_failure(exc):
        return timeout_error(db)
    backend_fix = db.backend.connect_fix(exc)
    if backend_fix:
        fix = backend_fix
    elif db.backend.is_auth_failure(exc):
        user = db.backend.base_url().username or "(default user)"
        provider = db.backend.provider_description()
        if provider is not None:
            fix = (
                f"the password that password_provider {provider} gave was rejected: fix it "
                "at its source (the next connection asks the provider again) and check "
                "that the user may log in"
            )
        else:
            fix = (
                f"check the password for user {user!r} (config password, URL, "
                "password_file, password_command or .pgpass) and that the user may log in"
            )
    else:
        fix = "check that the server is running and reachable, or wait for it with db.wait()"
    return ConnectError(
        f"database {db.name!r} ({db.url}): could not connect: {detail}. Fix: {fix}",
        database=db.name,
    )


def timeout_error(db: Target, what: str = "connect") -> ConnectError:
    """No answer within connect_timeout, naming the host and port actually tried."""
    url = db.backend.base_url()
    host, port = url.host, url.port or db.backend.default_port
    try:
        params = db.connect_params()
        host, port = params.host or host, params.port or port
    except Exception:  # a password source that is down must not hide the timeout
        pass
    timeout = timeouts.connect_timeout(db.config, url.query)
    return timeouts.timeout_error(db.name, host, port, timeout, what=what)
