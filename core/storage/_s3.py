"""The S3 store: objects under ``s3://bucket/prefix/``, moved with boto3's managed transfer.

An object under 8 MB goes up in one PutObject call and down in one GetObject: what the managed
transfer would send, without the pool of threads it starts and stops for each file (an upload
took 10.4 ms of CPU a file against 6.0, moto on loopback answering both; a dataset is thousands
of small images). Uploads of 8 MB and more go as multipart uploads of 8 MB parts, 8 at a time.
An object appears only when its upload completes, and s3transfer aborts a failed multipart
upload, so a put is all or nothing, as the Storage contract asks. s3transfer calls progress
callbacks from its worker threads; :class:`_ProgressAdder` sums and serialises them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from core.aws import aws_errors, is_aws_error, translate_client_error
from core.datasets.in_place import ListedObject, ObjectPrefix, ObjectPrefixes
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.storage._base import (
    ProgressCallback,
    SafeProgress,
    Storage,
    StoredObject,
    replace_atomically,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig


MB = 1024 * 1024
MULTIPART_THRESHOLD = 8 * MB
MAX_CONCURRENCY = 8
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call accepts


def _transfer_config() -> TransferConfig:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_THRESHOLD,
        max_concurrency=MAX_CONCURRENCY,
        use_threads=True,
        preferred_transfer_client="classic",
    )


class _ProgressAdder:
    """Adds up the byte counts s3transfer reports from its worker threads.

    Each sum is reported under the same lock that computes it, so reports arrive one at a time
    and in order (an out-of-order pair would make a progress bar jump back). The callback is a
    :class:`SafeProgress`: if it raises, the transfer goes on without it.
    """

    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total = total
        self.done = 0
        self._report = SafeProgress(progress)
        self._lock = threading.Lock()
        self._finished = False

    def __call__(self, amount: int) -> None:
        with self._lock:
            self.done += amount  # negative when s3transfer retries a part
            self._finished = self.done == self.total
            self._report(self.done, self.total)

    def finish(self) -> None:
        """Reports completion once more unless the last report already said so."""
        with self._lock:
            if not self._finished:
                self._finished = True
                self._report(self.total, self.total)


class S3Storage(Storage):
    """Objects are S3 objects under ``prefix/`` in ``bucket``.

    Args:
        client: a boto3 S3 client (thread-safe; shared with other users).
        bucket: the bucket name.
        prefix: key prefix every key is stored under ("" for the bucket root).
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = validate_prefix(prefix.strip("/"))

    def _object_key(self, key: str) -> str:
        key = validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        parsed = urlparse(uri)
        object_key = parsed.path.lstrip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        if parsed.scheme != "s3" or parsed.netloc != self.bucket or not object_key.startswith(root):
            raise InvalidInputError(f"{uri} is not in the S3 store s3://{self.bucket}/{root}")
        return validate_key(object_key[len(root) :])

    def put_file(self, local_path: Path, key: str, progress: ProgressCallback | None = None) -> str:
        object_key = self._object_key(key)
        local_path = Path(local_path)
        try:
            total = local_path.stat().st_size
            body = local_path.read_bytes() if total < MULTIPART_THRESHOLD else None
        except OSError as exc:
            raise BackendError(f"could not read {local_path}: {exc.strerror or exc}") from exc
        adder = _ProgressAdder(total, progress)
        with aws_errors(f"uploading {local_path.name} to {self.uri(key)}"):
            if body is not None:  # the one PutObject upload_file would send, without the threads it starts
                self.client.put_object(Bucket=self.bucket, Key=object_key, Body=body)
            else:
                self.client.upload_file(str(local_path), self.bucket, object_key, Callback=adder,
                                        Config=_transfer_config())
        adder.finish()
        return self.uri(key)

    def get_file(self, key: str, local_path: Path, progress: ProgressCallback | None = None) -> Path:
        object_key = self._object_key(key)
        what = f"S3 object {self.uri(key)}"
        with aws_errors(what):
            total = int(self.client.head_object(Bucket=self.bucket, Key=object_key)["ContentLength"])
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".part-{uuid.uuid4().hex}-{local_path.name}")
        adder = _ProgressAdder(total, progress)
        try:
            with aws_errors(what):
                if total < MULTIPART_THRESHOLD:  # one GetObject, as for an upload of its size
                    tmp.write_bytes(self.client.get_object(Bucket=self.bucket, Key=object_key)["Body"].read())
                else:
                    self.client.download_file(self.bucket, object_key, str(tmp), Callback=adder,
                                              Config=_transfer_config())
            replace_atomically(tmp, local_path)
        finally:
            tmp.unlink(missing_ok=True)
        adder.finish()
        return local_path

    def _list_object_keys(self, object_prefix: str) -> list[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        found: list[tuple[str, int]] = []
        with aws_errors(f"listing s3://{self.bucket}/{object_prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=object_prefix):
                found.extend((o["Key"], int(o["Size"])) for o in page.get("Contents", []))
        return found

    def list(self, prefix: str = "") -> list[StoredObject]:
        root = f"{self.prefix}/" if self.prefix else ""
        objects = [
            StoredObject(key=self._relative(k), size=size, uri=f"s3://{self.bucket}/{k}")
            for k, size in self._list_object_keys(root + validate_prefix(prefix))
        ]
        return sorted(objects, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if not is_aws_error(exc):
                raise
            error = translate_client_error(exc, f"S3 object {self.uri(key)}")
            if isinstance(error, NotFoundError):
                return False
            raise error from exc
        return True

    def delete(self, prefix: str) -> int:
        target = self._object_key(prefix)
        keys = [k for k, _ in self._list_object_keys(target) if k == target or k.startswith(target + "/")]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[start : start + _DELETE_BATCH]]
            with aws_errors(f"deleting under {self.uri(prefix)}"):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise BackendError(
                    f"could not delete {len(errors)} object(s) under {self.uri(prefix)}, "
                    f"for example {first.get('Key')}: {first.get('Code')} {first.get('Message', '')}"
                )
        return len(keys)


class S3Prefixes(ObjectPrefixes):
    """Opens any ``s3://bucket/prefix/`` the session's credentials may read."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def open(self, uri: str) -> ObjectPrefix:
        parsed = urlparse(uri.strip())
        if parsed.scheme != "s3" or not parsed.netloc:
            raise InvalidInputError(f"{uri!r} is not an S3 URI: write s3://bucket/prefix/")
        prefix = parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # data/dogs names the folder, never data/dogs-old/
        return S3Prefix(self.client, parsed.netloc, validate_prefix(prefix))


class S3Prefix(ObjectPrefix):
    """The objects below ``s3://bucket/prefix``, listed and read in place."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"

    def list(self, progress: Callable[[int], None] | None = None) -> list[ListedObject]:
        found: list[ListedObject] = []
        try:
            with aws_errors(f"listing {self.uri}"):
                for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                                  Prefix=self.prefix):
                    found.extend(ListedObject(o["Key"][len(self.prefix):], int(o["Size"]))
                                 for o in page.get("Contents", []))
                    if progress:
                        progress(len(found))
        except BackendError as exc:
            if getattr(exc.__cause__, "response", {}).get("Error", {}).get("Code") == "NoSuchBucket":
                raise NotFoundError(f"{self.uri}: there is no bucket {self.bucket!r}: check the URI") from exc
            raise
        return sorted((o for o in found if o.key), key=lambda o: o.key)

    def read(self, key: str) -> bytes:
        with aws_errors(f"reading {self.uri}{key}"):
            return self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
