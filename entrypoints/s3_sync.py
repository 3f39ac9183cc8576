"""A folder and an S3 prefix kept in step while a job runs: the uploader (job side) and the mirror (reader side).

The training script's profiler writes files that only grow (JSON lines appended every sample or
step) or appear whole (a trace renamed into place). :class:`FolderUploader` copies the new and
changed ones to S3 every few seconds and once more at the end; :class:`S3Mirror` copies new and
changed objects back into a local folder, so readers built for local files read them. Both
cost one request per changed file plus, for the mirror, one listing per 1,000 objects.

Self-contained (entrypoints import nothing from the console); boto3 is imported when a client
is first needed, so a job that never uploads does not need it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

LOG = logging.getLogger("train.profiling")
UPLOAD_EVERY_S = 10.0


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix) of ``s3://bucket/some/prefix``; the prefix is empty or ends with ``/``.

    Raises:
        ValueError: not an ``s3://`` URI, or no bucket.
    """
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri}: not an s3:// URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{uri}: an S3 URI needs a bucket (s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_client() -> Any:
    """An S3 client from the default credential chain, with short timeouts: a slow S3 must not hang a job's exit."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", config=config)


class FolderUploader:
    """Uploads a folder's new and changed files to an S3 prefix: every ``interval_s`` in a thread, once more at close.

    Names starting with ``.`` are skipped (files being written, renamed into place when whole).
    A file is sent whole each time its size or modification time changed; a file still being
    appended may end with a partial line, which readers leave for the next copy. A failed
    upload is logged once (until uploads succeed again) and retried at the next pass: nothing
    here raises into the training.

    Args:
        folder: the local folder (it may not exist yet).
        uri: ``s3://bucket/prefix`` the folder's relative paths are appended to.
        interval_s: seconds between passes.
        client: an S3 client (default: :func:`s3_client`, made at the first pass).
    """

    def __init__(self, folder: Path, uri: str, *, interval_s: float = UPLOAD_EVERY_S, client: Any = None) -> None:
        self.folder = Path(folder)
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self.interval_s = interval_s
        self._client = client
        self._sent: dict[Path, tuple[int, int]] = {}
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profiler-uploader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stops the thread and makes the last pass (what the job wrote at its end)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sync()

    def sync(self) -> int:
        """One pass; returns how many files went up."""
        sent = 0
        try:
            for path, signature in self._changed():
                try:
                    body = path.read_bytes()
                except FileNotFoundError:  # removed since the walk
                    continue
                if self._client is None:
                    self._client = s3_client()
                key = self.prefix + path.relative_to(self.folder).as_posix()
                self._client.put_object(Bucket=self.bucket, Key=key, Body=body)
                self._sent[path] = signature
                sent += 1
        except Exception as exc:  # network, credentials, permissions: retried at the next pass
            if not self._failing:
                LOG.warning("profiler: uploading to %s failed; retrying every %.0f s: %s", self.uri, self.interval_s,
                            exc)
            self._failing = True
            return sent
        if self._failing and sent:
            LOG.info("profiler: uploads to %s resumed", self.uri)
            self._failing = False
        return sent

    def _changed(self) -> Iterator[tuple[Path, tuple[int, int]]]:
        """(path, (size, mtime)) of the files not sent yet in their current state."""
        for root, folders, files in os.walk(self.folder):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                path = Path(root) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                signature = (stat.st_size, stat.st_mtime_ns)
                if self._sent.get(path) != signature:
                    yield path, signature

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sync()


class S3Mirror:
    """A local copy of an S3 prefix: each :meth:`sync` lists the prefix once and downloads new or changed objects.

    Objects arrive whole (written under a temporary name, then renamed), so a local reader
    never sees half an object. Keys that would land outside the folder are ignored.

    Args:
        uri: ``s3://bucket/prefix`` to copy.
        folder: where its objects go, at their path relative to the prefix.
        client: an S3 client (default: :func:`s3_client`).
    """

    def __init__(self, uri: str, folder: Path, *, client: Any = None) -> None:
        self.uri = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self.folder = Path(folder)
        self._client = client
        self._seen: dict[str, tuple[int, str]] = {}

    @property
    def objects(self) -> int:
        """Objects copied so far."""
        return len(self._seen)

    def sync(self) -> int:
        """One pass; returns how many objects were downloaded.

        Raises:
            botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError: S3 failed.
        """
        if self._client is None:
            self._client = s3_client()
        downloaded = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                signature = (int(item["Size"]), str(item.get("ETag", "")))
                target = self._target(key)
                if target is None or self._seen.get(key) == signature:
                    continue
                body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial")
                partial.write_bytes(body)
                os.replace(partial, target)
                self._seen[key] = signature
                downloaded += 1
        return downloaded

    def _target(self, key: str) -> Path | None:
        parts = PurePosixPath(key[len(self.prefix):]).parts
        if not parts or key.endswith("/") or any(p in ("..", ".") or p.startswith(".") for p in parts):
            return None
        return self.folder.joinpath(*parts)
