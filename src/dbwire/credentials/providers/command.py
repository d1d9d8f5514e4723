"""The password a command prints (vault CLIs, token helpers); `password_command` is this one."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dbwire.credentials.command import PasswordCommand
from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)
from dbwire.errors import CredentialsError

__all__ = ["CommandProvider"]


class CommandOptions(ProviderOptions):
    """`{type = "command", command = ["vault", "read", ...], ttl = 300, timeout = 30}`."""

    command: str | list[str]
    timeout: float = Field(default=30.0, gt=0)
    ttl: float = Field(default=300.0, ge=0)


class CommandProvider(PasswordProvider):
    """Runs the command (never through a shell); the cache in front keeps its answer for ttl."""

    name: ClassVar[str] = "command"
    Options: ClassVar[type[ProviderOptions]] = CommandOptions

    def __init__(self, options: ProviderOptions, *, database: str) -> None:
        super().__init__(options, database=database)
        assert isinstance(options, CommandOptions)
        # ttl 0 here: the CredentialCache in front does the caching (and its invalidation).
        self._command = PasswordCommand(options.command, ttl=0, timeout=options.timeout)

    def describe(self) -> str:
        return f"'command' ({self._command.describe()})"

    def fetch(self, target: LoginTarget) -> Credential:
        try:
            return Credential(self._command.get())
        except CredentialsError as exc:
            raise CredentialsError(
                f"database {self.database!r}: {exc}", database=self.database
            ) from None
