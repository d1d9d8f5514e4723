"""AWS Secrets Manager: a plain string secret, or JSON with `password` (and `username`),
the shape RDS-managed and rotation-lambda secrets have."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from dbwire.credentials.providers._aws import AwsClient, AwsOptions, aws_error, quiet_aws_logs
from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)

__all__ = ["SecretsManagerProvider"]


class SecretsManagerOptions(ProviderOptions, AwsOptions):
    """`{type = "aws_secrets_manager", secret_id = "prod/app/db", region = "eu-west-1"}`."""

    secret_id: str = Field(min_length=1)
    version_stage: str = Field(default="AWSCURRENT", min_length=1)
    version_id: str | None = Field(default=None, min_length=1)
    # Keys of a JSON secret; `use_username` lets the secret's user name win (alternating-users
    # rotation switches between two users).
    password_key: str = Field(default="password", min_length=1)
    username_key: str = Field(default="username", min_length=1)
    use_username: bool = True
    ttl: float = Field(default=300.0, ge=0)


class SecretsManagerProvider(PasswordProvider):
    """GetSecretValue for the version stage (AWSCURRENT unless told), cached for ttl."""

    name: ClassVar[str] = "aws_secrets_manager"
    Options: ClassVar[type[ProviderOptions]] = SecretsManagerOptions

    def __init__(self, options: ProviderOptions, *, database: str) -> None:
        super().__init__(options, database=database)
        assert isinstance(options, SecretsManagerOptions)
        self._opts = options
        self._client = AwsClient(self, "secretsmanager", options)

    def describe(self) -> str:
        # The secret's id is a name or an ARN, not the secret.
        return f"'aws_secrets_manager' (secret {self._opts.secret_id!r})"

    def fetch(self, target: LoginTarget) -> Credential:
        opts = self._opts
        request: dict[str, Any] = {"SecretId": opts.secret_id}
        if opts.version_id is not None:
            request["VersionId"] = opts.version_id
        else:
            request["VersionStage"] = opts.version_stage
        client = self._client.get()
        failure: BaseException | None = None
        try:
            with quiet_aws_logs():
                answer = client.get_secret_value(**request)
        except Exception as exc:
            failure = exc
        if failure is not None:  # outside the except block: botocore's error is not chained
            raise aws_error(self, failure, what="GetSecretValue")
        text = answer.get("SecretString")
        if text is None and answer.get("SecretBinary") is not None:
            try:
                text = bytes(answer["SecretBinary"]).decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None:
                raise self.error(
                    "the binary secret is not UTF-8 text", "store the password as a SecretString"
                )
        if not text:
            raise self.error("the secret is empty", "put the password into the secret")
        return self._parse(text)

    def _parse(self, text: str) -> Credential:
        opts = self._opts
        if not text.lstrip().startswith("{"):
            return Credential(SecretStr(text))
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self.error(
                "the secret starts with '{' but is not a JSON object",
                'store JSON such as {"username": "app", "password": "..."} or a plain string',
            )
        password = data.get(opts.password_key)
        if not isinstance(password, str) or not password:
            keys = ", ".join(sorted(repr(str(k)) for k in data)) or "none"
            raise self.error(
                f"the JSON secret has no non-empty string under {opts.password_key!r} "
                f"(its keys: {keys})",
                "add that key, or set `password_key` to the key that holds the password",
            )
        username = data.get(opts.username_key) if opts.use_username else None
        return Credential(
            SecretStr(password), username if isinstance(username, str) and username else None
        )
