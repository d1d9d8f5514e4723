"""Quoting DuckDB identifiers and string literals, for names and paths put into SQL text.

Values that are secrets never go through here: they are bound parameters of a secret.
"""

from __future__ import annotations

from dbwire.errors import ConfigError


def quote_ident(name: str, *, what: str = "identifier") -> str:
    """Quote `name` as a DuckDB identifier; refuses what no identifier may hold."""
    if not isinstance(name, str) or not name or "\x00" in name or len(name) > 255:
        raise ConfigError(f"invalid {what} {name!r}: expected 1-255 characters without NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote `value` as a DuckDB string literal (for paths; never for secrets)."""
    if "\x00" in value:
        raise ConfigError(f"invalid value {value!r}: contains NUL")
    return "'" + value.replace("'", "''") + "'"
