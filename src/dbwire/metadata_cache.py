"""The reflected-metadata disk cache: JSON that is data only, never code run on load.

A pickle runs whatever it names when loaded, so anyone able to write the cache file could
run code in the application. This cache is JSON of the reflected tables (columns with
their types, keys, foreign keys, indexes, comments), rebuilt into a `MetaData` on load.
A type is rebuilt only from a class of SQLAlchemy's own packages (`sqlalchemy.*`) that
is a `TypeEngine`, with plain JSON values as its arguments; anything else, and a file or
folder another user can write, is ignored with a warning and reflected again.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    ForeignKeyConstraint,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import Enum, TypeEngine

FORMAT = "dbwire-metadata/1"
_PLAIN = (str, int, float, bool, type(None))


class CacheFormatError(ValueError):
    """A cache file that is not what this module writes (or a type it cannot rebuild)."""


# -- types ----------------------------------------------------------------------------
def _dump_value(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, TypeEngine) or (isinstance(value, type) and issubclass(value, TypeEngine)):
        return {"type": dump_type(value if isinstance(value, TypeEngine) else value())}
    if isinstance(value, list | tuple) and all(isinstance(v, _PLAIN) for v in value):
        return {"list": list(value)}
    raise CacheFormatError(f"cannot store a {type(value).__name__} argument")


def dump_type(type_: TypeEngine[Any]) -> dict[str, Any]:
    """A column type as its class and the constructor arguments it keeps as attributes."""
    cls = type(type_)
    if not cls.__module__.startswith("sqlalchemy."):
        raise CacheFormatError(f"type {cls.__qualname__} is not one of SQLAlchemy's")
    args: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if not hasattr(type_, name):
            continue
        value = getattr(type_, name)
        if param.default is not param.empty and value is param.default:
            continue
        try:
            args[name] = _dump_value(value)
        except CacheFormatError:
            if param.default is param.empty:
                raise
    if isinstance(type_, Enum):  # its values are positional arguments
        args["enums"] = {"list": list(type_.enums)}
        if type_.name:
            args["name"] = type_.name
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "args": args}


def _load_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"type"}:
            return load_type(value["type"])
        if set(value) == {"list"} and isinstance(value["list"], list):
            return list(value["list"])
        raise CacheFormatError("unknown argument form")
    if not isinstance(value, _PLAIN):
        raise CacheFormatError("an argument is not plain JSON")
    return value


def load_type(spec: Any) -> TypeEngine[Any]:
    """The type dump_type() described; only SQLAlchemy's own TypeEngine classes are built."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise CacheFormatError("a column type has no class")
    module_name, _, qualname = spec["class"].partition(":")
    if not module_name.startswith("sqlalchemy.") or not qualname.isidentifier():
        raise CacheFormatError(f"type class {spec['class']!r} is not one of SQLAlchemy's")
    # Looked up among modules already loaded (the dialect that reflected them is): loading
    # the cache imports nothing.
    cls = getattr(sys.modules.get(module_name), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, TypeEngine)):
        raise CacheFormatError(f"{spec['class']!r} is not a SQLAlchemy type")
    raw = spec.get("args", {})
    if not isinstance(raw, dict):
        raise CacheFormatError("type arguments are not a mapping")
    args = {str(k): _load_value(v) for k, v in raw.items()}
    if issubclass(cls, Enum):
        enums = args.pop("enums", [])
        return cls(*(enums if isinstance(enums, list) else []), **args)
    return cls(**args)


# -- tables ---------------------------------------------------------------------------
def _default_text(column: Column[Any]) -> str | None:
    default = column.server_default
    arg = getattr(default, "arg", None)
    if arg is None:
        return None
    return arg if isinstance(arg, str) else str(getattr(arg, "text", arg))


def dump_metadata(metadata: MetaData) -> list[dict[str, Any]]:
    """Every table of a reflected MetaData as plain JSON."""
    tables: list[dict[str, Any]] = []
    for table in metadata.sorted_tables:
        columns = []
        for column in table.columns:
            computed = column.computed
            columns.append(
                {
                    "name": column.name,
                    "type": dump_type(column.type),
                    "nullable": column.nullable,
                    "default": _default_text(column),
                    "autoincrement": column.autoincrement
                    if isinstance(column.autoincrement, bool)
                    else "auto",
                    "comment": column.comment,
                    "computed": None
                    if computed is None
                    else {"sqltext": str(computed.sqltext), "persisted": computed.persisted},
                }
            )
        constraints: list[dict[str, Any]] = []
        for constraint in table.constraints:
            name = constraint.name if isinstance(constraint.name, str) else None
            if isinstance(constraint, PrimaryKeyConstraint):
                cols = [c.name for c in constraint.columns]
                constraints.append({"kind": "primary", "name": name, "columns": cols})
            elif isinstance(constraint, ForeignKeyConstraint):
                constraints.append(
                    {
                        "kind": "foreign",
                        "name": name,
                        "columns": [c.parent.name for c in constraint.elements],
                        "refers": [c.target_fullname for c in constraint.elements],
                        "ondelete": constraint.ondelete,
                        "onupdate": constraint.onupdate,
                    }
                )
            elif isinstance(constraint, UniqueConstraint):
                cols = [c.name for c in constraint.columns]
                constraints.append({"kind": "unique", "name": name, "columns": cols})
            elif isinstance(constraint, CheckConstraint):
                sql = str(constraint.sqltext)
                constraints.append({"kind": "check", "name": name, "sqltext": sql})
        indexes = [
            {
                "name": index.name,
                "columns": [c.name for c in index.columns],
                "unique": bool(index.unique),
            }
            for index in table.indexes
            if all(isinstance(c, Column) for c in index.expressions)
        ]
        tables.append(
            {
                "name": table.name,
                "schema": table.schema,
                "comment": table.comment,
                "columns": columns,
                "constraints": constraints,
                "indexes": indexes,
            }
        )
    return tables


def load_metadata(tables: Any, schema: str | None) -> MetaData:
    """A MetaData rebuilt from dump_metadata()'s JSON."""
    if not isinstance(tables, list):
        raise CacheFormatError("the tables are not a list")
    metadata = MetaData(schema=schema)
    for spec in tables:
        if not isinstance(spec, dict):
            raise CacheFormatError("a table is not a mapping")
        items: list[Any] = []
        for col in spec["columns"]:
            computed = col.get("computed")
            extra: list[Any] = []
            if computed:
                extra.append(Computed(computed["sqltext"], persisted=computed["persisted"]))
            items.append(
                Column(
                    col["name"],
                    load_type(col["type"]),
                    *extra,
                    nullable=bool(col["nullable"]),
                    server_default=None if col["default"] is None else text(col["default"]),
                    autoincrement=col["autoincrement"],
                    comment=col.get("comment"),
                )
            )
        for con in spec["constraints"]:
            kind = con["kind"]
            if kind == "primary":
                items.append(PrimaryKeyConstraint(*con["columns"], name=con["name"]))
            elif kind == "foreign":
                items.append(
                    ForeignKeyConstraint(
                        con["columns"],
                        con["refers"],
                        name=con["name"],
                        ondelete=con["ondelete"],
                        onupdate=con["onupdate"],
                    )
                )
            elif kind == "unique":
                items.append(UniqueConstraint(*con["columns"], name=con["name"]))
            elif kind == "check":
                items.append(CheckConstraint(con["sqltext"], name=con["name"]))
            else:
                raise CacheFormatError(f"unknown constraint kind {kind!r}")
        table = Table(
            spec["name"],
            metadata,
            *items,
            schema=spec.get("schema"),
            comment=spec.get("comment"),
        )
        for index in spec["indexes"]:
            Index(index["name"], *(table.c[c] for c in index["columns"]), unique=index["unique"])
    return metadata


# -- the file ---------------------------------------------------------------------------
def unsafe_reason(path: Path) -> str | None:
    """Why another user could have written `path` (the file or its folder), or None."""
    me = os.geteuid()
    for place, what in ((path, "file"), (path.parent, "folder")):
        try:
            info = place.stat()
        except OSError:
            continue
        if info.st_uid not in (me, 0) or (what == "file" and info.st_uid != me):
            return f"the {what} {place} belongs to another user (uid {info.st_uid})"
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = what == "folder" and info.st_mode & stat.S_ISVTX
        if writable and not sticky:
            return (
                f"the {what} {place} can be written by other users (mode {info.st_mode & 0o777:o})"
            )
    return None


def write(path: Path, key: str, metadata: MetaData, logger: logging.Logger) -> None:
    """Write the cache atomically, readable and writable by this user only."""
    try:
        payload = json.dumps({"format": FORMAT, "key": key, "tables": dump_metadata(metadata)})
    except CacheFormatError as exc:
        logger.warning("metadata cache %s not written: %s", path, exc)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(payload)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file


def read(path: Path, key: str, schema: str | None, logger: logging.Logger) -> MetaData | None:
    """The cached MetaData, or None (reflect again) for a missing, foreign or unsafe file."""
    if not path.is_file():
        return None
    reason = unsafe_reason(path)
    if reason is not None:
        logger.warning("metadata cache %s ignored: %s; reflecting instead", path, reason)
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CacheFormatError("not a dbwire metadata cache")
        if data.get("key") != key:
            return None  # written for another URL or schema
        return load_metadata(data.get("tables"), schema)
    except (ValueError, KeyError, TypeError, AttributeError, ImportError) as exc:
        # JSON, a table or a type that does not rebuild: reflect, and overwrite the file
        logger.warning("metadata cache %s unreadable (%s); reflecting again", path, exc)
        return None
