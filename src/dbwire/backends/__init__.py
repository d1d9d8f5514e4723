"""The backend registry: built-ins, @register_backend, and 'dbwire.backends' entry points.

Lookups try backends registered in this process, then the built-in ones (imported on
first use, so a missing optional driver costs nothing until that backend is used), then
the entry points of installed distributions, so a third-party backend needs no change
to dbwire.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from importlib.metadata import entry_points
from typing import TypeVar

from dbwire.backends.base import Backend
from dbwire.errors import UnknownBackendError

ENTRY_POINT_GROUP = "dbwire.backends"

B = TypeVar("B", bound=type[Backend])

# scheme -> "module:Class"; imported on first use.
_BUILTIN: dict[str, str] = {
    "postgresql": "dbwire.backends.postgresql:PostgresBackend",
    "postgres": "dbwire.backends.postgresql:PostgresBackend",
    "mysql": "dbwire.backends.mysql:MySQLBackend",
    "mariadb": "dbwire.backends.mysql:MariaDBBackend",
    "sqlite": "dbwire.backends.sqlite:SQLiteBackend",
    "duckdb": "dbwire.backends.duckdb:DuckDBBackend",
    "s3": "dbwire.store.s3:S3Backend",
}


class BackendRegistry:
    """Maps URL schemes and backend names to Backend classes."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._registered: dict[str, type[Backend]] = {}
        self._entry_points_loaded = False
        self._lock = threading.Lock()

    def register(self, cls: type[Backend]) -> None:
        """Register cls under its name and every one of its schemes (later wins)."""
        with self._lock:
            for key in (cls.name, *cls.schemes):
                self._registered[key.lower()] = cls

    def get(self, scheme: str) -> type[Backend]:
        """The Backend class for a scheme or name; UnknownBackendError lists the known ones."""
        key = scheme.lower().split("+", 1)[0]
        found = self._registered.get(key)
        if found is not None:
            return found
        if key in _BUILTIN:
            module_name, _, class_name = _BUILTIN[key].partition(":")
            cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
            self.register(cls)
            return cls
        self._load_entry_points()
        found = self._registered.get(key)
        if found is not None:
            return found
        close = difflib.get_close_matches(key, self.known(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownBackendError(
            f"no backend for {scheme!r}{hint}; known: {', '.join(self.known())}. "
            f"Third-party backends publish a {self.group!r} entry point "
            "or use @dbwire.register_backend"
        )

    def known(self) -> list[str]:
        """Every scheme and backend name that can be resolved right now."""
        self._load_entry_points()
        return sorted({*_BUILTIN, *self._registered})

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plugin must not hide the others
                import logging

                logging.getLogger("dbwire").warning(
                    "could not load backend entry point %r (%s): %s", ep.name, ep.value, exc
                )
                continue
            if isinstance(cls, type) and issubclass(cls, Backend):
                self.register(cls)


registry = BackendRegistry(ENTRY_POINT_GROUP)


def register_backend(cls: B) -> B:
    """Class decorator registering a Backend subclass for its name and schemes."""
    registry.register(cls)
    return cls


def get_backend(scheme: str) -> type[Backend]:
    """Shorthand for registry.get(scheme)."""
    return registry.get(scheme)


__all__ = ["Backend", "BackendRegistry", "get_backend", "register_backend", "registry"]
