"""What a backend's drivers accept: URL query keys, connect_args keys and host names.

Each backend declares its query keys (`QueryKey`, sync and async side) and the
helpers here refuse everything else with one ConfigError that names the database,
the key and what is accepted, before any connection is attempted. A value is echoed
only for keys with a checked, non-secret format (numbers, choices), never otherwise.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dbwire.errors import ConfigError

# Values longer than this are cut in messages: a message names the problem, not the input.
_SHOWN = 60


@dataclass(frozen=True)
class QueryKey:
    """One URL query key a backend takes.

    `check` raises ValueError (its text is the fix) for a malformed value; `sync` and
    `async_` say which driver takes it (the other side refuses it at engine creation).
    """

    check: Callable[[str], object] | None = None
    sync: bool = True
    async_: bool = True


def as_int(value: str) -> int:
    """A whole number, as drivers parse it."""
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def as_positive_float(value: str) -> float:
    """A number of seconds greater than zero."""
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 10") from None
    if not number > 0 or number == float("inf"):
        raise ValueError("expected a number of seconds greater than 0")
    return number


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def as_bool(value: str) -> bool:
    """true/false, 1/0, yes/no, on/off."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def one_of(*choices: str, fold: bool = False) -> Callable[[str], str]:
    """A check accepting exactly one of choices (case-insensitive with fold)."""

    def check(value: str) -> str:
        key = value.lower() if fold else value
        if key not in choices:
            raise ValueError(f"expected one of: {', '.join(choices)}")
        return key

    return check


def accepted_text(key: str, accepted: Collection[str]) -> str:
    """'accepted: a, b, c', or for a long list its size and the closest names."""
    names = sorted(accepted)
    close = difflib.get_close_matches(key, names, n=3) if isinstance(key, str) else []
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    if not names:
        return "accepted: none"
    if len(names) <= 40:
        return f"accepted: {', '.join(names)}{hint}"
    return f"accepted: {len(names)} names{hint}"


def shown(value: object) -> str:
    """A value for a message: repr, cut short (surrogates and control characters escaped)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...'"


def single(value: str | tuple[str, ...]) -> str | None:
    """The one value of a query key, or None when it was given several times."""
    if isinstance(value, tuple):
        return value[0] if len(value) == 1 else None
    return value


def check_query(
    database: str,
    label: str,
    query: Mapping[str, str | tuple[str, ...]],
    accepted: Mapping[str, QueryKey],
    *,
    is_async: bool | None = None,
    drivers: str = "",
) -> None:
    """Refuse URL query keys the drivers do not take, and malformed values of the ones they do.

    is_async None checks a key against both sides (at config time); True/False checks
    it against that side only (when its engine is created).
    """
    for key, raw in query.items():
        spec = accepted.get(key)
        if spec is None:
            raise ConfigError(
                f"database {database!r}: URL query key {shown(key)} is not taken by the "
                f"{label} drivers{drivers}; {accepted_text(key, accepted)}. "
                "Fix: remove it from the URL (or from options), or use an accepted name",
                database=database,
            )
        if is_async is not None and not (spec.async_ if is_async else spec.sync):
            side, other = ("async", "sync") if is_async else ("sync", "async")
            raise ConfigError(
                f"database {database!r}: URL query key {key!r} is taken only by the "
                f"{other} {label} driver, not the {side} one; remove it from the URL "
                f"(or options) to use the {side} engine",
                database=database,
            )
        value = single(raw)
        if value is None:
            raise ConfigError(
                f"database {database!r}: URL query key {key!r} is given more than once; "
                "give it once",
                database=database,
            )
        if spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:
                raise ConfigError(
                    f"database {database!r}: URL query {key}={shown(value)} is not valid: {exc}",
                    database=database,
                ) from None


def check_no_nul(database: str, url: Any) -> None:
    """Refuse a NUL character in any part of the URL: C drivers cut the text there (DuckDB
    would open another file) or fail with a bare ValueError."""
    parts = {
        "host": url.host,
        "user": url.username,
        "password": url.password,  # named, never shown
        "database": url.database,
        **{f"query key {k!r}": v for k, v in url.query.items()},
    }
    for part, value in parts.items():
        values = value if isinstance(value, tuple) else (value,)
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise ConfigError(
                f"database {database!r}: the URL's {part} contains a NUL character (\\x00), "
                "which no driver can take; remove it from the URL",
                database=database,
            )
    if any("\x00" in k for k in url.query):
        raise ConfigError(
            f"database {database!r}: a URL query key contains a NUL character (\\x00); "
            "remove it from the URL",
            database=database,
        )


def check_hosts(database: str, hosts: Iterable[str]) -> None:
    """Refuse host names that no resolver accepts (an empty or over-long label, bad IDNA)."""
    for host in hosts:
        if not host or host.startswith("/") or host.startswith("["):
            continue  # a Unix socket directory, or a bracketed IPv6 address
        try:
            encoded = _idna(host)
        except UnicodeError:
            raise ConfigError(
                f"database {database!r}: host {shown(host)} is not a valid host name "
                "(each dot-separated label must be 1 to 63 characters); fix the host",
                database=database,
            ) from None
        if len(encoded) > 253:
            raise ConfigError(
                f"database {database!r}: host {shown(host)} is longer than 253 characters; "
                "fix the host",
                database=database,
            )


def parameter_names(func: Callable[..., Any]) -> frozenset[str] | None:
    """Keyword parameters of a driver's connect(); None when it takes **kwargs or has none."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    names: set[str] = set()
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            names.add(parameter.name)
    names.discard("self")
    return frozenset(names)


def check_connect_args(
    database: str, driver: str, given: Collection[str], accepted: Collection[str]
) -> None:
    """Refuse connect_args keys the driver's connect() has no parameter for."""
    for key in given:
        if key not in accepted:
            raise ConfigError(
                f"database {database!r}: connect_args key {shown(key)} is not a parameter of "
                f"{driver}; {accepted_text(key, accepted)}. Fix: remove it or correct its name",
                database=database,
            )


def _idna(host: str) -> bytes:
    """`host.encode("idna")`, with the codec's own ASCII rules done here for an ASCII
    name: the codec module (with stringprep and unicodedata, about 3 ms) loads only for
    a name that needs it."""
    if not host.isascii():
        return host.encode("idna")
    labels = host.split(".")
    # The codec's ASCII path: every label but the last 1-63 characters, the last
    # (empty after a trailing dot) under 64.
    if any(not 0 < len(label) < 64 for label in labels[:-1]) or len(labels[-1]) >= 64:
        raise UnicodeError("label empty or too long")
    return host.encode("ascii")
