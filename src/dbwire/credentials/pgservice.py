"""pg_service.conf lookup: which files libpq searches for a service, and how it reads them."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping

from dbwire.credentials._libpq import C_SPACE_BYTES, SYSCONFDIR, Keyword, to_bytes, to_str
from dbwire.errors import ConfigError, CredentialsError

__all__ = ["apply_service", "service_file_candidates"]

#: parseServiceFile() reads with fgets() into char buf[1024].
_LINE_BUFFER = 1024


def _c_path(path: str) -> str:
    # The path is a C string for libpq: it ends at the first NUL.
    return path.split("\0", 1)[0]


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def service_file_candidates(environ: Mapping[str, str], home: str | None) -> list[str]:
    """The service files libpq would consult, in order (whether or not they exist)."""
    files: list[str] = []
    if "PGSERVICEFILE" in environ:
        files.append(_c_path(environ["PGSERVICEFILE"]))
    elif home is not None:
        files.append(f"{home}/.pg_service.conf")
    sysconfdir = _c_path(environ.get("PGSYSCONFDIR", SYSCONFDIR))
    files.append(f"{sysconfdir}/pg_service.conf")
    return files


def apply_service(
    service: str,
    values: dict[str, str],
    sources: dict[str, str],
    *,
    known: Mapping[str, Keyword],
    environ: Mapping[str, str],
    home: str | None,
) -> None:
    """parseServiceInfo(): fill keywords not yet in `values` from the service's section.

    PGSERVICEFILE (which must then be readable) or else ~/.pg_service.conf (if it
    exists) is read first; the sysconfdir file only when the service was not found
    there.  Raises ConfigError when no file defines the service or a file is malformed.
    """
    service = _c_path(service)
    searched: list[str] = []
    if "PGSERVICEFILE" in environ:
        path = _c_path(environ["PGSERVICEFILE"])
        searched.append(path)
        if _parse_service_file(path, service, values, sources, known, must_exist=True):
            return
    elif home is not None:
        path = f"{home}/.pg_service.conf"
        searched.append(path)
        if _exists(path) and _parse_service_file(
            path, service, values, sources, known, must_exist=False
        ):
            return
    sysconfdir = _c_path(environ.get("PGSYSCONFDIR", SYSCONFDIR))
    path = f"{sysconfdir}/pg_service.conf"
    searched.append(path)
    if _exists(path) and _parse_service_file(
        path, service, values, sources, known, must_exist=False
    ):
        return
    raise ConfigError(
        f'definition of service "{service}" not found (searched {", ".join(searched)}); '
        f"add a [{service}] section to one of them, or fix the service name "
        "(service=, ?service= or PGSERVICE)"
    )


def _read(path: str, *, must_exist: bool) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        # fopen() succeeds on a directory and fgets() then reads nothing.
        return b""
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(
                f'service file "{path}" not found; fix PGSERVICEFILE or unset it '
                "to use ~/.pg_service.conf"
            ) from None
        return None
    except OSError as exc:
        fix = "make it readable by this user"
        if exc.errno not in (errno.EACCES, errno.EPERM):
            fix = "check the file system"
        raise CredentialsError(
            f'service file "{path}" could not be read ({exc.strerror}); {fix}'
        ) from None


def _parse_service_file(
    path: str,
    service: str,
    values: dict[str, str],
    sources: dict[str, str],
    known: Mapping[str, Keyword],
    *,
    must_exist: bool,
) -> bool:
    """parseServiceFile(): returns whether the [service] section was found."""
    data = _read(path, must_exist=must_exist)
    if data is None:
        return False
    wanted = to_bytes(service)
    group_found = False
    pos = 0
    linenr = 0
    size = len(data)
    while pos < size:
        # One fgets() call: up to 1023 bytes, or through the newline.
        window = data[pos : pos + _LINE_BUFFER - 1]
        newline = window.find(b"\n")
        chunk = window[: newline + 1] if newline >= 0 else window
        pos += len(chunk)
        linenr += 1
        line = chunk.split(b"\0", 1)[0]
        if len(line) >= _LINE_BUFFER - 1:
            raise ConfigError(
                f'line {linenr} too long in service file "{path}"; '
                f"keep lines under {_LINE_BUFFER - 1} bytes"
            )
        line = line.strip(C_SPACE_BYTES)
        if not line or line.startswith(b"#"):
            continue
        if line.startswith(b"["):
            if group_found:
                # The next section ends the wanted one.
                return True
            group_found = (
                line[1 : 1 + len(wanted)] == wanted
                and line[1 + len(wanted) : 2 + len(wanted)] == b"]"
            )
            continue
        if not group_found:
            continue
        if line.startswith(b"ldap"):
            raise ConfigError(
                f'service file "{path}", line {linenr}: LDAP service lookups are not '
                "supported by dbwire; put the connection keywords in the file instead"
            )
        key_bytes, sep, value_bytes = line.partition(b"=")
        if not sep:
            raise ConfigError(
                f'syntax error in service file "{path}", line {linenr}: expected keyword=value'
            )
        # No trimming around '=': libpq reads "host = x" as the unknown keyword "host ".
        key = to_str(key_bytes)
        if key == "service":
            raise ConfigError(
                f'nested service specifications not supported in service file "{path}", '
                f"line {linenr}; copy the other service's settings instead"
            )
        if key not in known:
            raise ConfigError(
                f'syntax error in service file "{path}", line {linenr}: unknown keyword '
                f"{key[:40]!r} (write keyword=value with no spaces around =)"
            )
        # Settings given explicitly, or earlier in this section, win.
        if key not in values:
            values[key] = to_str(value_bytes)
            sources[key] = f"service file {path} [{service}] line {linenr}"
    return group_found
