"""AWS access for the aws backend: one boto3 session, cached clients, one error vocabulary.

Nothing here talks to AWS at import time: boto3 is imported when the first client is asked
for, so the local backend never pays for it and tests can enter ``moto.mock_aws`` first.
Credentials stay with boto3's own chain (profile, environment, SSO, instance role); no
message or log line written here ever contains an access key, secret or session token.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from core.errors import (
    AlreadyExistsError,
    BackendError,
    ConfigError,
    ConsoleError,
    CredentialsError,
    InvalidInputError,
    NotFoundError,
)

if TYPE_CHECKING:
    import boto3

    from core.config import Settings

NO_CREDENTIALS_MESSAGE = (
    "No AWS credentials found: set a profile (SMC_AWS_PROFILE) or the AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY environment variables, or run `aws sso login` for an SSO profile"
)

_REFUSED_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "RequestExpired",
        "InvalidToken",
    }
)
_ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden", "403", "UnauthorizedOperation"})
_NOT_FOUND_CODES = frozenset(
    {
        "NoSuchKey",
        "NoSuchEntity",
        "NoSuchUpload",
        "NotFound",
        "404",
        "ResourceNotFound",
        "ResourceNotFoundException",
    }
)
_EXISTS_CODES = frozenset({"ResourceInUse", "ResourceInUseException", "EntityAlreadyExists", "AlreadyExists"})
_THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "SlowDown", "TooManyRequestsException"})
_NOT_FOUND_TEXT = re.compile(r"not found|could not find|does not exist|cannot be found", re.I)
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")


def _redact(text: str) -> str:
    """Removes anything shaped like an AWS access key id from text."""
    return _ACCESS_KEY.sub("<redacted>", text)


def is_aws_error(exc: BaseException) -> bool:
    """True if exc comes from botocore or boto3 (and so should be translated)."""
    module = type(exc).__module__
    return module.startswith(("botocore", "boto3", "s3transfer"))


def _text(exc: BaseException) -> str:
    """exc's message with keys redacted, or its type's name when the message is empty."""
    return _redact(str(exc)) or type(exc).__name__


def _client_error_details(exc: BaseException) -> tuple[str, str, int]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "")), _redact(str(error.get("Message", ""))), status


def translate_client_error(exc: BaseException, what: str) -> ConsoleError:
    """The console error that stands for a botocore/boto3 exception.

    Callers raise the result: ``raise translate_client_error(exc, "reading x") from exc``.

    Args:
        exc: the exception boto3 raised (ClientError, NoCredentialsError, ...).
        what: what was being done or looked up, for the message ("S3 object data/x.zip").

    Returns:
        NotFoundError for missing resources (NoSuchKey, 404, ResourceNotFound, a
        ValidationException that says "not found"), AlreadyExistsError for names in use,
        CredentialsError for missing or refused credentials, InvalidInputError for other
        ValidationExceptions, ConfigError for a missing region, BackendError otherwise.
    """
    from botocore import exceptions as bce

    name = type(exc).__name__
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return CredentialsError(NO_CREDENTIALS_MESSAGE)
    if isinstance(exc, bce.ProfileNotFound):
        return CredentialsError(
            f"AWS profile {getattr(exc, 'kwargs', {}).get('profile', '')!r} not found: "
            "check SMC_AWS_PROFILE and ~/.aws/config"
        )
    if isinstance(exc, (bce.SSOError, bce.TokenRetrievalError, bce.CredentialRetrievalError)):
        return CredentialsError(
            f"{what}: AWS credentials could not be loaded ({name}); for an SSO profile run `aws sso login`"
        )
    if isinstance(exc, bce.NoRegionError):
        return ConfigError("no AWS region configured: set SMC_REGION (or AWS_DEFAULT_REGION)")
    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
        return BackendError(f"{what}: could not reach AWS ({name}); check the network")
    if isinstance(exc, bce.ParamValidationError):
        return InvalidInputError(f"{what}: {_text(exc)}")
    if not isinstance(exc, bce.ClientError):
        cause = exc.__cause__ or exc.__context__
        if cause is not None and is_aws_error(cause):
            return translate_client_error(cause, what)
        return BackendError(f"{what} failed: {_text(exc)}")

    code, message, status = _client_error_details(exc)
    if code in _REFUSED_CREDENTIAL_CODES:
        return CredentialsError(
            f"{what}: AWS refused the credentials ({code}); they may be expired or wrong. "
            "Refresh them (for example `aws sso login`) or check SMC_AWS_PROFILE"
        )
    if code in _ACCESS_DENIED_CODES:
        return BackendError(f"access denied: {what}: {message or code}")
    if code == "NoSuchBucket":
        return BackendError(f"{what}: the S3 bucket does not exist; create it or change SMC_BUCKET")
    if code in _NOT_FOUND_CODES or status == 404 or (code == "ValidationException" and _NOT_FOUND_TEXT.search(message)):
        return NotFoundError(f"{what}: not found")
    if code in _EXISTS_CODES:
        return AlreadyExistsError(f"{what}: already exists ({message or code})")
    if code == "ValidationException":
        return InvalidInputError(f"{what}: {message or code}")
    if code in _THROTTLE_CODES:
        return BackendError(f"{what}: AWS is throttling requests ({code}); try again shortly")
    return BackendError(f"{what} failed ({code or status or name}): {message or 'AWS gave no message'}")


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Translates botocore/boto3 errors raised in the block (see translate_client_error).

    Raises:
        ConsoleError: the translated error, chained to the original.
    """
    try:
        yield
    except Exception as exc:
        if is_aws_error(exc):
            raise translate_client_error(exc, what) from exc
        raise


class AwsSession:
    """A lazily created boto3 session and one cached client per service.

    boto3 sessions are not thread-safe while they create clients, clients are: creation
    runs under a lock and every caller then shares the same client. Tests inject a
    ``boto_session`` or create the AwsSession inside ``mock_aws``: no client exists before
    the first :meth:`client` call.

    Args:
        settings: the aws_profile and region to use; None uses boto3's defaults.
        boto_session: a ready boto3 session (tests); settings' profile is then unused.
    """

    def __init__(self, settings: Settings | None = None, *, boto_session: boto3.Session | None = None) -> None:
        self._profile = settings.aws_profile if settings else None
        self._region = settings.region if settings else None
        self._session = boto_session
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def boto_session(self) -> boto3.Session:
        """The boto3 session, created on first use.

        Raises:
            CredentialsError: the named profile does not exist.
        """
        with self._lock:
            return self._boto_session_locked()

    def _boto_session_locked(self) -> boto3.Session:
        if self._session is None:
            import boto3

            with aws_errors("opening an AWS session"):
                self._session = boto3.Session(profile_name=self._profile, region_name=self._region)
        return self._session

    @property
    def region(self) -> str:
        """The region clients use.

        Raises:
            ConfigError: neither settings nor the profile name a region.
        """
        region = self._region or self.boto_session.region_name
        if not region:
            raise ConfigError("no AWS region configured: set SMC_REGION (or AWS_DEFAULT_REGION)")
        return str(region)

    def client(self, service: str) -> Any:
        """The shared boto3 client for service (``"s3"``, ``"sagemaker"``, ...).

        Raises:
            CredentialsError: the named profile does not exist.
            ConfigError: no region is configured.
        """
        region = self.region
        with self._lock:
            if service not in self._clients:
                from botocore.config import Config

                config = Config(
                    retries={"mode": "standard", "max_attempts": 5},
                    connect_timeout=10,
                    read_timeout=60,
                    user_agent_extra="sm-console",
                )
                session = self._boto_session_locked()
                with aws_errors(f"creating the {service} client"):
                    self._clients[service] = session.client(service, region_name=region, config=config)
            return self._clients[service]
