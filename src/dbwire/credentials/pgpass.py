"""The .pgpass password file: parsing and lookup with libpq's exact matching rules."""

from __future__ import annotations

import errno
import logging
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import SecretStr

from dbwire.credentials._libpq import (
    DEF_PGPORT_STR,
    DEFAULT_HOST,
    DEFAULT_PGSOCKET_DIR,
    is_unixsock_path,
    to_bytes,
    to_str,
)

__all__ = [
    "PgpassEntry",
    "PgpassWarning",
    "iter_pgpass_lines",
    "lookup_pgpass",
    "parse_pgpass",
    "pgpass_host_key",
]

logger = logging.getLogger(__name__)

#: PQExpBuffer's initial size; the line reader below reproduces libpq's buffer
#: growth because a NUL byte in a line makes the result depend on it.
_INITIAL_BUFFER = 256


class PgpassWarning(UserWarning):
    """A password file was ignored because it is not a plain file or is too open."""


@dataclass(frozen=True)
class PgpassEntry:
    """One well-formed .pgpass line; a field of None is the `*` wildcard."""

    host: str | None
    port: str | None
    dbname: str | None
    user: str | None
    password: SecretStr = field(repr=True)
    line: int

    def matches(self, host: str, port: str, dbname: str, user: str) -> bool:
        """True if this entry applies; arguments are libpq's search keys (see pgpass_host_key)."""
        return all(
            pattern is None or pattern == value
            for pattern, value in (
                (self.host, host),
                (self.port, port),
                (self.dbname, dbname),
                (self.user, user),
            )
        )


def iter_pgpass_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (first physical line number, logical line) exactly as passwordFromFile reads them.

    libpq appends fgets() chunks to a growing buffer and measures them with
    strlen(), so a NUL byte drops the rest of its chunk and glues the line to the
    next one.  The buffer arithmetic is reproduced so those cases agree too.
    """
    maxlen = _INITIAL_BUFFER
    buf = bytearray()
    pos = 0
    size = len(data)
    eof = False
    physical = 1
    start_line = 1
    while not eof:
        needed = len(buf) + 128 + 1
        if needed > maxlen:
            while needed > maxlen:
                maxlen *= 2
        limit = maxlen - len(buf) - 1
        if pos >= size:
            # fgets() returns NULL and whatever is buffered is dropped.
            break
        window = data[pos : pos + limit]
        newline = window.find(b"\n")
        if newline >= 0:
            chunk = window[: newline + 1]
        else:
            chunk = window
            if len(window) < limit:
                eof = True
        pos += len(chunk)
        if not buf:
            start_line = physical
        if chunk.endswith(b"\n"):
            physical += 1
        buf += chunk.split(b"\0", 1)[0]
        if not (buf and buf.endswith(b"\n")) and not eof:
            continue
        yield start_line, bytes(buf)
        buf.clear()


def _split_entry(line: bytes) -> tuple[list[bytes | None], bytes] | None:
    """Split host:port:db:user:password; None when fewer than four fields are terminated."""
    fields: list[bytes | None] = []
    i = 0
    n = len(line)
    while len(fields) < 4:
        # pwdfMatchesString() only treats "*" as a wildcard when it is the whole field.
        if line[i : i + 2] == b"*:":
            fields.append(None)
            i += 2
            continue
        value = bytearray()
        terminated = False
        while i < n:
            ch = line[i]
            if ch == 0x5C:  # backslash: the next byte is literal
                i += 1
                if i >= n:
                    return None
                value.append(line[i])
                i += 1
                continue
            if ch == 0x3A:  # unescaped ':' ends the field
                i += 1
                terminated = True
                break
            value.append(ch)
            i += 1
        if not terminated:
            return None
        fields.append(bytes(value))
    return fields, _password_at(line, i)


def _entries(data: bytes) -> Iterator[tuple[int, list[bytes | None], bytes]]:
    for number, raw in iter_pgpass_lines(data):
        if raw.startswith(b"#"):
            continue
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        split = _split_entry(line)
        if split is not None:
            yield number, split[0], split[1]


def parse_pgpass(text: str | bytes) -> list[PgpassEntry]:
    """Parse .pgpass content into its well-formed entries, with 1-based line numbers.

    Comment lines (`#` in the first column), blank lines and lines with fewer than
    four `:`-terminated fields are skipped, as libpq skips them.  `\\:` and `\\\\`
    are unescaped; `*` alone is a wildcard (None), `\\*` a literal star.  The
    fields are split where libpq would for keys without `:`; a lookup with such a
    key (an IPv6 host, say) compares it with the raw line instead, as libpq does.
    """
    data = to_bytes(text) if isinstance(text, str) else text
    return [
        PgpassEntry(
            host=None if fields[0] is None else to_str(fields[0]),
            port=None if fields[1] is None else to_str(fields[1]),
            dbname=None if fields[2] is None else to_str(fields[2]),
            user=None if fields[3] is None else to_str(fields[3]),
            password=SecretStr(to_str(password)),
            line=number,
        )
        for number, fields, password in _entries(data)
    ]


def pgpass_host_key(host: str | None) -> str:
    """The host name libpq searches for: 'localhost' for no host or the default socket dir.

    Only the exact compiled-in socket directory maps to localhost: "/var/run/postgresql/"
    (trailing slash) or any other socket directory is matched literally.
    """
    if not host:
        return DEFAULT_HOST
    if is_unixsock_path(host) and host == DEFAULT_PGSOCKET_DIR:
        return DEFAULT_HOST
    return host


def _read_passfile(passfile: str, *, stacklevel: int = 3) -> bytes | None:
    """Open the file the way libpq does: stat, refuse non-plain or group/world-accessible files.

    `stacklevel` points the PgpassWarning at the public caller (resolve_pg's or
    lookup_pgpass's).
    """
    # A C string stops at the first NUL.
    path = passfile.split("\0", 1)[0]
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        message = f'password file "{path}" is not a plain file'
        warnings.warn(message, PgpassWarning, stacklevel=stacklevel)
        logger.warning("%s; it is ignored", message)
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = (
            f'password file "{path}" has group or world access; '
            "permissions should be u=rw (0600) or less"
        )
        warnings.warn(message, PgpassWarning, stacklevel=stacklevel)
        logger.warning("%s; it is ignored (fix: chmod 0600 %s)", message, path)
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        # libpq silently ignores a password file it cannot open; say why in the log.
        if exc.errno != errno.ENOENT:
            logger.warning(
                'password file "%s" could not be read (%s); it is ignored', path, exc.strerror
            )
        return None


def _match_field(line: bytes, pos: int, token: bytes) -> int | None:
    """pwdfMatchesString(): where the next field starts if line[pos:] begins with token.

    libpq walks the line and the search key together, byte by byte: a `:` in the
    key is matched by a `:` in the line, escaped or not, so the key `we:ird`
    matches the line fields `we:ird` as well as `we\\:ird`.  Only an unescaped `:`
    reached when the whole key is consumed ends the field.
    """
    if line[pos : pos + 2] == b"*:":
        return pos + 2
    i = pos
    t = 0
    n = len(line)
    while i < n:
        escaped = False
        if line[i] == 0x5C:  # backslash: the next byte is compared literally
            i += 1
            escaped = True
            if i >= n:
                return None
        if line[i] == 0x3A and t == len(token) and not escaped:
            return i + 1
        if t == len(token) or line[i] != token[t]:
            return None
        i += 1
        t += 1
    return None


def _password_at(line: bytes, pos: int) -> bytes:
    password = bytearray()
    i = pos
    n = len(line)
    while i < n and line[i] != 0x3A:
        # A trailing backslash is kept: libpq only unescapes when a byte follows.
        if line[i] == 0x5C and i + 1 < n:
            i += 1
        password.append(line[i])
        i += 1
    return bytes(password)


def _search(data: bytes, host: str, port: str, dbname: str, user: str) -> tuple[str, int] | None:
    """passwordFromFile(): the first line whose four key fields match, and its number."""
    keys = [to_bytes(host), to_bytes(port), to_bytes(dbname), to_bytes(user)]
    for number, raw in iter_pgpass_lines(data):
        if raw.startswith(b"#"):
            continue
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        pos: int | None = 0
        for key in keys:
            pos = _match_field(line, pos, key) if pos is not None else None
        if pos is not None:
            return to_str(_password_at(line, pos)), number
    return None


def lookup_pgpass(
    host: str | None,
    port: int | str | None,
    dbname: str,
    user: str,
    passfile: str | os.PathLike[str],
) -> tuple[SecretStr, str] | None:
    """Look a password up in a .pgpass file as libpq's passwordFromFile() does.

    `host` is the host as given (a name, an address, a socket directory, or None for
    the default); `port` as given (None or "" means 5432; "05432" is compared as the
    string it is).  The file is re-read on every call.  Returns the password and a
    description of where it came from, or None when nothing matches, the matching
    line has an empty password, or the file is missing, unreadable, not a plain
    file or readable by group/others (the last two emit a PgpassWarning).
    """
    if not dbname or not user:
        return None
    port_text = "" if port is None else str(port)
    path = os.fspath(passfile)
    data = _read_passfile(path, stacklevel=3)
    if data is None:
        return None
    found = _search(data, pgpass_host_key(host), port_text or DEF_PGPORT_STR, dbname, user)
    if found is None or not found[0]:
        return None
    password, number = found
    return SecretStr(password), f".pgpass {path} line {number}"
