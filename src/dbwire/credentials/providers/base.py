"""The password provider interface: what a provider fetches, and the TTL cache in front of it."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dbwire.errors import CredentialsError, DbwireError

__all__ = [
    "Credential",
    "CredentialCache",
    "LoginTarget",
    "PasswordProvider",
    "ProviderOptions",
]


@dataclass(frozen=True)
class LoginTarget:
    """Where the password will be sent: what a provider may need (RDS tokens sign host and user)."""

    database: str
    host: str | None
    port: int | None
    user: str | None
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Credential:
    """A provider's answer: the password, and the user name when the secret names one."""

    password: SecretStr = field(repr=False)
    username: str | None = None


class ProviderOptions(BaseModel):
    """The `password_provider` table; each provider extends it with its own keys.

    `ttl` is how long an answer is reused, in seconds (0: ask at every new connection).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    ttl: float = Field(default=300.0, ge=0)


class PasswordProvider(ABC):
    """One source of passwords. Subclasses set `name` (the `type` configs give), `Options`
    and fetch().

    A provider is built once per Database and called (through a CredentialCache) for
    each new physical connection. fetch() raises CredentialsError through `self.error()`
    (naming the database, the provider and the fix); it must never put the secret, or a
    library exception that may carry request data, into the message or its chain.
    """

    name: ClassVar[str]
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions

    def __init__(self, options: ProviderOptions, *, database: str) -> None:
        self.options = options
        self.database = database

    @abstractmethod
    def fetch(self, target: LoginTarget) -> Credential:
        """Ask the source for the password now (no caching: the cache is in front)."""

    def describe(self) -> str:
        """The provider as messages show it: its type and what names the secret, never it."""
        return repr(self.name)

    def error(self, problem: str, fix: str) -> CredentialsError:
        """A CredentialsError in the house form: database, provider, problem, fix."""
        return CredentialsError(
            f"database {self.database!r}: password_provider {self.describe()}: {problem}. "
            f"Fix: {fix}",
            database=self.database,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class CredentialCache:
    """A provider's answers reused for `ttl` seconds, per login target, thread-safe.

    Concurrent callers wait for one fetch instead of starting several. invalidate() is
    called when the server rejects a login, so the next connection asks the provider
    again instead of reusing a rejected password until the TTL runs out.
    """

    def __init__(self, provider: PasswordProvider, ttl: float) -> None:
        self.provider = provider
        self.ttl = float(ttl)
        self._lock = threading.Lock()
        self._value: Credential | None = None
        self._key: tuple[str | None, int | None, str | None] | None = None
        self._expires = 0.0
        self.fetches = 0  # how often the provider was asked: for stats and tests

    def __repr__(self) -> str:
        return f"CredentialCache({self.provider!r}, ttl={self.ttl:g})"

    def get(self, target: LoginTarget) -> Credential:
        """The cached answer for this target while fresh, else a new one from the provider."""
        key = (target.host, target.port, target.user)
        with self._lock:
            if self._fresh(key):
                assert self._value is not None
                return self._value
            value = self._fetch(target)
            if self.ttl > 0:
                self._value, self._key = value, key
                self._expires = time.monotonic() + self.ttl
            return value

    def would_fetch(self, target: LoginTarget) -> bool:
        """True if get(target) would ask the provider now (no fresh answer for it)."""
        with self._lock:
            return not self._fresh((target.host, target.port, target.user))

    def _fresh(self, key: tuple[str | None, int | None, str | None]) -> bool:
        """A cached answer for `key` within its TTL (the caller holds the lock)."""
        return self._value is not None and key == self._key and time.monotonic() < self._expires

    def peek(self) -> Credential | None:
        """The cached answer if any, without asking the provider (for scrubbing text)."""
        with self._lock:
            return self._value

    def invalidate(self) -> None:
        """Forget the cached answer: the next connection asks the provider again."""
        with self._lock:
            self._value, self._key, self._expires = None, None, 0.0

    def _fetch(self, target: LoginTarget) -> Credential:
        self.fetches += 1
        failure: str | None = None
        try:
            value = self.provider.fetch(target)
        except DbwireError:
            raise
        except Exception as exc:  # a plugin's own error may carry request data: name its type
            failure = type(exc).__name__
        if failure is not None:  # raised outside the except block: nothing chained
            raise self.provider.error(
                f"failed with {failure}", "run the provider by hand to see why, or fix its options"
            )
        if not isinstance(value, Credential) or not value.password.get_secret_value():
            raise self.provider.error(
                "returned no password", "store a non-empty password where the provider reads it"
            )
        return value
