"""Parsing of libpq connection strings (`key=value` and `postgresql://` URIs) as libpq does."""

from __future__ import annotations

from collections.abc import Mapping

from dbwire.credentials._libpq import (
    C_SPACE,
    SECRET_KEYWORDS,
    Keyword,
    keywords,
    to_bytes,
    to_str,
    version_or_loaded,
)
from dbwire.errors import ConfigError, DbwireError, scrub

__all__ = ["is_connection_string", "parse_conninfo", "scrub_error", "store_option"]

_URI_PREFIXES = ("postgresql://", "postgres://")
_DOCS = "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS"
#: libpq 18 started to trim spaces around URI components and to reject inner ones.
_URI_TRIMS_SPACES_SINCE = 18


def _quote_name(name: str) -> str:
    # Keyword names are echoed so the user can find the typo; long junk is cut
    # so that a pasted secret is never echoed whole.
    shown = name if len(name) <= 40 else name[:40] + "..."
    return '"' + shown.encode("unicode_escape").decode("ascii") + '"'


def store_option(
    options: dict[str, str],
    keyword: str,
    value: str,
    known: Mapping[str, Keyword],
    *,
    where: str = "connection string",
) -> str:
    """conninfo_storeval(): store one keyword (translating requiressl) and return its name.

    Raises ConfigError for a keyword libpq does not know.
    """
    if keyword == "requiressl":
        # libpq keeps accepting the pre-9.x spelling and maps it onto sslmode.
        keyword = "sslmode"
        value = "require" if value.startswith("1") else "prefer"
    if keyword not in known:
        raise ConfigError(
            f"invalid connection option {_quote_name(keyword)} in the {where}; "
            f"fix the spelling (the valid keywords are listed at {_DOCS})"
        )
    # A later setting of the same keyword replaces an earlier one, as in libpq.
    options.pop(keyword, None)
    options[keyword] = value
    return keyword


def is_connection_string(value: str) -> bool:
    """recognized_connection_string(): a URI, or anything with an `=` in it."""
    return value.startswith(_URI_PREFIXES) or "=" in value


def parse_conninfo(conninfo: str, *, libpq_version: int | None = None) -> dict[str, str]:
    """Parse a conninfo string like libpq's PQconninfoParse(): explicit settings only.

    `postgresql://` and `postgres://` (case-sensitive, no leading blanks) select the
    URI grammar; anything else is the `key = value` grammar with single quotes and
    backslash escapes.  `libpq_version` defaults to the libpq psycopg loads.
    Raises ConfigError for malformed input; no message ever quotes a value.
    """
    libpq_version = version_or_loaded(libpq_version)
    known = keywords(libpq_version)
    if "\0" in conninfo:
        raise ConfigError(
            "the connection string contains a NUL character; remove it "
            "(libpq would silently cut the string there)"
        )
    options: dict[str, str] = {}
    try:
        if conninfo.startswith(_URI_PREFIXES):
            _parse_uri(conninfo, options, known, libpq_version)
        else:
            _parse_keyword_value(conninfo, options, known)
    except ConfigError as exc:
        # A malformed part may happen to equal a secret parsed before it.
        error = scrub_error(exc, [v for k, v in options.items() if k in SECRET_KEYWORDS])
    else:
        return options
    # Raised outside the except block so the unscrubbed original is not chained.
    raise error


def scrub_error(exc: DbwireError, secrets: list[str]) -> DbwireError:
    """A copy of exc, of the same class, with every secret in its message replaced by ***."""
    # Longest first, so a secret containing a shorter one is replaced whole.
    ordered: list[str] = sorted(set(secrets), key=len, reverse=True)
    message = scrub(str(exc), ordered)
    return type(exc)(message, database=exc.database)


def _parse_keyword_value(
    conninfo: str, options: dict[str, str], known: Mapping[str, Keyword]
) -> None:
    text = conninfo
    n = len(text)
    i = 0
    while i < n:
        if text[i] in C_SPACE:
            i += 1
            continue
        name_start = i
        name_end = -1
        while i < n:
            if text[i] == "=":
                break
            if text[i] in C_SPACE:
                name_end = i
                i += 1
                while i < n and text[i] in C_SPACE:
                    i += 1
                break
            i += 1
        if name_end < 0:
            name_end = i
        name = text[name_start:name_end]
        if i >= n or text[i] != "=":
            shown = _quote_name(name) if name in known else f"the word at offset {name_start}"
            raise ConfigError(
                f'missing "=" after {shown} in the connection string; '
                "write key=value pairs, and quote values containing spaces as key='a value'"
            )
        i += 1
        # libpq skips blanks after '=', so "host= user=x" sets host to "user=x".
        while i < n and text[i] in C_SPACE:
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise ConfigError(
                        "unterminated quoted string in the connection string; "
                        "close the value with ' and escape quotes inside it as \\'"
                    )
                ch = text[i]
                if ch == "\\":
                    i += 1
                    if i < n:
                        value.append(text[i])
                        i += 1
                    continue
                if ch == "'":
                    i += 1
                    break
                value.append(ch)
                i += 1
        else:
            while i < n:
                ch = text[i]
                if ch in C_SPACE:
                    i += 1
                    break
                if ch == "\\":
                    i += 1
                    if i < n:
                        value.append(text[i])
                        i += 1
                else:
                    value.append(ch)
                    i += 1
        store_option(options, name, "".join(value), known)


def _hexdigit(ch: str) -> int | None:
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    if "a" <= ch <= "f":
        return ord(ch) - ord("a") + 10
    if "A" <= ch <= "F":
        return ord(ch) - ord("A") + 10
    return None


def _uri_decode(text: str, what: str, libpq_version: int) -> str:
    """conninfo_uri_decode(): percent-decoding on bytes; %00 is refused."""
    trims = libpq_version >= _URI_TRIMS_SPACES_SINCE
    out = bytearray()
    i = 0
    n = len(text)
    if trims:
        while i < n and text[i] == " ":
            i += 1
    while i < n:
        ch = text[i]
        if ch != "%":
            if trims and ch == " ":
                break
            out += to_bytes(ch)
            i += 1
            continue
        hi = _hexdigit(text[i + 1]) if i + 1 < n else None
        lo = _hexdigit(text[i + 2]) if hi is not None and i + 2 < n else None
        if hi is None or lo is None:
            raise ConfigError(
                f"invalid percent-encoded token in the {what} of the connection URI; "
                "write a literal % as %25"
            )
        byte = hi << 4 | lo
        if byte == 0:
            raise ConfigError(f"forbidden value %00 in the {what} of the connection URI; remove it")
        out.append(byte)
        i += 3
    if trims:
        while i < n and text[i] == " ":
            i += 1
        if i < n:
            raise ConfigError(
                f"unexpected spaces found in the {what} of the connection URI; "
                "use percent-encoded spaces (%20) instead"
            )
    return to_str(bytes(out))


def _parse_uri(
    uri: str, options: dict[str, str], known: Mapping[str, Keyword], libpq_version: int
) -> None:
    prefix = next(p for p in _URI_PREFIXES if uri.startswith(p))
    rest = uri[len(prefix) :]
    n = len(rest)

    def position(index: int) -> int:
        # libpq reports 1-based byte offsets into the whole URI.
        return len(to_bytes(uri[: len(prefix) + index])) + 1

    # userinfo is whatever precedes the first '@' met before any '/': libpq does not
    # stop at '?', so "postgresql://h?user=a@b" has the user name "h?user=a".
    stop = 0
    while stop < n and rest[stop] not in "@/":
        stop += 1
    p = 0
    if stop < n and rest[stop] == "@":
        colon = 0
        while rest[colon] not in ":@":
            colon += 1
        user = rest[:colon]
        if user:
            store_option(options, "user", _uri_decode(user, "user name", libpq_version), known)
        if rest[colon] == ":":
            password = rest[colon + 1 : stop]
            if password:
                store_option(
                    options, "password", _uri_decode(password, "password", libpq_version), known
                )
        p = stop + 1

    hostbuf: list[str] = []
    portbuf: list[str] = []
    prevchar = ""
    while True:
        if p < n and rest[p] == "[":
            close = rest.find("]", p + 1)
            if close < 0:
                raise ConfigError(
                    'end of string reached when looking for the matching "]" of an IPv6 '
                    "host address in the connection URI; close the address as [::1]"
                )
            if close == p + 1:
                raise ConfigError(
                    "IPv6 host address may not be empty in the connection URI; "
                    "write an address between [ and ]"
                )
            host = rest[p + 1 : close]
            p = close + 1
            if p < n and rest[p] not in ":/?,":
                raise ConfigError(
                    f"unexpected character {rest[p]!r} at position {position(p)} in the "
                    'connection URI (expected ":" or "/" after an IPv6 address)'
                )
        else:
            start = p
            while p < n and rest[p] not in ":/?,":
                p += 1
            host = rest[start:p]
        prevchar = rest[p] if p < n else ""
        hostbuf.append(host)
        if prevchar == ":":
            p += 1
            start = p
            while p < n and rest[p] not in "/?,":
                p += 1
            portbuf.append(rest[start:p])
            prevchar = rest[p] if p < n else ""
        if prevchar != ",":
            break
        p += 1
        hostbuf.append(",")
        portbuf.append(",")

    hosts = "".join(hostbuf)
    ports = "".join(portbuf)
    if hosts:
        store_option(options, "host", _uri_decode(hosts, "host list", libpq_version), known)
    if ports:
        store_option(options, "port", _uri_decode(ports, "port list", libpq_version), known)

    if prevchar and prevchar != "?":
        p += 1
        start = p
        while p < n and rest[p] != "?":
            p += 1
        dbname = rest[start:p]
        prevchar = rest[p] if p < n else ""
        # An empty path leaves dbname unset, so PGDATABASE still applies.
        if dbname:
            store_option(
                options, "dbname", _uri_decode(dbname, "database name", libpq_version), known
            )

    if prevchar:
        _parse_uri_query(rest[p + 1 :], options, known, libpq_version)


def _parse_uri_query(
    params: str, options: dict[str, str], known: Mapping[str, Keyword], libpq_version: int
) -> None:
    n = len(params)
    i = 0
    while i < n:
        key_start = i
        key_end = -1
        value_start = -1
        j = i
        while True:
            ch = params[j] if j < n else ""
            if ch == "=":
                if value_start >= 0:
                    raise ConfigError(
                        'extra key/value separator "=" in the URI query parameter '
                        f"{_quote_name(params[key_start:key_end])}; percent-encode a literal "
                        "= in a value as %3D"
                    )
                key_end = j
                value_start = j + 1
                j += 1
            elif ch in ("&", ""):
                value_end = j
                if ch == "&":
                    j += 1
                if value_start < 0:
                    raise ConfigError(
                        f'missing key/value separator "=" in a URI query parameter at '
                        f"offset {key_start} of the query; write ?name=value&name=value"
                    )
                break
            else:
                j += 1
        keyword = _uri_decode(params[key_start:key_end], "query parameter name", libpq_version)
        value = _uri_decode(
            params[value_start:value_end], f"query parameter {_quote_name(keyword)}", libpq_version
        )
        if keyword == "ssl" and value == "true":
            # libpq's JDBC compatibility spelling.
            keyword, value = "sslmode", "require"
        if keyword != "requiressl" and keyword not in known:
            raise ConfigError(
                f"invalid URI query parameter {_quote_name(keyword)}; fix the spelling "
                f"(the valid keywords are listed at {_DOCS})"
            )
        store_option(options, keyword, value, known, where="connection URI")
        i = j
