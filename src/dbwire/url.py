"""URL parsing and masking: the one place a URL is turned into text a user may see."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from dbwire.errors import MASK, SECRET_KEYS, ConfigError, is_secret_key, mask_secret_patterns

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "is_secret_key",
    "mask_text",
    "mask_url",
    "mask_url_string",
    "parse_url",
    "query_secrets",
    "without_secrets",
]


def parse_url(raw: str, *, database: str | None = None) -> URL:
    """Parse a database URL, raising ConfigError (never echoing the password) when malformed."""
    try:
        return make_url(raw)
    except (ArgumentError, ValueError, TypeError):
        pass
    # Raised outside the except block: the parser's error would stay in __context__.
    shown = _without_userinfo(mask_text(str(raw)))
    where = f"database {database!r}: " if database else ""
    raise ConfigError(
        f"{where}could not parse URL {shown!r}; expected "
        "'scheme://user@host:port/database', e.g. 'postgresql://app@localhost/app' "
        "or 'sqlite:///path/to/file.db'",
        database=database,
    )


def query_secrets(url: URL) -> dict[str, str]:
    """The URL query's secret values (?password=, ?sslpassword=, ...), by key."""
    found: dict[str, str] = {}
    for key, value in url.query.items():
        if is_secret_key(key):
            values = (value,) if isinstance(value, str) else tuple(value)
            if values and values[-1]:
                found[key] = values[-1]
    return found


def without_secrets(url: URL) -> URL:
    """The URL without its password and without secret query keys (for an engine URL)."""
    secret_keys = [key for key in url.query if is_secret_key(key)]
    if secret_keys:
        url = url.difference_update_query(secret_keys)
    # URL.set(password=None) would mean "leave it as it is": replace the field instead.
    return url._replace(password=None)


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
    """Render a URL with its password and secret query values replaced by '***'."""
    if isinstance(url, URL):
        secret_keys = [key for key in url.query if is_secret_key(key)]
        if secret_keys:
            url = url.update_query_dict(dict.fromkeys(secret_keys, MASK))
        # SQLAlchemy percent-encodes the '*' of a query value; show the mask as written.
        return url.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)
    return mask_text(url)


def mask_url_string(raw: str) -> tuple[str, bool]:
    """(the URL with every secret masked, whether it held one), for the config models."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError, TypeError):
        shown = mask_text(raw)
        return shown, shown != raw
    if url.password is None and not query_secrets(url):
        return raw, False
    return mask_url(url), True


def mask_text(text: str) -> str:
    """Mask passwords of every URL inside free text, and secret-shaped values (key=value)."""
    return mask_secret_patterns(text)
