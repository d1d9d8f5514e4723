"""URL parsing and masking: the one place a URL is turned into text a user may see."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbwire.errors import ConfigError

MASK = "***"

# Matches the userinfo password of anything URL-shaped, for text we did not build ourselves.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)@")


def parse_url(raw: str, *, database: str | None = None) -> URL:
    """Parse a database URL, raising ConfigError (never echoing the password) when malformed."""
    try:
        return make_url(raw)
    except (ArgumentError, ValueError, TypeError):
        shown = _without_userinfo(mask_text(str(raw)))
        where = f"database {database!r}: " if database else ""
        raise ConfigError(
            f"{where}could not parse URL {shown!r}; expected "
            "'scheme://user@host:port/database', e.g. 'postgresql://app@localhost/app' "
            "or 'sqlite:///path/to/file.db'",
            database=database,
        ) from None


def _without_userinfo(text: str) -> str:
    """A URL that did not parse, with everything between '://' and the last '@' masked.

    mask_text's pattern needs a well-formed userinfo; in a malformed URL the password may
    sit anywhere before an '@' (after a space, a second colon ...), so hide all of it.
    """
    head, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    # The last '@': a password may hold '/' or '@' itself; hiding too much is the safe side.
    return f"{head}://{MASK}@{rest.rsplit('@', 1)[1]}"


def mask_url(url: URL | str) -> str:
    """Render a URL with its password replaced by '***'."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return mask_text(url)


def mask_text(text: str) -> str:
    """Mask passwords of every URL inside free text."""
    return _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
