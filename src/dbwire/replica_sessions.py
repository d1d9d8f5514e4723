"""The Session classes of read-only sessions on a database with replicas.

The server is chosen when the session first needs a connection (SQLAlchemy's
`get_bind()`), not when it is made: `db.async_session()` is a plain function, and only
there can the async side await the replica check (inside SQLAlchemy's greenlet, with
`await_only`). The choice holds until the session closes, so one session never spans two
servers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only

from dbwire.session_forms import AsyncScopeSession, ScopeSession

__all__ = ["SET_KEY", "AsyncRoutedSession", "RoutedSession", "RoutedSyncSession"]

SET_KEY = "dbwire_read_replicas"
_CHOSEN_KEY = "dbwire_read_bind"


def _bind(session: Session, *, is_async: bool) -> Engine:
    chosen: Engine | None = session.info.get(_CHOSEN_KEY)
    if chosen is None:
        replicas = session.info[SET_KEY]  # a dbwire.replicas.ReplicaSet (which imports us)
        state = await_only(replicas.async_pick()) if is_async else replicas.pick()
        target = state.db if state is not None else replicas.primary
        if is_async:
            chosen = target._engines.async_side().readonly_engine.sync_engine
        else:
            chosen = target._readonly_engine()
        session.info[_CHOSEN_KEY] = chosen
    return chosen


class RoutedSession(ScopeSession):
    """A read-only ScopeSession on a healthy replica, or on the primary."""

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine:
        """The replica chosen for this session (chosen on first use)."""
        return _bind(self, is_async=False)

    def close(self) -> None:
        """Close, and choose again if the session is used after."""
        super().close()
        self.info.pop(_CHOSEN_KEY, None)


class RoutedSyncSession(Session):
    """The sync Session inside an AsyncRoutedSession."""

    def get_bind(self, mapper: Any = None, **kw: Any) -> Engine:
        """The replica chosen for this session, checked with the async driver."""
        return _bind(self, is_async=True)

    def close(self) -> None:
        """Close, and choose again if the session is used after."""
        super().close()
        self.info.pop(_CHOSEN_KEY, None)


class AsyncRoutedSession(AsyncScopeSession):
    """The async twin of RoutedSession."""

    sync_session_class = RoutedSyncSession
