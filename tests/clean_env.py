"""The one clean environment for tests: nothing ambient that could route a connection or
hand it a credential (the `clean_env` fixture in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Variables that could route a connection or hand it a credential: libpq's PG*, MySQL's,
# dbwire's own (not the suite's DBWIRE_TEST_* server URLs), DATABASE_URL.
_AMBIENT_PREFIXES = ("PG", "MYSQL_", "DBWIRE_")


class CleanEnv:
    """The test's process environment with nothing ambient in it, and a private HOME."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self._monkeypatch = monkeypatch
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)
        (root / "etc").mkdir(exist_ok=True)
        for key in list(os.environ):
            ambient = key.startswith(_AMBIENT_PREFIXES) or key == "DATABASE_URL"
            if ambient and not key.startswith("DBWIRE_TEST_"):
                monkeypatch.delenv(key)
        # Never the real ~/.pgpass, ~/.my.cnf or ~/.pg_service.conf, nor /etc/postgresql-common.
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("PGSYSCONFDIR", str(root / "etc"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "xdg"))

    def set(self, **values: str | None) -> None:
        """Set (or, with None, remove) variables for the rest of the test."""
        for key, value in values.items():
            if value is None:
                self._monkeypatch.delenv(key, raising=False)
            else:
                self._monkeypatch.setenv(key, value)

    @property
    def environ(self) -> dict[str, str]:
        """A copy, for the `environ=` arguments and for subprocesses."""
        return dict(os.environ)
