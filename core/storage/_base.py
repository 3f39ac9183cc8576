"""The storage interface shared by the local store and S3."""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import ConsoleError, InvalidInputError

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a transfer runs (see :class:`Storage`)."""


@dataclass(frozen=True)
class StoredObject:
    """One object in storage."""

    key: str
    size: int
    uri: str


class SafeProgress:
    """A progress callback made safe for any thread, wrapping the caller's (which may be None).

    Calls reach the wrapped callback one at a time. If it raises an Exception, the error is
    logged with its traceback and the callback is not called again: a broken progress display
    must not fail the transfer it reports on (Streamlit's NoSessionContext, raised by a widget
    updated from s3transfer's threads, once failed every S3 upload with an empty message). A
    BaseException (KeyboardInterrupt, Streamlit's StopException on the caller's thread) still
    propagates: it stops the transfer on purpose.
    """

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            if self._progress is None:
                return
            try:
                self._progress(done, total)
            except Exception:
                logger.warning("the progress callback %r raised; the transfer goes on without progress reports",
                               self._progress, exc_info=True)
                self._progress = None


def validate_key(key: str) -> str:
    """Returns key if it is a safe relative '/'-separated key.

    Raises:
        InvalidInputError: empty, absolute, or containing '..' or a backslash.
    """
    parts = key.rstrip("/").split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"invalid storage key {key!r}: use a relative path without '..'")
    return key.rstrip("/")


def validate_prefix(prefix: str) -> str:
    """Returns prefix if it is relative and climbs no folder ("" and a trailing '/' are fine).

    Raises:
        InvalidInputError: absolute, or containing '..' or a backslash.
    """
    if prefix.startswith("/") or "\\" in prefix or ".." in PurePosixPath(prefix).parts:
        raise InvalidInputError(f"invalid storage prefix {prefix!r}: use a relative path")
    return prefix


class Storage(ABC):
    """Put and get files and folders in a backend's object store.

    Invariants: keys are relative, '/'-separated, never contain '..'. A URI returned by
    :meth:`uri` is what a training job consumes as a channel (``file://`` locally,
    ``s3://`` on AWS). A put is all or nothing: a failed transfer leaves no object behind.
    Implementations are safe to use from several threads.

    Progress callbacks may be called from any thread (S3 reports from its transfer threads),
    never two calls at once, with ``bytes_done`` never decreasing except when a part is retried.
    A callback that raises an Exception is logged and dropped, and the transfer goes on (see
    :class:`SafeProgress`). A caller that may only act on its own thread (a Streamlit page)
    hands progress over with :func:`core.progress.run_with_progress`.
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
        """Every object whose key starts with prefix, sorted by key. Raises InvalidInputError for an
        absolute prefix or one with '..' (see :func:`validate_prefix`)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object with exactly this key exists."""

    @abstractmethod
    def delete(self, prefix: str) -> int:
        """Deletes the object ``prefix`` and every object under ``prefix/``; returns how many."""

    def put_folder(self, folder: Path, prefix: str, progress: ProgressCallback | None = None) -> str:
        """Uploads every file below folder under prefix and returns the prefix's URI (see :meth:`put_files`)."""
        folder = Path(folder)
        files = [(p, p.relative_to(folder).as_posix()) for p in sorted(folder.rglob("*")) if p.is_file()]
        return self.put_files(files, prefix, progress)

    def put_files(self, files: Sequence[tuple[Path, str]], prefix: str, progress: ProgressCallback | None = None) -> str:
        """Uploads each (local file, relative key) under prefix and returns the prefix's URI.

        On failure or when stopped on purpose (a progress callback that raises a BaseException, such
        as :class:`core.progress.Cancelled`), what was already uploaded under prefix is deleted again
        (if that fails too, the error says what is left). Files go one after another, so each file's reports (``n`` bytes
        of it, from whichever thread) add to a fixed ``base``: the bytes of the files before it.
        """
        prefix = validate_key(prefix)
        total = sum(path.stat().st_size for path, _ in files)
        report = SafeProgress(progress)
        done = 0
        try:
            for path, relative in files:
                base = done
                report(base, total)  # on this thread: a caller that gave up stops the upload here
                def file_progress(n: int, _t: int, base: int = base) -> None:
                    report(base + n, total)

                self.put_file(path, f"{prefix}/{validate_key(relative)}", file_progress)
                done = base + path.stat().st_size
        except BaseException as exc:
            try:
                self.delete(prefix)
            except Exception:  # e.g. the credentials expired: say what is left, not only why the clean-up failed
                logger.warning("could not remove %s after a failed upload", self.uri(prefix), exc_info=True)
                if isinstance(exc, ConsoleError):
                    raise type(exc)(f"{exc}. What was uploaded under {self.uri(prefix)} could not be removed "
                                    "again: delete it by hand") from exc
            raise
        report(total, total)
        return self.uri(prefix)

    def get_folder(self, prefix: str, folder: Path, progress: ProgressCallback | None = None) -> Path:
        """Downloads every object under prefix into folder, keeping relative paths."""
        prefix = validate_key(prefix)
        objects = list(self.list(prefix + "/"))
        total = sum(o.size for o in objects)
        report = SafeProgress(progress)
        done = 0
        for obj in objects:
            relative = obj.key[len(prefix) + 1 :]
            target = Path(folder) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            self.get_file(obj.key, target, _offset_progress(report, done, total))
            done += obj.size
        return Path(folder)


def _offset_progress(report: ProgressCallback, base: int, total: int) -> ProgressCallback:
    """Reports one object's progress as the folder's: base bytes were done before it, of total."""
    return lambda done, _object_total: report(base + done, total)


def replace_atomically(tmp_path: Path, final_path: Path) -> None:
    """Moves a fully written temporary file into place (same filesystem, one rename)."""
    final_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_path, final_path)
