"""The storage interface shared by the local store and S3."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.errors import InvalidInputError

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a transfer runs."""


@dataclass(frozen=True)
class StoredObject:
    """One object in storage."""

    key: str
    size: int
    uri: str


def validate_key(key: str) -> str:
    """Returns key if it is a safe relative '/'-separated key.

    Raises:
        InvalidInputError: empty, absolute, or containing '..' or a backslash.
    """
    parts = key.rstrip("/").split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"invalid storage key {key!r}: use a relative path without '..'")
    return key.rstrip("/")


class Storage(ABC):
    """Put and get files and folders in a backend's object store.

    Invariants: keys are relative, '/'-separated, never contain '..'. A URI returned by
    :meth:`uri` is what a training job consumes as a channel (``file://`` locally,
    ``s3://`` on AWS). A put is all or nothing: a failed transfer leaves no object behind.
    Implementations are safe to use from several threads.
    """

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI of key (whether or not it exists)."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """The key that uri names. Raises InvalidInputError for a URI of another store."""

    @abstractmethod
    def put_file(self, local_path: Path, key: str, progress: ProgressCallback | None = None) -> str:
        """Uploads one file and returns its URI. Raises BackendError on failure."""

    @abstractmethod
    def get_file(self, key: str, local_path: Path, progress: ProgressCallback | None = None) -> Path:
        """Downloads one object. Raises NotFoundError if it does not exist."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Every object whose key starts with prefix, sorted by key."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object with exactly this key exists."""

    @abstractmethod
    def delete(self, prefix: str) -> int:
        """Deletes the object ``prefix`` and every object under ``prefix/``; returns how many."""

    def put_folder(self, folder: Path, prefix: str, progress: ProgressCallback | None = None) -> str:
        """Uploads every file below folder under prefix and returns the prefix's URI.

        On failure, what was already uploaded under prefix is deleted again.
        """
        prefix = validate_key(prefix)
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)
        done = 0
        try:
            for path in files:
                base = done

                def file_progress(n: int, _t: int, base: int = base) -> None:
                    if progress:
                        progress(base + n, total)

                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                self.put_file(path, key, file_progress)
                done = base + path.stat().st_size
        except BaseException:
            self.delete(prefix)
            raise
        if progress:
            progress(total, total)
        return self.uri(prefix)

    def get_folder(self, prefix: str, folder: Path, progress: ProgressCallback | None = None) -> Path:
        """Downloads every object under prefix into folder, keeping relative paths."""
        prefix = validate_key(prefix)
        objects = [o for o in self.list(prefix + "/")]
        total = sum(o.size for o in objects)
        done = 0
        for obj in objects:
            relative = obj.key[len(prefix) + 1 :]
            target = Path(folder) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            base = done
            self.get_file(obj.key, target, (lambda n, _t, b=base: progress(b + n, total)) if progress else None)
            done = base + obj.size
        return Path(folder)


def replace_atomically(tmp_path: Path, final_path: Path) -> None:
    """Moves a fully written temporary file into place (same filesystem, one rename)."""
    final_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_path, final_path)
