"""The password in a file (a mounted secret), read at each new connection unless ttl says."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dbwire.credentials.password_file import read_password_file
from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)
from dbwire.errors import CredentialsError

__all__ = ["FileProvider"]


class FileOptions(ProviderOptions):
    """`{type = "file", path = "/run/secrets/db"}`; the `password_file` field is this with ttl 0."""

    path: str = Field(min_length=1)
    ttl: float = Field(default=0.0, ge=0)


class FileProvider(PasswordProvider):
    """read_password_file(): one trailing newline dropped; missing or empty files refused."""

    name: ClassVar[str] = "file"
    Options: ClassVar[type[ProviderOptions]] = FileOptions

    def describe(self) -> str:
        assert isinstance(self.options, FileOptions)
        return f"'file' ({self.options.path})"

    def fetch(self, target: LoginTarget) -> Credential:
        assert isinstance(self.options, FileOptions)
        try:
            return Credential(read_password_file(self.options.path))
        except CredentialsError as exc:
            # The file's own message names the path and fix; add the database.
            raise CredentialsError(
                f"database {self.database!r}: {exc}", database=self.database
            ) from None
