"""Process lifecycle: fork safety for pooled connections, and waiting for a server with backoff."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Protocol

from dbwire.errors import (
    ConfigError,
    ConnectError,
    CredentialsError,
    DatabaseClosedError,
    MissingDependencyError,
    UnknownBackendError,
)
from dbwire.health import Probe, async_outcome, describe_error
from dbwire.types import HealthResult

if TYPE_CHECKING:
    from dbwire.target import Target

logger = logging.getLogger("dbwire")


# -- fork safety -------------------------------------------------------------------
class ForkAware(Protocol):
    """An object that resets its pools and locks in a forked child (Database, Manager)."""

    name: str

    def _after_fork(self) -> None: ...


# Every live Database and Manager, so a forked child can drop the pools and locks it
# inherited. Weak: tracking must not keep anything alive.
_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_live_lock = threading.Lock()
_hook_installed = False
_fork_safety = True


def track(obj: ForkAware) -> None:
    """Make obj fork-safe: a forked child never reuses the parent's pooled connections."""
    global _hook_installed
    with _live_lock:
        _live.add(obj)
        if not _hook_installed and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _hook_installed = True


def set_fork_safety(enabled: bool) -> None:
    """Turn the after-fork pool reset on (the default) or off for this process."""
    global _fork_safety
    _fork_safety = enabled


def fork_safety_enabled() -> bool:
    """True when forked children reset the pools they inherit."""
    return _fork_safety


def reset_after_fork() -> None:
    """What a forked child runs: new pools and locks for every live Database and Manager.

    SQLAlchemy's documented recipe, `engine.dispose(close=False)`: the child forgets the
    inherited connections without closing them, since they still belong to the parent.
    Called automatically after os.fork(); call it yourself in a worker that was started
    some other way with inherited state.
    """
    for obj in list(_live):
        try:
            obj._after_fork()
        except Exception as exc:  # a fork must never fail because of one database
            logger.warning("%r: could not reset pools after fork: %s", obj.name, exc)


def _after_fork_in_child() -> None:
    global _live_lock
    # Another parent thread may have held the lock at the moment of fork; in the child
    # that thread is gone and the lock would stay taken forever.
    _live_lock = threading.Lock()
    if _fork_safety:
        reset_after_fork()


# -- waiting and retrying ----------------------------------------------------------
def backoff_delays(
    base: float = 0.05, cap: float = 2.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Exponential backoff with jitter: attempt n sleeps between half and all of
    min(cap, base * 2**n), so many clients waiting for one server do not retry in step.
    """
    draw = rng or random.Random()
    attempt = 0
    while True:
        ceiling = min(cap, base * (2**attempt))
        yield draw.uniform(ceiling / 2, ceiling)
        attempt = min(attempt + 1, 30)


# Errors that retrying cannot fix: report them at once.
_PERMANENT = (
    ConfigError,
    CredentialsError,
    DatabaseClosedError,
    MissingDependencyError,
    UnknownBackendError,
)


def is_permanent(db: Target, exc: BaseException) -> bool:
    """True for errors that waiting will not cure: bad config, a missing driver, a bad login."""
    if isinstance(exc, _PERMANENT):
        return True
    try:
        return db.backend.is_auth_failure(exc)
    except Exception:
        return False


def _not_ready(db: Target, timeout: float, attempts: int, last: BaseException) -> ConnectError:
    # A translated ConnectError repeats the database and its own fix; the driver's
    # message underneath says what happened.
    cause = last.__cause__ if isinstance(last, ConnectError) and last.__cause__ else last
    return ConnectError(
        f"database {db.name!r} ({db.url}) did not accept connections within {timeout:g}s "
        f"({attempts} attempts); last error: {describe_error(db, cause)}. Fix: start the "
        "server or check host and port, or wait longer",
        database=db.name,
    )


class Retry:
    """One retry policy for wait(), async wait() and setup(): attempts, backoff, giving up.

    Bounded by a deadline (`timeout` seconds, wait) or a number of tries (setup). The
    callers differ only in how they probe and sleep (thread or event loop); what an
    attempt may take, how long to back off and when to stop is decided here.
    """

    def __init__(
        self, db: Target, *, timeout: float | None = None, tries: int | None = None
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.tries = tries
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.attempts = 0
        self._delays = backoff_delays()

    def attempt_timeout(self) -> float:
        """How long the next attempt may take: the health timeout, cut at the deadline."""
        limit = self.db.config.health_timeout
        if self.deadline is None:
            return limit
        return max(0.05, min(self.deadline - time.monotonic(), limit))

    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return time.monotonic() - self.started

    def after_failure(self, error: BaseException) -> float | BaseException:
        """The seconds to sleep before the next attempt, or the error to give up with.

        Gives up at once for an error waiting will not cure, and when no try or no time
        is left; the last sleep ends on the deadline, so the last try lands on it.
        """
        self.attempts += 1
        if is_permanent(self.db, error):
            return error
        delay = next(self._delays)
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                assert self.timeout is not None
                return _not_ready(self.db, self.timeout, self.attempts, error)
            return min(delay, remaining)
        if self.tries is not None and self.attempts >= self.tries:
            return error
        logger.info(
            "database %r: attempt %d of %d failed; retrying in %.2fs",
            self.db.name,
            self.attempts,
            self.tries,
            delay,
        )
        return delay


# One retry loop, as steps: ("probe", seconds) asks for a health check with that deadline
# and is answered with its (result, error); ("sleep", seconds) asks for a pause. The sync
# and async drivers below differ only in how they do those two things.
_Step = tuple[str, float]
_Outcome = tuple[HealthResult, BaseException | None]
_Plan = Generator[_Step, _Outcome | None, float | BaseException]


def _retry_plan(retry: Retry) -> _Plan:
    """Probe until healthy (the seconds it took) or until retry gives up (its error)."""
    while True:
        outcome = yield ("probe", retry.attempt_timeout())
        assert outcome is not None
        result, error = outcome
        if result.healthy:
            return retry.elapsed()
        assert error is not None
        step = retry.after_failure(error)
        if isinstance(step, BaseException):
            return step
        yield ("sleep", step)


def _run(db: Target, plan: _Plan) -> float | BaseException:
    """Drive a retry plan with threads and time.sleep."""
    try:
        kind, seconds = next(plan)
        while True:
            if kind == "probe":
                kind, seconds = plan.send(Probe(db, seconds).outcome())
            else:
                time.sleep(seconds)
                kind, seconds = plan.send(None)
    except StopIteration as done:
        outcome: float | BaseException = done.value
        return outcome


async def _async_run(db: Target, plan: _Plan) -> float | BaseException:
    """Drive a retry plan on the event loop, through the async engine."""
    import asyncio

    try:
        kind, seconds = next(plan)
        while True:
            if kind == "probe":
                kind, seconds = plan.send(await async_outcome(db, seconds))
            else:
                await asyncio.sleep(seconds)
                kind, seconds = plan.send(None)
    except StopIteration as done:
        outcome: float | BaseException = done.value
        return outcome


def wait_until_ready(db: Target, timeout: float = 30.0) -> float:
    """Retry the health query with backoff until it answers; the seconds it took.

    Raises ConnectError when timeout passes, and at once for errors that retrying
    cannot fix (a rejected password, bad config, a missing driver).
    """
    outcome = _run(db, _retry_plan(Retry(db, timeout=timeout)))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def async_wait_until_ready(db: Target, timeout: float = 30.0) -> float:
    """The async twin of wait_until_ready(), through the async engine (same plan)."""
    outcome = await _async_run(db, _retry_plan(Retry(db, timeout=timeout)))
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def connect_with_retries(db: Target, retries: int | None = None) -> BaseException | None:
    """Try the health query 1 + retries times (default: the config's connect_retries) with
    backoff; None on success, else the last error.
    """
    retry = Retry(db, tries=1 + (db.config.connect_retries if retries is None else retries))
    outcome = _run(db, _retry_plan(retry))
    return outcome if isinstance(outcome, BaseException) else None
