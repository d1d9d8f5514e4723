"""The API's errors: serve's own DbwireError kinds, and how any error becomes a JSON answer."""

from __future__ import annotations

import re
from typing import Any

from dbwire.errors import (
    ConfigError,
    ConnectError,
    CredentialsError,
    DbwireError,
    MissingDependencyError,
    PoolTimeoutError,
    ReadOnlyError,
    UnknownBackendError,
    UnknownDatabaseError,
)


class ServeError(DbwireError):
    """An API request that cannot be served as asked; carries its HTTP status."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        database: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message, database=database)
        self.field = field
        self.fix = fix


class ConnectionExistsError(ServeError):
    """A connection of that name exists already."""

    status_code = 409


class ConnectionOwnedError(ServeError):
    """The connection comes from the config file, which the API does not edit."""

    status_code = 409


class UnknownConnectionError(ServeError, LookupError):
    """No connection of that name."""

    status_code = 404


class UnknownQueryError(ServeError, LookupError):
    """No open query of that id (finished, expired or never started)."""

    status_code = 404


class BadRequestError(ServeError, ValueError):
    """A request whose body or parameters are not what the API takes."""

    status_code = 400


class QueryCancelledError(ServeError):
    """The query was cancelled (by DELETE /api/query/ID or its timeout)."""

    status_code = 409


class QueryIdInUseError(ServeError):
    """A client-chosen query id that an open query already has."""

    status_code = 409


class QueryFailedError(ServeError):
    """The database refused or failed the statement."""

    status_code = 400


class UnauthorizedError(ServeError):
    """No valid session cookie or bearer token."""

    status_code = 401


class ForbiddenError(ServeError, PermissionError):
    """A cross-site request that would change state."""

    status_code = 403


_STATUS: tuple[tuple[type[DbwireError], int], ...] = (
    (ReadOnlyError, 403),
    (UnknownDatabaseError, 404),
    (UnknownBackendError, 400),
    (ConnectError, 503),
    (PoolTimeoutError, 503),
    (CredentialsError, 400),
    (MissingDependencyError, 400),
    (ConfigError, 400),
)


def kind_of(exc: BaseException) -> str:
    """The snake_case kind a client switches on: ReadOnlyError -> 'read_only'."""
    name = type(exc).__name__.removesuffix("Error") or "dbwire"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def status_of(exc: DbwireError) -> int:
    """The HTTP status for a DbwireError: 4xx for the user's mistakes, 503 unreachable."""
    if isinstance(exc, ServeError):
        return exc.status_code
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(
    kind: str, message: str, *, field: str | None = None, fix: str | None = None
) -> dict[str, Any]:
    """The one JSON shape of every error answer."""
    error: dict[str, Any] = {"type": kind, "message": message}
    if field is not None:
        error["field"] = field
    if fix is not None:
        error["fix"] = fix
    return {"error": error}
