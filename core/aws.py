"""AWS access for the aws backend: one boto3 session, cached clients, one error vocabulary.

Nothing here talks to AWS at import time: boto3 is imported when the first client is asked
for, so the local backend never pays for it and tests can enter ``moto.mock_aws`` first.
Credentials stay with boto3's own chain (profile, environment, SSO, instance role); no
message or log line written here ever contains an access key, secret or session token.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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
        "InvalidAMIID.NotFound",
        "NotFound",
        "404",
        "ResourceNotFound",
        "ResourceNotFoundException",
    }
)
_EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_EXISTS_CODES = frozenset({"ResourceInUse", "ResourceInUseException", "EntityAlreadyExists", "AlreadyExists"})
_EXISTS_IF_SAID_CODES = frozenset(
    {"ValidationException", "ResourceConflictException", "InvalidParameterValueException", "ConflictException"}
)
_EXISTS_TEXT = re.compile(r"already exist|must be unique", re.I)
_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "SlowDown",
        "TooManyRequestsException",
        "TooManyRequests",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    }
)
_NOT_FOUND_TEXT = re.compile(r"not found|could not find|does not exist|cannot be found", re.I)
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_DENIED_ACTION = re.compile(r"not authorized to perform:? ([\w-]+:[\w*]+)(?: on resource:? \"?([^\s\"]+?)\"?(?:\s|$))?")
_S3_ACTIONS = {
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "DeleteObject": "s3:DeleteObject",
    "DeleteObjects": "s3:DeleteObject",
}
"""The IAM action an S3 call needs: S3 often answers a bare "Access Denied" that names none."""
_ROLE_NOT_ASSUMED = re.compile(
    r"could not assume role|not authorized to assume|unable to assume|cannot be assumed", re.I
)
_ROLE_CODES = frozenset({"ValidationException", "InvalidParameterValueException", "InvalidParameterValue"})
_ROLE_ARN = re.compile(r"arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]*[\w+=,@/-]")
_SERVICE_PRINCIPAL = re.compile(r"\b([a-z0-9-]+\.amazonaws\.com)\b")
_REDIRECT_CODES = frozenset({"PermanentRedirect", "TemporaryRedirect", "301", "307"})
_REGION_IN_TEXT = (
    re.compile(r"expecting '([a-z]{2}(?:-[a-z]+)+-\d+)'"),
    re.compile(r"\bThe ([a-z]{2}(?:-[a-z]+)+-\d+) location constraint"),
    re.compile(r"\bs3[.-]([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com"),
)
_WRONG_REGION_TEXT = re.compile(r"the region '([a-z]{2}(?:-[a-z]+)+-\d+)' is wrong")
_BUCKET_IN_TEXT = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])")
CLIENT_REGION_KEY = "SmcClientRegion"
"""Where an S3 error response notes the region its client was made for (see :meth:`AwsSession.client`)."""
README_IAM = "the README's IAM table lists what each page needs"


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
        ValidationExceptions, ConfigError for a missing region, a bucket in another region
        or an execution role the service cannot assume, BackendError otherwise (access
        denied, throttling, ...). Each message says what is wrong and what to do about it:
        a denied call names the IAM action, a bucket in another region the region to set.
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
        return CredentialsError(_refused_credentials(what, code))
    if code in _ACCESS_DENIED_CODES:
        return BackendError(_access_denied(exc, what, message or code))
    wrong_region = _wrong_region(exc, code, message, status, what)
    if wrong_region:
        return ConfigError(f"{what}: {wrong_region}")
    if code == "NoSuchBucket":
        return BackendError(f"{what}: the S3 bucket does not exist; create it or change SMC_BUCKET")
    if code in _ROLE_CODES and _ROLE_NOT_ASSUMED.search(message):
        return ConfigError(f"{what}: {_role_not_assumed(message)}")
    if code in _NOT_FOUND_CODES or status == 404 or (code == "ValidationException" and _NOT_FOUND_TEXT.search(message)):
        return NotFoundError(f"{what}: not found")
    if code in _EXISTS_CODES or (code in _EXISTS_IF_SAID_CODES and _EXISTS_TEXT.search(message)):
        return AlreadyExistsError(
            f"{what}: the name is taken ({message or code}): choose another name, or delete the existing one first"
        )
    if code == "ValidationException":
        return InvalidInputError(f"{what}: {message or code}")
    if code == "ResourceLimitExceeded":
        return BackendError(
            f"{what}: over this account's quota ({': '.join(filter(None, (code, message)))}). Ask for more in the "
            "Service Quotas console (Amazon SageMaker), or choose fewer or other instances"
        )
    if code in _THROTTLE_CODES or status == 429:
        return BackendError(
            f"{what}: AWS is throttling requests ({code or status}) and still refused after retrying. Wait a "
            "minute and try again; if it keeps happening, run fewer uploads, jobs or open pages at once, or ask "
            "AWS for a higher quota"
        )
    return BackendError(f"{what} failed ({code or status or name}): {message or 'AWS gave no message'}")


def _refused_credentials(what: str, code: str) -> str:
    """What refused credentials mean, and how to get fresh ones (never AWS's message: it may echo the key)."""
    why = "they have expired" if code in _EXPIRED_CODES else "they may be expired, wrong or revoked"
    return (
        f"{what}: AWS refused the credentials ({code}); {why}. Refresh them and try again: `aws sso login` "
        "for an SSO profile (the console picks the new ones up); new keys, in ~/.aws/credentials or AWS_* "
        "environment variables, take effect when the console is restarted"
    )


def _access_denied(exc: BaseException, what: str, message: str) -> str:
    """The action (and resource) refused, from AWS's message or, for S3's bare "Access Denied", the call."""
    found = _DENIED_ACTION.search(message)
    action, resource = (found.group(1), found.group(2)) if found else (None, None)
    if action is None:
        operation = str(getattr(exc, "operation_name", "") or "")
        action = _S3_ACTIONS.get(operation) or (f"the {operation} call" if operation else None)
    if action is None:
        denied = "these credentials lack a permission"
    else:
        denied = f"these credentials may not do {action}" + (f" on {resource}" if resource else "")
    return f"access denied: {what}: {denied}. Ask for this permission; {README_IAM}. AWS said: {message}"


def _wrong_region(exc: BaseException, code: str, message: str, status: int, what: str) -> str | None:
    """For an S3 answer that the bucket lives in another region: which, and what to set. None otherwise.

    botocore follows most of these redirects by itself; what gets here is what it could not follow.
    """
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    metadata = response.get("ResponseMetadata", {})
    malformed = code == "AuthorizationHeaderMalformed" and ("Region" in error or "region" in message)
    if not (code in _REDIRECT_CODES or status in (301, 307) or malformed
            or code == "IllegalLocationConstraintException"):
        return None
    bucket_region = (metadata.get("HTTPHeaders") or {}).get("x-amz-bucket-region") or error.get("Region")
    for pattern in _REGION_IN_TEXT:
        if bucket_region:
            break
        found = pattern.search(f"{message} {error.get('Endpoint', '')}")
        bucket_region = found.group(1) if found else None
    if not bucket_region and str(error.get("Endpoint", "")).endswith("s3.amazonaws.com"):
        bucket_region = "us-east-1"  # the global endpoint names a bucket of us-east-1
    stated = _WRONG_REGION_TEXT.search(message)
    client_region = metadata.get(CLIENT_REGION_KEY) or (stated.group(1) if stated else None)
    named = error.get("BucketName") or error.get("Bucket") or _bucket_in(what)
    bucket = f"bucket {named}" if named else "the bucket"
    here = client_region or "the console's region"
    there = client_region or "the region SMC_REGION names"
    if not bucket_region:
        return (f"{bucket} is in another region than {here}: set SMC_REGION to the bucket's region (the S3 console "
                f"shows it) or use a bucket in {there}")
    return f"{bucket} is in {bucket_region}, not {here}: set SMC_REGION={bucket_region} or use a bucket in {there}"


def _bucket_in(what: str) -> str | None:
    found = _BUCKET_IN_TEXT.search(what)
    return found.group(1) if found else None


def _role_not_assumed(message: str) -> str:
    """Which service could not assume which role, and what its trust policy must allow."""
    arn = _ROLE_ARN.search(message)
    role = f"the execution role {arn.group(0)}" if arn else "the execution role (SMC_ROLE_ARN)"
    if "lambda" in message.lower():
        service, principal = "Lambda", "lambda.amazonaws.com"
        role = f"the function's role {arn.group(0)}" if arn else "the function's role"
    else:
        named = [p for p in _SERVICE_PRINCIPAL.findall(message) if p != "sts.amazonaws.com"]
        principal = named[0] if named else "sagemaker.amazonaws.com"
        service = "SageMaker" if principal == "sagemaker.amazonaws.com" else principal
    return (f"{service} could not assume {role}: its trust policy must allow {principal} "
            f"(see README, IAM). AWS said: {message}")


def roll_back(steps: Sequence[tuple[str, Callable[[], object]]]) -> str | None:
    """Undoes what a failed operation created, newest first, so that nothing half-created is left.

    Args:
        steps: (what a step removes, for the message; the step) in the order things were created.
            A step that finds its resource gone already counts as done.

    Returns:
        None when everything was removed; otherwise a sentence for the failed operation's error,
        naming what is left and why (a clean-up after expired credentials fails as the operation did).
    """
    left: list[str] = []
    reason = ""
    for what, step in reversed(steps):
        try:
            step()
        except Exception as exc:
            if isinstance(translate_client_error(exc, what) if is_aws_error(exc) else exc, NotFoundError):
                continue
            left.append(what)
            reason = reason or _short_reason(exc)
    if not left:
        return None
    return f"Could not remove {', '.join(left)} again ({reason}): delete {'it' if len(left) == 1 else 'them'} by hand"


def _short_reason(exc: BaseException) -> str:
    """The AWS error code behind exc (the failed operation's own error says the rest), else exc's message."""
    for error in (exc, exc.__cause__):
        if error is not None and is_aws_error(error):
            return _client_error_details(error)[0] or type(error).__name__
    return str(exc) or type(exc).__name__


def with_leftovers(error: BaseException, leftovers: str | None) -> BaseException:
    """error, or when a clean-up left something behind and error is a console error, one of its class saying so."""
    if leftovers is None or not isinstance(error, ConsoleError):
        return error
    return type(error)(f"{error}. {leftovers}")


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


SERVICE_REGIONS = {"pricing": "us-east-1"}
"""Services whose API answers in one region for all: the Price List API (us-east-1 serves every
region's prices)."""


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
        region = SERVICE_REGIONS.get(service) or self.region
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
                    client = session.client(service, region_name=region, config=config)
                if service == "s3":
                    client.meta.events.register("after-call.s3", _ClientRegionNote(region))
                self._clients[service] = client
            return self._clients[service]


class _ClientRegionNote:
    """Notes the client's region in S3 error responses, so that a "bucket in another region" error
    can say which region was asked (S3's own answer names only the bucket's)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        if isinstance(parsed, dict) and "Error" in parsed:
            parsed.setdefault("ResponseMetadata", {}).setdefault(CLIENT_REGION_KEY, self.region)
