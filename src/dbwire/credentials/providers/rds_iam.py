"""RDS / Aurora IAM authentication: a SigV4-presigned token (signed locally) is the password.

A token is valid for 15 minutes and is checked only when the login happens, so one is
made for each new connection (ttl 0) or reused for at most 14 minutes. RDS accepts IAM
logins over TLS only: set sslmode=require (or verify-full with the RDS CA bundle) for
PostgreSQL, and ssl_ca for MySQL/MariaDB (whose login uses the cleartext plugin).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from dbwire.credentials.providers._aws import AwsClient, AwsOptions, aws_error, quiet_aws_logs
from dbwire.credentials.providers.base import (
    Credential,
    LoginTarget,
    PasswordProvider,
    ProviderOptions,
)

__all__ = ["MAX_TTL", "RdsIamProvider"]

# 15 minutes of validity, less a minute for clock skew and a slow login.
MAX_TTL = 840.0


class RdsIamOptions(ProviderOptions, AwsOptions):
    """`{type = "rds_iam", region = "eu-west-1"}`; host, port and user default to the login's."""

    host: str | None = Field(default=None, min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = Field(default=None, min_length=1)
    ttl: float = Field(default=0.0, ge=0, le=MAX_TTL)


class RdsIamProvider(PasswordProvider):
    """rds.generate_db_auth_token(): no network call, only the identity's credentials."""

    name: ClassVar[str] = "rds_iam"
    Options: ClassVar[type[ProviderOptions]] = RdsIamOptions

    def __init__(self, options: ProviderOptions, *, database: str) -> None:
        super().__init__(options, database=database)
        assert isinstance(options, RdsIamOptions)
        self._opts = options
        self._client = AwsClient(self, "rds", options)

    def describe(self) -> str:
        return "'rds_iam'"

    def fetch(self, target: LoginTarget) -> Credential:
        opts = self._opts
        host = opts.host or target.host
        port = opts.port or target.port
        user = opts.user or target.user
        missing = [n for n, v in (("host", host), ("port", port), ("user", user)) if not v]
        if missing:
            raise self.error(
                f"the token signs the {' and '.join(missing)}, and none is configured",
                f"set {', '.join(missing)} in the URL or in password_provider",
            )
        if host is not None and host.startswith("/"):
            raise self.error(
                "the login goes through a Unix socket, which RDS does not offer",
                "connect to the instance's endpoint host name",
            )
        client = self._client.get()
        failure: BaseException | None = None
        try:
            with quiet_aws_logs():
                token = client.generate_db_auth_token(
                    DBHostname=host, Port=port, DBUsername=user, Region=opts.region
                )
        except Exception as exc:
            failure = exc
        if failure is not None:
            raise aws_error(self, failure, what="signing the RDS auth token")
        return Credential(SecretStr(str(token)))
