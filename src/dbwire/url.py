"""URL parsing and masking: the one place a URL is turned into text a user may see."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from dbwire.errors import MASK, SECRET_KEYS, ConfigError, is_secret_key, mask_secret_patterns
from dbwire.url_type import URL, make_url

__all__ = [
    "MASK",
    "SECRET_KEYS",
    "is_secret_key",
    "libpq_url",
    "mask_text",
    "mask_url",
    "mask_url_string",
    "parse_url",
    "query_secrets",
    "without_secrets",
]


_PG_SCHEMES = ("postgresql", "postgres", "pg")
# scheme://[userinfo@]hosts[/path][?query]; userinfo as SQLAlchemy reads it (the password
# runs to the '@').
_AUTHORITY = re.compile(
    r"^(?P<head>[A-Za-z0-9+._-]+://)(?P<userinfo>[^:/?@]*(?::[^@]*)?@)?"
    r"(?P<hosts>[^/?]*)(?P<tail>.*)$",
    re.DOTALL,
)


def _is_pg(raw: str) -> bool:
    scheme = raw.split("://", 1)[0].split("+", 1)[0].lower()
    return scheme in _PG_SCHEMES


def _split_host_port(entry: str) -> tuple[str, str]:
    """'h:5432' -> ('h', '5432'); '[::1]:5432' -> ('::1', '5432'); a socket path is kept whole."""
    if entry.startswith("["):
        close = entry.find("]")
        if close > 0:
            rest = entry[close + 1 :]
            return entry[1:close], rest[1:] if rest.startswith(":") else ""
        return entry, ""
    if entry.startswith("/") or entry.count(":") != 1:
        # A socket directory written plainly (in the query) may hold ':', as Cloud SQL's
        # /cloudsql/project:region:instance does; a bare IPv6 address holds several. In
        # the authority a socket path is percent-encoded, so a literal ':' starts the port.
        return entry, ""
    host, _, port = entry.partition(":")
    return host, port


def _pg_canonical(raw: str) -> str:
    """A PostgreSQL URL with its host list in the query, where SQLAlchemy's parser reads it.

    libpq's comma list in the authority (`h1:5432,h2:5433`), repeated `?host=h:p` keys
    (SQLAlchemy's form) and percent-encoded socket hosts all become `?host=h1,h2&port=p1,p2`,
    the form libpq itself takes; a single TCP host stays in the authority.
    """
    match = _AUTHORITY.match(raw)
    if match is None:
        return raw
    head, userinfo, hosts, tail = match.group("head", "userinfo", "hosts", "tail")
    path, sep, query = tail.partition("?")
    pairs = [part for part in query.split("&") if part] if sep else []
    query_hosts: list[str] = []
    query_ports: list[str] = []
    rest: list[str] = []
    for part in pairs:
        key, _, value = part.partition("=")
        if key == "host":
            query_hosts.append(value)
        elif key == "port":
            query_ports.append(value)
        else:
            rest.append(part)
    entries = [_split_host_port(e) for e in hosts.split(",")] if hosts else []
    in_authority = len(entries) == 1 and not unquote(entries[0][0]).startswith("/")
    if not query_hosts and not query_ports and (not entries or in_authority):
        return raw  # nothing SQLAlchemy would misread
    host_list = [unquote(h) for h, _ in entries]
    port_list = [p for _, p in entries]
    if query_hosts:
        # libpq: a query keyword given after the authority replaces it.
        split = [_split_host_port(unquote(v)) for v in ",".join(query_hosts).split(",")]
        host_list = [h for h, _ in split]
        if any(p for _, p in split):
            port_list = [p for _, p in split]
        elif not query_ports:
            port_list = []
    if query_ports:
        port_list = [unquote(",".join(query_ports))]
    extra = [f"host={quote(','.join(host_list), safe='/:,[]')}"] if host_list else []
    if any(port_list):
        extra.append(f"port={quote(','.join(port_list), safe=',')}")
    return f"{head}{userinfo or ''}{path}?{'&'.join(extra + rest)}"


def parse_url(raw: str, *, database: str | None = None) -> URL:
    """Parse a database URL, raising ConfigError (never echoing the password) when malformed.

    A PostgreSQL URL's hosts (one or several, TCP or socket) end up as libpq would read
    them: see _pg_canonical.
    """
    try:
        return make_url(_pg_canonical(raw) if _is_pg(raw) else raw)
    except (ValueError, TypeError):
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
        text = url.render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)
        return _readable_query(text)
    return mask_text(url)


def libpq_url(
    scheme: str,
    *,
    user: str | None,
    password: str | None,
    hosts: list[tuple[str, int | None]],
    dbname: str | None,
    query: dict[str, str],
) -> str:
    """A PostgreSQL URL psql and dbwire both read back: one TCP host in the authority,
    socket directories and host lists in the query (`?host=/run/postgresql&port=5432`).

    `password` is written as given: pass MASK to show that one exists.
    """
    userinfo = quote(user or "", safe="")
    if password is not None:
        userinfo += ":" + (password if password == MASK else quote(password, safe=""))
    if userinfo:
        userinfo += "@"
    items = dict(query)
    authority = ""
    single = len(hosts) == 1 and hosts[0][0] and not hosts[0][0].startswith("/")
    if single:
        host, port = hosts[0]
        authority = f"[{host}]" if ":" in host else quote(host, safe="")
        if port:
            authority += f":{port}"
    elif hosts:
        items = {
            "host": ",".join(host for host, _ in hosts),
            "port": ",".join(str(port or "") for _, port in hosts),
            **items,
        }
    text = f"{scheme}://{userinfo}{authority}/{quote(dbname or '', safe='')}"
    if items:
        text += "?" + "&".join(
            f"{quote(k, safe='')}={quote(v, safe='/:,')}" for k, v in items.items()
        )
    return text


def _readable_query(text: str) -> str:
    """Socket directories and host lists in the query as people (and psql) write them."""
    head, sep, query = text.partition("?")
    if not sep:
        return text
    for encoded, plain in (("%2F", "/"), ("%2C", ","), ("%3A", ":")):
        query = query.replace(encoded, plain)
    return f"{head}?{query}"


def plainly_secret_free(raw: str) -> bool:
    """True for a URL that cannot hold a secret: no query, no `=`, no `:` in its userinfo.

    Checked before parsing: a config of hundreds of databases masks every URL (and each
    replica's) at load, and parsing them was a fifth of load_config's time.
    """
    start = raw.find("://")
    if start < 0 or "?" in raw or "=" in raw:
        return False
    at = raw.rfind("@")
    return at < start or ":" not in raw[start + 3 : at]


def mask_url_string(raw: str) -> tuple[str, bool]:
    """(the URL with every secret masked, whether it held one), for the config models."""
    if plainly_secret_free(raw):
        return raw, False
    try:
        url = make_url(_pg_canonical(raw) if _is_pg(raw) else raw)
    except (ValueError, TypeError):
        shown = mask_text(raw)
        return shown, shown != raw
    if url.password is None and not query_secrets(url):
        return raw, False
    return mask_url(url), True


def mask_text(text: str) -> str:
    """Mask passwords of every URL inside free text, and secret-shaped values (key=value)."""
    return mask_secret_patterns(text)
