"""MySQL/MariaDB option files (~/.my.cnf): the client credentials they hold."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping, Sequence

from dbwire.errors import ConfigError, CredentialsError

__all__ = ["read_mysql_option_files"]

logger = logging.getLogger(__name__)

#: The groups that every MySQL and MariaDB client program reads.
CLIENT_GROUPS = ("client", "client-server", "client-mariadb")
#: Option name (with '-' and '_' equivalent) -> key in the result.
_KEYS = {
    "user": "user",
    "password": "password",
    "host": "host",
    "port": "port",
    "database": "database",
    "socket": "socket",
}
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "r": "\r", "s": " ", "\\": "\\"}
_MAX_DEPTH = 10


def _default_paths(environ: Mapping[str, str]) -> list[str]:
    home = environ.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".my.cnf")]


def read_mysql_option_files(
    paths: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Read client credentials from option files: user, password, host, port, database, socket.

    Reads `paths` in order (later files win), else ~/.my.cnf (HOME from `environ`).
    Only the [client], [client-server] and [client-mariadb] groups count; within
    them a later line overrides an earlier one, as in the mysql client.  Supports
    `#`/`;` comments, quoted values with \\n-style escapes, `-`/`_` spelling
    variants, `!include FILE` and `!includedir DIR` (*.cnf files, sorted).
    Missing files are skipped; world-writable ones are ignored with a warning, as
    MySQL does.  Raises CredentialsError for unreadable files and ConfigError for
    malformed lines or include cycles.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    result: dict[str, str] = {}
    for path in paths if paths is not None else _default_paths(env):
        _read_file(os.fspath(path), result, depth=0, stack=())
    return result


def _read_file(path: str, result: dict[str, str], *, depth: int, stack: tuple[str, ...]) -> None:
    real = os.path.realpath(path)
    if real in stack or depth > _MAX_DEPTH:
        raise ConfigError(
            f"option file {path} includes itself (directly or through !include); remove the cycle"
        )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CredentialsError(
            f"option file {path} could not be checked ({exc.strerror}); fix its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"option file {path} is a directory; use !includedir for directories")
    if st.st_mode & stat.S_IWOTH:
        # mysql: "World-writable config file '%s' is ignored."
        logger.warning("World-writable config file '%s' is ignored; chmod o-w it", path)
        return
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise CredentialsError(
            f"option file {path} could not be read ({exc.strerror}); make it readable by this user"
        ) from None
    in_client = False
    base = os.path.dirname(path)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("!"):
            directive, _, target = line.partition(" ")
            target = target.strip()
            if directive not in ("!include", "!includedir") or not target:
                raise ConfigError(
                    f"option file {path}, line {number}: unknown directive; "
                    "use !include FILE or !includedir DIR"
                )
            target = os.path.join(base, os.path.expanduser(target))
            if directive == "!include":
                _read_file(target, result, depth=depth + 1, stack=(*stack, real))
            else:
                _read_dir(target, result, depth=depth + 1, stack=(*stack, real))
            continue
        if line.startswith("["):
            end = line.find("]")
            if end < 0:
                raise ConfigError(
                    f"option file {path}, line {number}: group header without ']'; write [client]"
                )
            in_client = line[1:end].strip().lower() in CLIENT_GROUPS
            continue
        if not in_client:
            continue
        name, sep, value = line.partition("=")
        option = name.strip().lower().replace("_", "-")
        # "loose-" only tells other programs to ignore an option they do not know.
        option = option.removeprefix("loose-")
        key = _KEYS.get(option)
        if key is None or not sep:
            # Other options, and bare flags such as "password" (meaning: prompt).
            continue
        result[key] = _parse_value(value, path, number)


def _read_dir(path: str, result: dict[str, str], *, depth: int, stack: tuple[str, ...]) -> None:
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CredentialsError(
            f"option directory {path} could not be listed ({exc.strerror}); fix its permissions"
        ) from None
    for name in names:
        if name.endswith(".cnf"):
            _read_file(os.path.join(path, name), result, depth=depth, stack=stack)


def _parse_value(value: str, path: str, number: int) -> str:
    value = value.strip()
    if value[:1] in ("'", '"'):
        quote = value[0]
        out: list[str] = []
        i = 1
        while i < len(value):
            ch = value[i]
            if ch == "\\" and i + 1 < len(value):
                nxt = value[i + 1]
                out.append(_ESCAPES.get(nxt, nxt if nxt in "'\"" else "\\" + nxt))
                i += 2
                continue
            if ch == quote:
                rest = value[i + 1 :].strip()
                if rest and rest[0] not in "#;":
                    raise ConfigError(
                        f"option file {path}, line {number}: text after the closing quote; "
                        "put the whole value inside the quotes"
                    )
                return "".join(out)
            out.append(ch)
            i += 1
        raise ConfigError(
            f"option file {path}, line {number}: unterminated quoted value; close the quote"
        )
    # An unquoted value ends at a comment mark; quote values that contain '#'.
    cut = value.find("#")
    if cut >= 0:
        value = value[:cut].rstrip()
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPES:
            out.append(_ESCAPES[value[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)
