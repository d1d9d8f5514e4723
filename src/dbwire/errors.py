"""The error tree of dbwire; every message says what went wrong, for which database, and the fix.

```
DbwireError
├── ConfigError (ValueError)           bad file, field, env var or interpolation
├── CredentialsError                   a password source failed (.pgpass, *_FILE, command)
├── UnknownBackendError (LookupError)  no backend for a scheme; lists the known ones
├── UnknownDatabaseError (LookupError) no database of that name; lists the known ones
├── MissingDependencyError (ImportError) a driver is not installed; names the extra
├── ConnectError (ConnectionError)     the server refused or could not be reached
├── PoolTimeoutError (TimeoutError, sqlalchemy.exc.TimeoutError) no pooled connection in time
├── ReadOnlyError (PermissionError)    a write in a read-only session or database
└── DatabaseClosedError                the Database was closed
```

No message may carry a password: build them from masked URLs (`dbwire.url.mask_url`)
and pass driver text through `scrub()` when it could echo a secret.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exc as _sa_exc


class DbwireError(Exception):
    """Base of every error dbwire raises on purpose."""

    def __init__(self, message: str, *, database: str | None = None) -> None:
        super().__init__(message)
        self.database = database


class ConfigError(DbwireError, ValueError):
    """Configuration could not be resolved."""


class CredentialsError(DbwireError):
    """A credential source could not produce a password."""


class UnknownBackendError(DbwireError, LookupError):
    """No backend is registered for a URL scheme or backend name."""


class UnknownDatabaseError(DbwireError, LookupError):
    """No database of that name is configured."""


class MissingDependencyError(DbwireError, ImportError):
    """An optional driver or library is not installed."""


class ConnectError(DbwireError, ConnectionError):
    """The database could not be reached, or refused the login."""


class PoolTimeoutError(DbwireError, TimeoutError, _sa_exc.TimeoutError):
    """No pooled connection became free within pool_timeout.

    Also a `sqlalchemy.exc.TimeoutError`, so code written against SQLAlchemy's pool
    timeout keeps catching it.
    """


class ReadOnlyError(DbwireError, PermissionError):
    """A write was attempted in a read-only session or on a read-only database."""


class DatabaseClosedError(DbwireError):
    """The Database was closed and cannot hand out connections any more."""


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in text with '***'."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
