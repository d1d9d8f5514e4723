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

import contextlib
import functools
import re
import threading
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING


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


_POOL_TIMEOUT_DOC = """No pooled connection became free within pool_timeout.

    Also a `sqlalchemy.exc.TimeoutError`, so code written against SQLAlchemy's pool
    timeout keeps catching it.
    """

if TYPE_CHECKING:
    from sqlalchemy import exc as _sa_exc

    class PoolTimeoutError(DbwireError, TimeoutError, _sa_exc.TimeoutError):
        __doc__ = _POOL_TIMEOUT_DOC

else:
    # The class is built on first use: its SQLAlchemy base would make every `import
    # dbwire.errors` import SQLAlchemy, which a collect through DuckDB or connectorx and
    # a configuration check never need.
    _pool_timeout_lock = threading.Lock()

    def __getattr__(name: str) -> type:
        if name != "PoolTimeoutError":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        with _pool_timeout_lock:
            built = globals().get(name)
            if built is None:
                from sqlalchemy import exc as sa_exc

                built = type(
                    name,
                    (DbwireError, TimeoutError, sa_exc.TimeoutError),
                    {"__doc__": _POOL_TIMEOUT_DOC, "__module__": __name__},
                )
                globals()[name] = built
        return built


class ReadOnlyError(DbwireError, PermissionError):
    """A write was attempted in a read-only session or on a read-only database."""


class DatabaseClosedError(DbwireError):
    """The Database was closed and cannot hand out connections any more."""


# The one list of keys whose values are secrets: URL query keys, `options`,
# `connect_args`, key=value text in driver messages. dbwire.url re-exports it.
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "sslpassword",
        "ssl_password",
        "sslkey_password",
        "ssl_key_password",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "auth_token",
        "session_token",
        "aws_session_token",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "secret_access_key",
        "aws_secret_access_key",
        "private_key",
        "private_key_passphrase",
        "passphrase",
    }
)
MASK = "***"
_MAX_DETAIL = 500


def is_secret_key(key: object) -> bool:
    """True when a setting of this name holds a secret ('password', 'SSLPassword', 'aws-token')."""
    if not isinstance(key, str):
        return False
    name = key.strip().lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(("password", "_secret", "_token", "secret_key"))


_KEY_ALTERNATION = "|".join(
    sorted({*SECRET_KEYS, r"\w*password", r"\w*_secret", r"\w*_token"}, key=len, reverse=True)
)
_QUOTED = r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\""
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # SQL first: PASSWORD '..', PASSWORD = PASSWORD('..'), IDENTIFIED [WITH x] BY '..'
    (
        re.compile(
            rf"(?P<head>\b(?:PASSWORD|IDENTIFIED(?:\s+WITH\s+\S+)?\s+(?:BY|AS|USING))"
            rf"(?:\s+|\s*=\s*|\s*\(\s*)(?:(?:PASSWORD|OLD_PASSWORD)\s*\(\s*)?)"
            # E'..' / N'..' escape strings and PostgreSQL's $tag$..$tag$ quoting too.
            rf"(?:[EN]?(?:{_QUOTED})|\$(?P<tag>\w*)\$.*?\$(?P=tag)\$)",
            re.IGNORECASE | re.DOTALL,
        ),
        rf"\g<head>'{MASK}'",
    ),
    # URL userinfo, also without the '//' (a mistyped URL): scheme://user:SECRET@host
    (
        re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*:(?://)?[^:/@\s'\"]*:)[^@\s'\"]*@"),
        rf"\g<head>{MASK}@",
    ),
    # key=value and 'key': 'value' (dict reprs, JSON, conninfo strings, URL queries); a
    # bare value followed by '(' is SQL (PASSWORD = PASSWORD(...)), masked above.
    (
        re.compile(
            rf"(?P<head>(?<![\w])(?:{_KEY_ALTERNATION})['\"]?\s*=\s*)"
            rf"(?:{_QUOTED}|[^\s&;,()'\"*]++(?!\())",
            re.IGNORECASE,
        ),
        rf"\g<head>{MASK}",
    ),
    (
        re.compile(
            rf"(?P<head>(?<![\w])(?:{_KEY_ALTERNATION})['\"]?\s*:\s*)(?:{_QUOTED})",
            re.IGNORECASE,
        ),
        rf"\g<head>'{MASK}'",
    ),
)


# What each of _PATTERNS cannot match without: the query log masks every statement it
# writes, and a substring test is far cheaper than running a pattern that cannot match.
_NEEDED: tuple[tuple[str, ...], ...] = (("password", "identified"), ("@",), ("=",), (":",))


def mask_secret_patterns(text: str) -> str:
    """Mask secrets by where they stand: URL userinfo, key=value, SQL PASSWORD '...'."""
    lowered = text.lower()
    for (pattern, replacement), needed in zip(_PATTERNS, _NEEDED, strict=True):
        if any(part in lowered for part in needed):
            text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=64)
def _forms(secret: str) -> frozenset[str]:
    """The ways a secret is written in text: as is, percent-encoded, escaped in a repr.

    Cached: the query log scrubs every statement it writes with the same few passwords.
    """
    from urllib.parse import quote, quote_plus

    forms = {secret, repr(secret)[1:-1]}
    # A lone surrogate has no UTF-8, hence no percent-encoded form.
    with contextlib.suppress(UnicodeEncodeError):
        forms |= {quote(secret, safe=""), quote_plus(secret)}
    return frozenset(forms)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Mask every known secret in text, and secrets standing as values (see describe()).

    A secret of 4 or more characters is replaced wherever it occurs; a shorter one only
    where it stands as a whole token (bounded by non-word characters, quotes, '=', ':' or
    '@'), so a password 'p' leaves the word 'port' readable.
    """
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(secret)
    for form in sorted(forms, key=len, reverse=True):  # a longer secret is masked whole
        if form not in text:
            continue
        if len(form) >= 4:
            text = text.replace(form, MASK)
        else:
            text = re.sub(rf"(?<![\w*]){re.escape(form)}(?![\w*])", MASK, text)
    return mask_secret_patterns(text)


def describe(
    exc: BaseException | str,
    secrets: Iterable[str | None] = (),
    *,
    limit: int = _MAX_DETAIL,
    first_line: bool = False,
) -> str:
    """The one way a driver's or library's error becomes text in a dbwire message.

    Whitespace normalised to one line, every known secret and every secret-shaped value
    masked, truncated to `limit` characters. `first_line` keeps only the first line
    (SQLAlchemy's later lines repeat the SQL and add a link), prefixed by the error type.
    """
    if isinstance(exc, str):
        text = exc
    else:
        text = str(exc)
        if first_line and not isinstance(exc, DbwireError):
            lines = text.strip().splitlines()
            text = lines[0] if lines else ""
            if not text.startswith("("):  # SQLAlchemy's text already names the driver error
                text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        elif not text.strip():
            text = type(exc).__name__  # asyncpg's TimeoutError has no message at all
    text = scrub(" ".join(text.split()), secrets)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scrub_exception(exc: BaseException | None, secrets: Iterable[str | None]) -> None:
    """Remove secrets from an exception and its whole chain, in place.

    Driver errors keep what they were given: psycopg's keeps the connection object
    (whose repr holds the password), SQLAlchemy's keeps the statement. The chain stays
    (the error types and codes help debugging); only the text that could leak is
    scrubbed and attributes whose repr would show a secret are cleared.
    """
    known = [s for s in secrets if s]
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        _scrub_one(exc, known)
        exc = exc.__cause__ or exc.__context__


def _leaks(value: object, known: list[str]) -> bool:
    try:
        shown = repr(value)
    except Exception:  # an object that cannot even be shown is dropped
        return True
    return scrub(shown, known) != shown


def _scrub_one(exc: BaseException, known: list[str]) -> None:
    # Some C exceptions refuse new args; their text is still scrubbed wherever shown.
    with suppress(Exception):
        exc.args = tuple(scrub(a, known) if isinstance(a, str) else a for a in exc.args)
    for name, value in list(getattr(exc, "__dict__", {}).items()):
        if name.startswith("__") or value is None or isinstance(value, BaseException):
            continue
        if isinstance(value, str):
            clean = scrub(value, known)
            if clean != value:
                _set(exc, name, clean)
        elif _leaks(value, known):
            _set(exc, name, None)


def _set(exc: BaseException, name: str, value: object) -> None:
    with suppress(Exception):  # a read-only slot: nothing more can be done here
        object.__setattr__(exc, name, value)
