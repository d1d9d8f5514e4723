"""The password in a named environment variable, read at each new connection (ttl 0)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)

__all__ = ["EnvProvider"]


class EnvOptions(ProviderOptions):
    """`{type = "env", variable = "APP_DB_PASSWORD"}`."""

    variable: str = Field(min_length=1, pattern=r"^[^=\x00]+$")
    ttl: float = Field(default=0.0, ge=0)


class EnvProvider(PasswordProvider):
    """Reads the variable from the Database's environment (os.environ unless one was given)."""

    name: ClassVar[str] = "env"
    Options: ClassVar[type[ProviderOptions]] = EnvOptions

    def describe(self) -> str:
        assert isinstance(self.options, EnvOptions)
        return f"'env' (variable {self.options.variable})"

    def fetch(self, target: LoginTarget) -> Credential:
        assert isinstance(self.options, EnvOptions)
        value = target.environ.get(self.options.variable)
        if not value:
            state = "is not set" if value is None else "is empty"
            raise self.error(
                f"the environment variable {self.options.variable} {state}",
                f"export {self.options.variable} with the password before starting the process",
            )
        return Credential(SecretStr(value))
