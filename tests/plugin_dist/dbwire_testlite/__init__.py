"""A third-party backend: SQLite files under the scheme 'testlite://', found by entry point."""

from __future__ import annotations

from typing import ClassVar

from dbwire.backends.sqlite import SQLiteBackend


class TestLiteBackend(SQLiteBackend):
    """SQLite under another name; dbwire knows nothing of it but its entry point."""

    name: ClassVar[str] = "testlite"
    schemes: ClassVar[tuple[str, ...]] = ("testlite",)
    extra: ClassVar[str] = "sqlite"
