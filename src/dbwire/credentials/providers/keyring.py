"""The system keyring (the `keyring` package): macOS Keychain, Secret Service, Windows,
or any keyring backend named in the options (keyrings.alt's file backends, for example)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)
from dbwire.errors import MissingDependencyError

__all__ = ["KeyringProvider"]


class KeyringOptions(ProviderOptions):
    """`{type = "keyring", service = "dbwire/primary", username = "app"}`.

    `username` defaults to the login's user; `backend` names a keyring backend class
    ("keyrings.alt.file.PlaintextKeyring"), else keyring picks as it always does
    (PYTHON_KEYRING_BACKEND, keyringrc.cfg, the platform's).
    """

    service: str = Field(min_length=1)
    username: str | None = Field(default=None, min_length=1)
    backend: str | None = Field(default=None, pattern=r"^[\w.]+\.\w+$")
    ttl: float = Field(default=300.0, ge=0)


class KeyringProvider(PasswordProvider):
    """keyring's get_password(service, username)."""

    name: ClassVar[str] = "keyring"
    Options: ClassVar[type[ProviderOptions]] = KeyringOptions

    def __init__(self, options: ProviderOptions, *, database: str) -> None:
        super().__init__(options, database=database)
        assert isinstance(options, KeyringOptions)
        self._opts = options
        self._lock = threading.Lock()
        self._backend: Any = None

    def describe(self) -> str:
        return f"'keyring' (service {self._opts.service!r})"

    def _keyring(self) -> Any:
        try:
            import keyring
            import keyring.core
        except ImportError:
            raise MissingDependencyError(
                f"database {self.database!r}: password_provider 'keyring' needs the keyring "
                "package; run: pip install 'dbwire[keyring]'",
                database=self.database,
            ) from None
        if self._opts.backend is None:
            return keyring.get_keyring()
        with self._lock:
            if self._backend is None:
                failure: str | None = None
                try:
                    self._backend = keyring.core.load_keyring(self._opts.backend)
                except Exception as exc:
                    failure = type(exc).__name__
                if failure is not None:
                    raise self.error(
                        f"the keyring backend {self._opts.backend!r} could not be loaded "
                        f"({failure})",
                        "install the package that provides it, or fix `backend`",
                    )
            return self._backend

    def fetch(self, target: LoginTarget) -> Credential:
        from keyring import errors as kerr

        user = self._opts.username or target.user
        if not user:
            raise self.error(
                "no user name to look up",
                "set `username` in password_provider or a user in the URL",
            )
        backend = self._keyring()
        problem: tuple[str, str] | None = None
        value: Any = None
        try:
            value = backend.get_password(self._opts.service, user)
        except kerr.KeyringLocked:
            problem = (
                "the keyring is locked",
                "unlock the keyring (log in to the desktop session)",
            )
        except kerr.NoKeyringError:
            problem = (
                "no keyring backend is available",
                "install one (e.g. keyrings.alt) or set `backend`",
            )
        except kerr.KeyringError as exc:
            problem = (f"the keyring failed ({type(exc).__name__})", "check the keyring backend")
        if problem is not None:  # raised outside the except block: nothing chained
            raise self.error(*problem)
        if not value:
            raise self.error(
                f"the keyring has no password for service {self._opts.service!r} and user {user!r}",
                f"store it: keyring set {self._opts.service} {user}",
            )
        return Credential(SecretStr(str(value)))
