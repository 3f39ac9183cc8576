"""The S3 store against moto (transfers, multipart, listing, deletion, URIs), the AWS session,
and how botocore errors become console errors without leaking secrets."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ProfileNotFound
from moto import mock_aws

from core.aws import AwsSession, aws_errors, translate_client_error
from core.backend import get_backend
from core.catalog import register_dataset
from core.config import Settings
from core.errors import (
    AlreadyExistsError,
    BackendError,
    ConfigError,
    CredentialsError,
    InvalidInputError,
    NotFoundError,
)
from core.progress import run_with_progress
from core.storage._s3 import MB, S3Storage
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    BUCKET,
    PREFIX,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    clear_aws_environment,
    no_network_fixture,
)


@pytest.fixture
def storage(aws: AwsSession) -> S3Storage:
    return S3Storage(aws.client("s3"), BUCKET, PREFIX)


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _client_error(code: str, message: str, status: int = 400, operation: str = "Op") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


# --- URIs and keys -------------------------------------------------------------------------


def test_uris_and_keys(storage: S3Storage, aws: AwsSession) -> None:
    assert storage.uri("datasets/d.zip") == f"s3://{BUCKET}/{PREFIX}/datasets/d.zip"
    assert storage.key_from_uri(f"s3://{BUCKET}/{PREFIX}/datasets/d.zip") == "datasets/d.zip"
    for foreign in (f"s3://other/{PREFIX}/x", f"s3://{BUCKET}/elsewhere/x", f"file:///{PREFIX}/x"):
        with pytest.raises(InvalidInputError):
            storage.key_from_uri(foreign)
    for bad in ("../x", "/abs", "a/../b", ""):
        with pytest.raises(InvalidInputError):
            storage.uri(bad)
    root = S3Storage(aws.client("s3"), BUCKET, "")
    assert root.uri("a/b") == f"s3://{BUCKET}/a/b"
    assert root.key_from_uri(f"s3://{BUCKET}/a/b") == "a/b"
    with pytest.raises(InvalidInputError):
        S3Storage(aws.client("s3"), BUCKET, "../escape")


# --- files -------------------------------------------------------------------------------


def test_put_and_get_file_with_progress(storage: S3Storage, aws: AwsSession, tmp_path: Path) -> None:
    source = _file(tmp_path / "small.bin", 300_000)
    seen: list[tuple[int, int]] = []
    uri = storage.put_file(source, "data/small.bin", lambda d, t: seen.append((d, t)))
    assert uri == f"s3://{BUCKET}/{PREFIX}/data/small.bin"
    assert seen[-1] == (300_000, 300_000)
    head = aws.client("s3").head_object(Bucket=BUCKET, Key=f"{PREFIX}/data/small.bin")
    assert head["ContentLength"] == 300_000
    assert storage.exists("data/small.bin") and not storage.exists("data")

    got: list[tuple[int, int]] = []
    target = tmp_path / "out" / "small.bin"
    assert storage.get_file("data/small.bin", target, lambda d, t: got.append((d, t))) == target
    assert _sha(target) == _sha(source)
    assert got[-1] == (300_000, 300_000)
    assert sorted(p.name for p in target.parent.iterdir()) == ["small.bin"]


def test_a_small_file_is_one_request_each_way(storage: S3Storage, tmp_path: Path) -> None:
    """Below the multipart threshold, no managed transfer: one PutObject up, one HeadObject and one
    GetObject down."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    source = _file(tmp_path / "one.jpg", 3_000)
    storage.client.meta.events.register("before-call.s3", record)
    try:
        storage.put_file(source, "images/one.jpg")
        storage.get_file("images/one.jpg", tmp_path / "copy.jpg")
    finally:
        storage.client.meta.events.unregister("before-call.s3", record)
    assert calls == ["PutObject", "HeadObject", "GetObject"]
    assert _sha(tmp_path / "copy.jpg") == _sha(source)


def test_empty_file_reports_completion(storage: S3Storage, tmp_path: Path) -> None:
    source = _file(tmp_path / "empty", 0)
    seen: list[tuple[int, int]] = []
    storage.put_file(source, "empty", lambda d, t: seen.append((d, t)))
    assert seen == [(0, 0)]
    assert storage.list()[0].size == 0


def test_large_file_goes_multipart_and_round_trips(storage: S3Storage, aws: AwsSession, tmp_path: Path) -> None:
    size = 2 * 8 * MB + 12_345  # three 8 MB parts
    source = _file(tmp_path / "big.bin", size)
    seen: list[tuple[int, int]] = []
    storage.put_file(source, "big/big.bin", lambda d, t: seen.append((d, t)))
    assert seen[-1] == (size, size)
    assert all(t == size for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    etag = aws.client("s3").head_object(Bucket=BUCKET, Key=f"{PREFIX}/big/big.bin")["ETag"]
    assert etag.strip('"').endswith("-3"), etag  # the ETag of a three-part multipart upload

    got: list[tuple[int, int]] = []
    target = tmp_path / "big-copy.bin"
    storage.get_file("big/big.bin", target, lambda d, t: got.append((d, t)))
    assert _sha(target) == _sha(source)
    assert got[-1] == (size, size)


def test_failed_multipart_upload_leaves_nothing_behind(storage: S3Storage, aws: AwsSession, tmp_path: Path) -> None:
    source = _file(tmp_path / "big.bin", 3 * 8 * MB)
    client = aws.client("s3")
    calls: list[str] = []

    def fail_second_part(**kwargs: Any) -> None:
        calls.append("part")
        if len(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://s3.example")

    def aborted(**kwargs: Any) -> None:
        calls.append("abort")

    client.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    client.meta.events.register("before-call.s3.AbortMultipartUpload", aborted)
    try:
        with pytest.raises(BackendError, match="could not reach AWS"):
            storage.put_file(source, "big/broken.bin")
    finally:
        client.meta.events.unregister("before-call.s3.UploadPart", fail_second_part)
        client.meta.events.unregister("before-call.s3.AbortMultipartUpload", aborted)
    assert "abort" in calls
    assert not storage.exists("big/broken.bin")
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_missing_object_is_not_found_and_leaves_no_file(storage: S3Storage, tmp_path: Path) -> None:
    target = tmp_path / "out" / "missing.bin"
    with pytest.raises(NotFoundError, match="not found"):
        storage.get_file("nope/missing.bin", target)
    assert not target.exists()
    assert not any(target.parent.iterdir()) if target.parent.exists() else True
    assert not storage.exists("nope/missing.bin")


def test_missing_local_file_and_missing_bucket(aws: AwsSession, tmp_path: Path) -> None:
    storage = S3Storage(aws.client("s3"), BUCKET, PREFIX)
    with pytest.raises(BackendError, match="could not read"):
        storage.put_file(tmp_path / "absent.bin", "x")
    nowhere = S3Storage(aws.client("s3"), "no-such-bucket-here", PREFIX)
    with pytest.raises(BackendError, match="bucket does not exist"):
        nowhere.put_file(_file(tmp_path / "f", 10), "x")


# --- listing and deletion ------------------------------------------------------------------


def test_list_is_sorted_relative_and_stays_inside_the_prefix(
    storage: S3Storage, aws: AwsSession, tmp_path: Path
) -> None:
    for key, size in (("ds/b.txt", 2), ("ds/a/1.txt", 1), ("other/c.txt", 3)):
        storage.put_file(_file(tmp_path / key, size), key)
    aws.client("s3").put_object(Bucket=BUCKET, Key="outside/ds/z.txt", Body=b"z")
    listed = storage.list()
    assert [(o.key, o.size) for o in listed] == [("ds/a/1.txt", 1), ("ds/b.txt", 2), ("other/c.txt", 3)]
    assert listed[0].uri == f"s3://{BUCKET}/{PREFIX}/ds/a/1.txt"
    assert [o.key for o in storage.list("ds/")] == ["ds/a/1.txt", "ds/b.txt"]
    assert storage.list("nothing/") == []
    with pytest.raises(InvalidInputError):
        storage.list("../")


def test_delete_prefix_spares_siblings_with_a_common_start(storage: S3Storage, tmp_path: Path) -> None:
    for key in ("ds/a.txt", "ds/sub/b.txt", "ds2/c.txt", "single.txt"):
        storage.put_file(_file(tmp_path / key, 4), key)
    assert storage.delete("ds") == 2
    assert [o.key for o in storage.list()] == ["ds2/c.txt", "single.txt"]
    assert storage.delete("single.txt") == 1
    assert storage.delete("nothing") == 0
    assert [o.key for o in storage.list()] == ["ds2/c.txt"]


def test_delete_batches_a_thousand_keys_per_call(storage: S3Storage, aws: AwsSession) -> None:
    client = aws.client("s3")
    for i in range(1003):
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/many/{i:04d}", Body=b"")
    batches: list[int] = []

    def count(params: dict[str, Any], **kwargs: Any) -> None:
        batches.append(len(params["Delete"]["Objects"]))

    client.meta.events.register("provide-client-params.s3.DeleteObjects", count)
    try:
        assert storage.delete("many") == 1003
    finally:
        client.meta.events.unregister("provide-client-params.s3.DeleteObjects", count)
    assert batches == [1000, 3]
    assert storage.list("many/") == []


def test_folder_round_trip_with_progress(storage: S3Storage, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    for name in ("train/a/1.jpg", "train/b/2.jpg", "valid/a/3.jpg"):
        _file(folder / name, 5)
    totals: list[tuple[int, int]] = []
    uri = storage.put_folder(folder, "datasets/ds", lambda d, t: totals.append((d, t)))
    assert uri == f"s3://{BUCKET}/{PREFIX}/datasets/ds"
    assert totals[-1] == (15, 15)
    back: list[tuple[int, int]] = []
    storage.get_folder("datasets/ds", tmp_path / "back", lambda d, t: back.append((d, t)))
    assert back[-1] == (15, 15)
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in (tmp_path / "back").rglob("*.jpg")) == [
        "train/a/1.jpg",
        "train/b/2.jpg",
        "valid/a/3.jpg",
    ]


# --- progress from s3transfer's threads ---------------------------------------------------


class _NoSessionContext(Exception):
    """Stands for Streamlit's NoSessionContext: raised, with an empty message, by a widget updated off its thread."""


class _OwnerBoundProgress:
    """A progress callback that, like a Streamlit widget, works only on the thread that made it."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.values: list[tuple[int, int]] = []
        self.off_thread = 0

    def __call__(self, done: int, total: int) -> None:
        if threading.get_ident() != self.owner:
            self.off_thread += 1
            raise _NoSessionContext()
        self.values.append((done, total))


def _dataset_folder(root: Path) -> dict[str, int]:
    """A folder of several files, one of them large enough for a three-part multipart upload."""
    sizes = {"train/a/1.jpg": 70_000, "train/b/2.jpg": 3_000, "valid/a/big.jpg": 2 * 8 * MB + 1_000, "test/b/4.jpg": 1}
    for name, size in sizes.items():
        _file(root / name, size)
    return sizes


def test_a_progress_callback_that_fails_off_its_thread_does_not_fail_the_upload(
    storage: S3Storage, aws: AwsSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = _dataset_folder(tmp_path / "ds")
    progress = _OwnerBoundProgress()
    with caplog.at_level(logging.WARNING, logger="core.storage._base"):
        storage.put_folder(tmp_path / "ds", "datasets/ds", progress)  # s3transfer calls it from its threads
    assert progress.off_thread >= 1  # the failure this guards against did happen ...
    assert {o.key: o.size for o in storage.list("datasets/ds/")} == {f"datasets/ds/{k}": v for k, v in sizes.items()}
    assert any("the transfer goes on without progress reports" in r.getMessage() for r in caplog.records)


def test_an_upload_through_the_relay_reports_progress_on_the_calling_thread_only(
    aws: AwsSession, aws_settings: Settings, tmp_path: Path
) -> None:
    sizes = _dataset_folder(tmp_path / "ds")
    total = sum(sizes.values()) + len("[]")  # and excluded.json
    progress = _OwnerBoundProgress()
    reporters: set[int] = set()
    backend = get_backend(aws_settings, aws_session=aws)

    def upload(report: Any) -> Any:
        def counted(done: int, total: int) -> None:
            reporters.add(threading.get_ident())
            report(done, total)

        return register_dataset(backend, tmp_path / "ds", name="digits", source="folder", report={}, progress=counted)

    record = run_with_progress(upload, progress, poll_interval_s=0.01)
    assert reporters and progress.owner not in reporters  # reports came from other threads ...
    assert progress.off_thread == 0  # ... and reached the callback on this thread only
    assert progress.values[-1] == (total, total)
    assert [d for d, _ in progress.values] == sorted(d for d, _ in progress.values)
    assert record.uri == f"s3://{BUCKET}/{PREFIX}/datasets/digits"
    assert [d.name for d in backend.store.list_datasets()] == ["digits"]
    objects = {o.key: o.size for o in backend.storage.list("datasets/digits/")}
    assert objects.pop("datasets/digits/excluded.json") == 2  # "[]": nothing left out
    assert objects == {f"datasets/digits/{k}": v for k, v in sizes.items()}
    big = aws.client("s3").head_object(Bucket=BUCKET, Key=f"{PREFIX}/datasets/digits/valid/a/big.jpg")
    assert big["ETag"].strip('"').endswith("-3")  # multipart: its parts went up from several threads


# --- the session ---------------------------------------------------------------------------


def test_session_creates_clients_lazily_and_shares_them(
    aws_credentials: None, aws_settings: Settings, tmp_path: Path
) -> None:
    session = AwsSession(aws_settings)  # before the mock: nothing may have been created yet
    with mock_aws():
        s3 = session.client("s3")
        assert session.client("s3") is s3
        s3.create_bucket(Bucket=BUCKET)  # reaches moto, so the client was made inside the mock
        assert session.region == "us-east-1"


def test_unknown_profile_and_missing_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    with pytest.raises(CredentialsError, match="'nobody' not found"):
        AwsSession(Settings(aws_profile="nobody")).client("s3")
    with pytest.raises(ConfigError, match="SMC_REGION"):
        AwsSession(Settings()).client("s3")


def test_no_credentials_become_a_clear_credentials_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    storage = S3Storage(AwsSession(Settings(region="us-east-1")).client("s3"), BUCKET, PREFIX)
    with pytest.raises(CredentialsError, match=r"No AWS credentials found.*SMC_AWS_PROFILE"):
        storage.exists("x")


# --- error translation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("NoSuchKey", "The specified key does not exist.", 404, NotFoundError),
        ("404", "Not Found", 404, NotFoundError),
        ("ResourceNotFoundException", "The specified log group does not exist.", 400, NotFoundError),
        ("ValidationException", "Requested resource not found.", 400, NotFoundError),
        ("ValidationException", "Could not find training job 'x'.", 400, NotFoundError),
        ("ValidationException", "1 validation error: instanceType", 400, InvalidInputError),
        ("ResourceInUse", "Training job names must be unique", 400, AlreadyExistsError),
        ("ExpiredToken", "The security token included in the request is expired", 400, CredentialsError),
        ("InvalidClientTokenId", "The security token included in the request is invalid.", 403, CredentialsError),
        ("AccessDenied", "User: arn:aws:iam::1:user/u is not authorized", 403, BackendError),
        ("ThrottlingException", "Rate exceeded", 400, BackendError),
        ("InternalFailure", "boom", 500, BackendError),
    ],
)
def test_client_errors_map_to_console_errors(code: str, message: str, status: int, expected: type) -> None:
    error = translate_client_error(_client_error(code, message, status), "thing x")
    assert type(error) is expected
    assert str(error).startswith(("thing x", "access denied: thing x"))


def test_access_denied_names_the_action_and_redacts_keys() -> None:
    error = translate_client_error(
        _client_error("AccessDenied", "denied for key AKIAABCDEFGHIJKLMNOP in this request", 403), "reading s3://b/k"
    )
    assert str(error).startswith("access denied: reading s3://b/k")
    assert "AKIAABCDEFGHIJKLMNOP" not in str(error) and "<redacted>" in str(error)


def test_refused_credentials_never_echo_the_aws_message() -> None:
    error = translate_client_error(
        _client_error("SignatureDoesNotMatch", "AWSAccessKeyId AKIAABCDEFGHIJKLMNOP StringToSign ...", 403), "s3"
    )
    assert isinstance(error, CredentialsError)
    assert "AKIA" not in str(error) and "StringToSign" not in str(error)


def test_errors_without_a_message_still_say_what_failed() -> None:
    assert str(translate_client_error(S3UploadFailedError(), "uploading x")) == (
        "uploading x failed: S3UploadFailedError"
    )
    assert str(translate_client_error(_client_error("InternalError", "", 500), "uploading x")) == (
        "uploading x failed (InternalError): AWS gave no message"
    )
    assert str(translate_client_error(ClientError({}, "PutObject"), "uploading x")) == (
        "uploading x failed (ClientError): AWS gave no message"
    )
    assert str(translate_client_error(_client_error("ValidationException", ""), "tuning x")) == (
        "tuning x: ValidationException"
    )


def test_aws_errors_translates_botocore_and_passes_other_errors_through() -> None:
    with pytest.raises(CredentialsError) as caught:
        with aws_errors("listing"):
            raise NoCredentialsError()
    assert isinstance(caught.value.__cause__, NoCredentialsError)
    with pytest.raises(CredentialsError, match="'dev' not found"):
        with aws_errors("opening"):
            raise ProfileNotFound(profile="dev")
    with pytest.raises(KeyError):
        with aws_errors("listing"):
            raise KeyError("not from botocore")
