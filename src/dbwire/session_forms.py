"""The Session classes behind `db.session()`: a plain Session and a transaction scope at once."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session


def _scope_exit(auto_commit: bool, failed: bool) -> Generator[str, None, None]:
    """What leaving a transaction scope does, as the Session methods to call in order.

    The one plan behind the sync and the async scope: each runs the step named here
    (calling, or awaiting, the method) and throws a failing step's exception back in.
    A failed commit is rolled back and raised; the session is always closed.
    """
    try:
        if failed:
            yield "rollback"
        elif auto_commit:
            try:
                yield "commit"
            except BaseException:
                yield "rollback"
                raise
    finally:
        yield "close"


# What _scope_exit(True, False) yields: ScopeSession.__exit__ runs it without the generator.
COMMON_COURSE = ("commit", "close")


class ScopeSession(Session):
    """A Session that `db.session()` returns: usable as is, or as a transaction scope.

    Used plainly (`s = db.session(); s.execute(...); s.commit(); s.close()`) it is an
    ordinary Session. Used with `with`, leaving the block commits (when the scope was
    opened with auto_commit), an exception rolls back, and the session is always closed.
    Sessions made by `db.Session()` keep SQLAlchemy's own `with` (close only).
    """

    # None: SQLAlchemy's semantics; True/False: a dbwire scope with or without auto_commit.
    dbwire_auto_commit: bool | None = None

    def __exit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        scope = self.dbwire_auto_commit
        if scope is None:
            super().__exit__(type_, value, traceback)
            return
        if scope and type_ is None:
            # The plan's usual course, commit then close (COMMON_COURSE), called directly:
            # stepping the generator costs three resumptions and as many next() and
            # getattr() calls on every session. A failing commit goes back to the plan.
            try:
                self.commit()
            except BaseException as exc:
                plan = _scope_exit(scope, False)
                next(plan)  # "commit", the step that failed
                step: str | None = plan.throw(exc)
            else:
                self.close()
                return
        else:
            plan = _scope_exit(scope, type_ is not None)
            step = next(plan, None)
        while step is not None:
            try:
                getattr(self, step)()
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = next(plan, None)


class AsyncScopeSession(AsyncSession):
    """The async twin of ScopeSession: `await s.commit()` by hand, or `async with`."""

    dbwire_auto_commit: bool | None = None

    async def __aexit__(
        self,
        type_: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        scope = self.dbwire_auto_commit
        if scope is None:
            await super().__aexit__(type_, value, traceback)
            return
        plan = _scope_exit(scope, type_ is not None)
        step = next(plan, None)
        while step is not None:
            try:
                if step == "close":
                    # Shielded as SQLAlchemy's own __aexit__ does: a cancelled task still
                    # returns its connection to the pool.
                    await asyncio.shield(asyncio.ensure_future(self.close()))
                else:
                    await getattr(self, step)()
            except BaseException as exc:
                step = plan.throw(exc)
            else:
                step = next(plan, None)
