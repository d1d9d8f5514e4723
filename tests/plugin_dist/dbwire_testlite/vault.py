"""A third-party password provider: a key of a JSON file, found by its entry point."""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import Field, SecretStr

from dbwire.credentials.providers import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)


class TestVaultOptions(ProviderOptions):
    """`{type = "testvault", path = "vault.json", key = "primary"}`."""

    path: str = Field(min_length=1)
    key: str = Field(min_length=1)
    ttl: float = Field(default=0.0, ge=0)


class TestVaultProvider(PasswordProvider):
    """dbwire knows nothing of it but its entry point in the 'dbwire.credentials' group."""

    name: ClassVar[str] = "testvault"
    Options: ClassVar[type[ProviderOptions]] = TestVaultOptions

    def fetch(self, target: LoginTarget) -> Credential:
        assert isinstance(self.options, TestVaultOptions)
        try:
            with open(self.options.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError:
            raise self.error(f"cannot read {self.options.path}", "create the vault file") from None
        value = data.get(self.options.key)
        if not isinstance(value, str):
            raise self.error(f"no entry {self.options.key!r}", "add it to the vault file")
        return Credential(SecretStr(value))
