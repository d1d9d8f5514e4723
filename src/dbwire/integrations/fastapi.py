"""FastAPI dependencies yielding dbwire sessions (seed 002's get_db / get_async_db).

FastAPI is not imported here: a dependency is any callable, so this module works
(and type-checks) without FastAPI installed; `pip install 'dbwire[fastapi]'` for the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from dbwire.database import Database, connect


def _database(target: Database | str) -> Database:
    return target if isinstance(target, Database) else connect(target)


def get_db(
    target: Database | str, *, auto_commit: bool = True, readonly: bool = False
) -> Callable[[], Iterator[Session]]:
    """A dependency yielding a Session: committed after the endpoint returns, rolled back if
    it raises, always closed. Use as `Depends(get_db(db))`.

    The options are bound here, not read from the request: FastAPI would otherwise
    expose `auto_commit` as a query parameter anyone could set.
    """

    def dependency() -> Iterator[Session]:
        with _database(target).session(readonly=readonly, auto_commit=auto_commit) as session:
            yield session

    return dependency


def get_async_db(
    target: Database | str, *, auto_commit: bool = True, readonly: bool = False
) -> Callable[[], AsyncIterator[AsyncSession]]:
    """The async twin of get_db(): `Depends(get_async_db(db))` yields an AsyncSession."""

    async def dependency() -> AsyncIterator[AsyncSession]:
        database = _database(target)
        async with database.async_session(readonly=readonly, auto_commit=auto_commit) as session:
            yield session

    return dependency
