"""dbwire's URL value: SQLAlchemy's URL grammar and API, without importing SQLAlchemy.

SQLAlchemy's `URL` lives in a package whose import costs about 0.13 s (its whole core
loads with it). Validating a configuration, masking a URL, resolving credentials and a
collect through DuckDB or connectorx need only the parsed fields, so dbwire parses with
this copy of SQLAlchemy 2's grammar (`sqlalchemy.engine.url._parse_url`, MIT licence) and
hands SQLAlchemy its own URL (`to_sqlalchemy()`) where an engine is built.
tests/test_url_type.py checks it against SQLAlchemy's parser and renderer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, quote, quote_plus, unquote

if TYPE_CHECKING:
    from sqlalchemy.engine import URL as SAURL

QueryValue = str | tuple[str, ...]
Query = Mapping[str, QueryValue]

_EMPTY: Query = MappingProxyType({})

_PATTERN = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


class URLParseError(ValueError):
    """The text is not `scheme://...` in SQLAlchemy's URL grammar."""


def _as_list(value: QueryValue | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _query(
    items: Mapping[str, QueryValue | Sequence[str]]
    | Iterable[tuple[str, QueryValue | Sequence[str]]]
    | None,
) -> Query:
    """An immutable query mapping: str keys, each value a str or a tuple of str."""
    if items is None:
        return _EMPTY
    pairs = items.items() if isinstance(items, Mapping) else items
    out: dict[str, QueryValue] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise TypeError("Query dictionary keys must be strings")
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            out[key] = tuple(value)
        else:
            raise TypeError("Query dictionary values must be strings or sequences of strings")
    return MappingProxyType(out)


def _port(port: Any) -> int | None:
    if port is None:
        return None
    try:
        return int(port)
    except TypeError:
        raise TypeError("Port argument must be an integer or None") from None


def _str(value: Any, name: str, *, optional: bool = True) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


class URL(NamedTuple):
    """A parsed database URL, field for field and method for method SQLAlchemy's `URL`
    (the part dbwire uses); immutable."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Query = _EMPTY

    @classmethod
    def create(
        cls,
        drivername: str,
        username: str | None = None,
        password: str | None = None,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        query: Mapping[str, QueryValue | Sequence[str]] | None = None,
    ) -> URL:
        """A URL from its parts, checked as SQLAlchemy's URL.create checks them."""
        return cls(
            _str(drivername, "drivername", optional=False),
            _str(username, "username"),
            password,
            _str(host, "host"),
            _port(port),
            _str(database, "database"),
            _query(query),
        )

    def set(
        self,
        drivername: str | None = None,
        username: str | None = None,
        password: str | None = None,
        host: str | None = None,
        port: int | None = None,
        database: str | None = None,
        query: Mapping[str, QueryValue | Sequence[str]] | None = None,
    ) -> URL:
        """A copy with the given parts replaced (None: keep that part)."""
        given = {
            "drivername": drivername,
            "username": username,
            "password": password,
            "host": host,
            "port": port,
            "database": database,
        }
        changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        for name in ("drivername", "username", "host", "database"):
            if name in changes:
                _str(changes[name], name)
        if "port" in changes:
            changes["port"] = _port(changes["port"])
        if query is not None:
            changes["query"] = _query(query)
        return self._replace(**changes)

    def update_query_dict(
        self, query_parameters: Mapping[str, QueryValue | Sequence[str]], append: bool = False
    ) -> URL:
        """A copy with these query keys set (or, with append, added to)."""
        return self.update_query_pairs(query_parameters.items(), append=append)

    def update_query_pairs(
        self, pairs: Iterable[tuple[str, QueryValue | Sequence[str]]], append: bool = False
    ) -> URL:
        """A copy with these query pairs set (or, with append, added to)."""
        new_keys: dict[str, str | list[str]] = {}
        for key, value in pairs:
            if key in new_keys:
                new_keys[key] = _as_list(new_keys[key]) + _as_list(value)
            else:
                new_keys[key] = value if isinstance(value, str) else list(value)
        if append:
            merged: dict[str, Any] = {}
            for key, value in new_keys.items():
                if key in self.query:
                    merged[key] = tuple(_as_list(self.query[key]) + _as_list(value))
                else:
                    merged[key] = value
            merged.update({k: v for k, v in self.query.items() if k not in new_keys})
        else:
            merged = {**self.query, **new_keys}
        return self.set(query=merged)

    def difference_update_query(self, names: Iterable[str]) -> URL:
        """A copy without these query keys."""
        drop = set(names)
        if not drop.intersection(self.query):
            return self
        kept = {k: v for k, v in self.query.items() if k not in drop}
        return self._replace(query=MappingProxyType(kept))

    def render_as_string(self, hide_password: bool = True) -> str:
        """The URL as text, as SQLAlchemy renders it (password shown as *** unless asked)."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(str(self.password), safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += ":" + str(self.port)
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            text += "?" + "&".join(
                f"{quote_plus(key)}={quote_plus(element)}"
                for key in sorted(self.query)
                for element in _as_list(self.query[key])
            )
        return text

    def get_backend_name(self) -> str:
        """The scheme without its driver: 'postgresql+psycopg' -> 'postgresql'."""
        return self.drivername.split("+")[0]

    def to_sqlalchemy(self) -> SAURL:
        """SQLAlchemy's URL with the same parts, for create_engine and dialect lookups."""
        from sqlalchemy.engine import URL as SAURL

        return SAURL.create(
            self.drivername,
            self.username,
            self.password,
            self.host,
            self.port,
            self.database,
            self.query,
        )

    def __str__(self) -> str:
        return self.render_as_string()

    def __repr__(self) -> str:
        return self.render_as_string()

    def __hash__(self) -> int:
        return hash(str(self))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, URL)
            and self.drivername == other.drivername
            and self.username == other.username
            and self.password == other.password
            and self.host == other.host
            and self.database == other.database
            and dict(self.query) == dict(other.query)
            and self.port == other.port
        )

    def __ne__(self, other: object) -> bool:
        return not self == other


def make_url(text: str) -> URL:
    """Parse `text` as SQLAlchemy's make_url parses it; URLParseError when it does not parse."""
    match = _PATTERN.match(text)
    if match is None:
        raise URLParseError("Could not parse SQLAlchemy URL from given URL string")
    parts = match.groupdict()
    query: dict[str, str | list[str]] | None = None
    if parts["query"] is not None:
        query = {}
        for key, value in parse_qsl(parts["query"]):
            if key in query:
                query[key] = [*_as_list(query[key]), value]
            else:
                query[key] = value
    for name in ("username", "password", "database"):
        if parts[name] is not None:
            parts[name] = unquote(parts[name])
    port = parts["port"]
    return URL.create(
        parts["name"],
        parts["username"],
        parts["password"],
        parts["ipv4host"] or parts["ipv6host"],
        # '' (as in 'h:/db') goes on as SQLAlchemy passes it, and int('') raises
        int(port) if port else port,  # type: ignore[arg-type]
        parts["database"],
        query,
    )
