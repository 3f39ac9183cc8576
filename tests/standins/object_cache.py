"""The objects the container stand-in has already downloaded from moto, kept by content.

SageMaker downloads every channel afresh for each job. On one machine that is the cost of the
stand-in, not of what it checks: a tuning job's trials, or a job on a dataset copied to another
bucket, download the same bytes again, one request per object, through a moto server that shares
the test's process (about 8 ms of CPU an object; the demo has 1,797). S3 names an object's content
by its ETag (the MD5 of a single-part upload's bytes, or of its parts' MD5s), so an object listed
with an ETag and size the cache holds is copied from the cache instead of fetched.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path


class ObjectCache:
    """Object bytes on disk under ``root``, one file per (ETag, size); safe for concurrent jobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def copy_to(self, target: Path, etag: str, size: int, fetch: Callable[[], tuple[bytes, str]]) -> None:
        """Writes the object listed with ``etag`` and ``size`` to ``target``.

        ``fetch`` downloads it (its bytes and the ETag the download answered with) when no job has
        yet. Two jobs wanting the same object at once download it once: the second waits for the first.
        """
        name = f"{etag.strip(chr(34))}-{size}"
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        cached = self.root / name
        with lock:
            if not cached.exists():
                body, answered_etag = fetch()
                target.write_bytes(body)
                if answered_etag == etag and len(body) == size:  # else replaced since it was listed: not kept
                    self.root.mkdir(parents=True, exist_ok=True)
                    partial = cached.with_name(f"{name}.partial")
                    partial.write_bytes(body)
                    partial.replace(cached)
                return
        shutil.copyfile(cached, target)
