"""boto3 clients for the AWS providers, and AWS errors turned into CredentialsError.

botocore's exceptions carry the request (URL, headers, sometimes parameters): only the
error code and class name ever reach a dbwire message, and nothing is chained. botocore
also logs at DEBUG what it sends and receives, the secret's value and the signature of
an RDS token included: while a provider calls AWS, botocore's and urllib3's records
below WARNING from that thread are dropped (other threads' AWS calls log as before).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from dbwire.credentials.providers.base import PasswordProvider
from dbwire.errors import CredentialsError, MissingDependencyError

__all__ = ["AwsClient", "AwsOptions", "aws_error", "quiet_aws_logs"]

_TIMEOUT = 10.0
_LOGGER_PREFIXES = ("botocore", "boto3", "urllib3", "s3transfer")


class _QuietFilter(logging.Filter):
    """Drops records below WARNING made on a thread that is inside quiet_aws_logs()."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not getattr(self.local, "depth", 0)


_QUIET = _QuietFilter()
_filtered: set[str] = set()
_filter_lock = threading.Lock()


def _attach_filters() -> None:
    # A logger's filters see only the records made on it, so every botocore module's
    # logger gets one (modules imported since the last call too).
    with _filter_lock:
        for name in list(logging.root.manager.loggerDict):
            if name in _filtered or not name.startswith(_LOGGER_PREFIXES):
                continue
            logger = logging.root.manager.loggerDict[name]
            if isinstance(logger, logging.Logger):
                logger.addFilter(_QUIET)
                _filtered.add(name)


@contextlib.contextmanager
def quiet_aws_logs() -> Iterator[None]:
    """No DEBUG/INFO records from botocore, boto3 or urllib3 on this thread meanwhile."""
    _attach_filters()
    local = _QUIET.local
    local.depth = getattr(local, "depth", 0) + 1
    try:
        yield
    finally:
        local.depth -= 1
        _attach_filters()  # loggers of modules imported during the call


class AwsOptions(BaseModel):
    """The keys both AWS providers take; credentials come from boto3's usual chain."""

    region: str | None = Field(default=None, min_length=1)
    profile: str | None = Field(default=None, min_length=1)
    # A VPC endpoint, or a local test server.
    endpoint_url: str | None = Field(default=None, pattern=r"^https?://")
    timeout: float = Field(default=_TIMEOUT, gt=0)


class AwsClient:
    """One boto3 client per provider, made on first use (boto3 Sessions are not thread-safe)."""

    def __init__(self, provider: PasswordProvider, service: str, options: AwsOptions) -> None:
        self._provider = provider
        self._service = service
        self._options = options
        self._lock = threading.Lock()
        self._client: Any = None

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                with quiet_aws_logs():
                    self._client = self._make()
            return self._client

    def _make(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise MissingDependencyError(
                f"database {self._provider.database!r}: password_provider "
                f"{self._provider.name!r} needs boto3; run: pip install 'dbwire[aws]'",
                database=self._provider.database,
            ) from None
        options = self._options
        failure: BaseException | None = None
        try:
            session = boto3.session.Session(
                profile_name=options.profile, region_name=options.region
            )
            return session.client(
                self._service,
                endpoint_url=options.endpoint_url,
                config=Config(
                    connect_timeout=options.timeout,
                    read_timeout=options.timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        except Exception as exc:
            failure = exc
        raise aws_error(self._provider, failure, what=f"building the {self._service} client")


def aws_error(provider: PasswordProvider, exc: BaseException, *, what: str) -> CredentialsError:
    """The CredentialsError for a failed AWS call: its code, what it means, and the fix."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ProfileNotFound):
        return provider.error(
            "the AWS profile is not in ~/.aws/config", "fix `profile` or create that profile"
        )
    if isinstance(exc, bx.NoRegionError):
        return provider.error(
            f"no AWS region is known for {what}",
            "set `region` in password_provider, or AWS_REGION / AWS_DEFAULT_REGION",
        )
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return provider.error(
            f"no AWS credentials were found for {what}",
            "give the process AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "a `profile`, or an instance / task role)",
        )
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return provider.error(
            f"the AWS endpoint did not answer ({type(exc).__name__}) while {what}",
            "check the network path to AWS (or `endpoint_url`) and retry",
        )
    if isinstance(exc, bx.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "unknown"))
        if code.isdigit():  # an answer botocore could not parse: only the HTTP status is known
            shown = f"HTTP {code}"
            code = {"403": "Forbidden", "404": "ResourceNotFoundException"}.get(code, code)
        else:
            shown = code
        return provider.error(f"AWS refused {what} ({shown})", _client_fix(code))
    return provider.error(
        f"{what} failed ({type(exc).__name__})", "check the provider's options and AWS access"
    )


def _client_fix(code: str) -> str:
    if code in ("AccessDeniedException", "AccessDenied"):
        return (
            "grant this identity secretsmanager:GetSecretValue on the secret "
            "(and kms:Decrypt on its key)"
        )
    if code == "Forbidden":
        return (
            "check that the AWS credentials are valid and that this identity may call "
            "secretsmanager:GetSecretValue on the secret (and kms:Decrypt on its key)"
        )
    if code == "ResourceNotFoundException":
        return (
            "check `secret_id` and `region`, and that a version has the requested `version_stage`"
        )
    if code == "DecryptionFailure":
        return "grant kms:Decrypt on the secret's KMS key"
    if code == "InvalidRequestException":
        return "the secret may be scheduled for deletion: restore it or point to another"
    if code in (
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
    ):
        return "the AWS credentials are wrong or expired: renew them"
    return "see the AWS error code above in the service's documentation"
