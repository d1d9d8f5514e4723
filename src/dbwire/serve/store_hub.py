"""The DuckDB store the API queries across connections: every connection attached
read-only under its own name, attached on first need and detached when it changes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dbwire.database import Database
from dbwire.errors import DbwireError, describe
from dbwire.store.local import LocalStore

logger = logging.getLogger("dbwire.serve")

#: After a failed attach, wait this long before trying that connection again.
RETRY_AFTER_S = 30.0


class StoreHub:
    """An in-memory LocalStore shared by every store query of one app."""

    def __init__(self, secrets_of: Callable[[], list[str]]) -> None:
        self._store: LocalStore | None = None
        self._lock = threading.RLock()
        self._failed: dict[str, tuple[float, str]] = {}
        self._secrets_of = secrets_of

    def store(self) -> LocalStore:
        """The store, opened on first use."""
        with self._lock:
            if self._store is None or self._store.closed:
                self._store = LocalStore.open(None)
            return self._store

    def attach_all(self, databases: dict[str, Database | BaseException]) -> list[str]:
        """Attach every connection (read-only) not yet attached; a warning per failure."""
        warnings: list[str] = []
        store = self.store()
        now = time.monotonic()
        with self._lock:
            for name, db in databases.items():
                if isinstance(db, BaseException):
                    warnings.append(f"{name}: not attached: {describe(db, self._secrets_of())}")
                    continue
                failed = self._failed.get(name)
                if failed is not None and now - failed[0] < RETRY_AFTER_S:
                    warnings.append(failed[1])
                    continue
                try:
                    store.attach(db, alias=name, readonly=True)
                except DbwireError as exc:
                    text = f"{name}: not attached: {describe(exc, self._secrets_of())}"
                    self._failed[name] = (now, text)
                    warnings.append(text)
                else:
                    self._failed.pop(name, None)
        return warnings

    def detach(self, name: str) -> None:
        """Detach a connection (before it is changed or deleted); nothing attached is fine."""
        with self._lock:
            self._failed.pop(name, None)
            if self._store is None or self._store.closed:
                return
            try:
                self._store.detach(name)
            except Exception as exc:  # the Database closes next either way
                logger.warning(
                    "dbwire serve: detaching %r from the store failed: %s",
                    name,
                    describe(exc, self._secrets_of()),
                )

    def close(self) -> None:
        """Close the store; a later query opens a new one."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self._failed.clear()
