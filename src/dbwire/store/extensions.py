"""The offline-first DuckDB extension loader: shipped wheel files first, DuckDB's repository last.

DuckDB normally downloads an extension the first time it is used. dbwire must also work
where that is impossible, so `load_extension()` tries, in order:

1. an extension already loaded, or already installed in the store's `extension_directory`
   (that directory is per DuckDB version, so whatever is there matches the running DuckDB);
2. an extension file shipped on PyPI by `duckdb-extension-<name>` for exactly the running
   DuckDB version (installed with `INSTALL '<file>'`: a bare `LOAD '<file>'` refuses files
   not named after the extension's canonical name, such as `postgres.duckdb_extension`),
   or one left in DuckDB's own default directory (`~/.duckdb/extensions`);
3. DuckDB's normal `INSTALL name` from its repository, when the machine is online;

and otherwise raises MissingDependencyError naming the pip extra that ships the files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from dbwire.errors import MissingDependencyError

logger = logging.getLogger("dbwire.local")

# Canonical extension name -> (pip extra, import names of the wheels that ship it, file stem).
SHIPPED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "postgres_scanner": (
        "duckdb",
        ("duckdb_extension_postgres", "duckdb_extension_postgres_scanner"),
        "postgres",
    ),
    "mysql_scanner": (
        "duckdb",
        ("duckdb_extension_mysql", "duckdb_extension_mysql_scanner"),
        "mysql",
    ),
    "sqlite_scanner": (
        "duckdb",
        ("duckdb_extension_sqlite", "duckdb_extension_sqlite_scanner"),
        "sqlite",
    ),
    "httpfs": ("duckdb", ("duckdb_extension_httpfs",), "httpfs"),
    "aws": ("s3", ("duckdb_extension_aws",), "aws"),
}

OFFLINE_ENV = "DBWIRE_DUCKDB_OFFLINE"
EXTENSION_DIR_ENV = "DBWIRE_DUCKDB_EXTENSION_DIRECTORY"

# INSTALL writes into the shared extension directory; two stores installing the same file
# at once in one process would race on it.
_install_lock = threading.Lock()
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def default_extension_directory() -> Path:
    """dbwire's own extension folder: $DBWIRE_DUCKDB_EXTENSION_DIRECTORY, else the user cache."""
    configured = os.environ.get(EXTENSION_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dbwire" / "duckdb-extensions"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _wheel_roots(name: str) -> list[Path]:
    """The `extensions/` folders of every installed wheel that ships `name`."""
    entry = SHIPPED.get(name)
    if entry is None:
        return []
    roots: list[Path] = []
    for module in entry[1]:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            root = Path(location) / "extensions"
            if root.is_dir():
                roots.append(root)
    return roots


def shipped_extension(name: str, version: str) -> Path | None:
    """The extension file a wheel ships for DuckDB `version`, if one is installed."""
    stem = SHIPPED[name][2] if name in SHIPPED else name
    for root in _wheel_roots(name):
        for candidate in (
            root / f"v{version}" / f"{stem}.duckdb_extension",
            root / f"v{version}" / f"{name}.duckdb_extension",
        ):
            if candidate.is_file():
                return candidate
    return None


def shipped_versions(name: str) -> list[str]:
    """DuckDB versions for which an installed wheel ships `name` (for error messages)."""
    found = {
        child.name.removeprefix("v")
        for root in _wheel_roots(name)
        for child in root.iterdir()
        if child.is_dir() and child.name.startswith("v")
    }
    return sorted(found)


def _duckdb_home_file(name: str, version: str, platform: str) -> Path | None:
    candidate = (
        Path.home() / ".duckdb" / "extensions" / f"v{version}" / platform
    ) / f"{name}.duckdb_extension"
    return candidate if candidate.is_file() else None


def _state(con: Any, name: str) -> tuple[bool, bool]:
    row = con.execute(
        "SELECT loaded, installed FROM duckdb_extensions() WHERE extension_name = $name",
        {"name": name},
    ).fetchone()
    if row is None:
        return False, False
    return bool(row[0]), bool(row[1])


def offline() -> bool:
    """True when $DBWIRE_DUCKDB_OFFLINE forbids downloading extensions."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def load_extension(
    con: Any, name: str, *, database: str | None = None, allow_download: bool | None = None
) -> str:
    """Load DuckDB extension `name` into `con`, offline first; return how it was found.

    Args:
        con: a DuckDB connection.
        name: the canonical extension name (`postgres_scanner`, `httpfs`, ...).
        database: the dbwire database that needs it, for the error message.
        allow_download: try DuckDB's repository as a last resort (default: yes, unless
            $DBWIRE_DUCKDB_OFFLINE is set).
    """
    import duckdb

    if not _NAME.match(name):
        raise ValueError(f"not a DuckDB extension name: {name!r}")
    loaded, installed = _state(con, name)
    if loaded:
        return "loaded"
    if installed:
        try:
            con.execute(f"LOAD {name}")
            return "installed"
        except duckdb.Error as exc:
            # A damaged or foreign file in the directory: reinstall it below.
            logger.debug("could not load installed DuckDB extension %s: %s", name, exc)
    version = duckdb.__version__
    platform = str(con.execute("PRAGMA platform").fetchone()[0])
    local = shipped_extension(name, version) or _duckdb_home_file(name, version, platform)
    if local is not None:
        with _install_lock:
            con.execute(f"FORCE INSTALL {_sql_literal(str(local))}")
        con.execute(f"LOAD {name}")
        logger.debug("installed DuckDB extension %s from %s", name, local)
        return f"file:{local}"
    download = (not offline()) if allow_download is None else allow_download
    detail = "downloads are disabled" if not download else ""
    if download:
        try:
            with _install_lock:
                con.execute(f"INSTALL {name}")
            con.execute(f"LOAD {name}")
            return "repository"
        except duckdb.Error as exc:
            detail = " ".join(str(exc).split())[:300]
    raise missing_extension_error(name, version, database=database, detail=detail)


def missing_extension_error(
    name: str, version: str, *, database: str | None, detail: str
) -> MissingDependencyError:
    """The error for an extension that is neither installed locally nor downloadable."""
    extra, wheels, _ = SHIPPED.get(name, ("duckdb", (f"duckdb_extension_{name}",), name))
    package = wheels[0].replace("_", "-")
    where = f"database {database!r}: " if database else ""
    others = shipped_versions(name)
    if others:
        found = (
            f"{package} is installed for DuckDB {', '.join(others)} only, but DuckDB "
            f"{version} is running (an extension file loads only into its own version); "
        )
    else:
        found = f"no local copy was found and it could not be downloaded ({detail}); "
    return MissingDependencyError(
        f"{where}DuckDB's {name!r} extension is needed. {found}"
        f"run: pip install 'dbwire[{extra}]' (it pins DuckDB to the version the "
        f"{package} wheel ships files for)",
        database=database,
    )
