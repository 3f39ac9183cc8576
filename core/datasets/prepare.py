"""One entry point for the Data page: turn a source into a validated ImageFolder on disk.

A source is a dropped zip, a URL of a zip, a local folder or the bundled demo. Each is
materialised into a new folder under the staging folder, split folders named ``val`` or
``validation`` are renamed to ``valid``, and the tree is validated. A dataset that fails
validation is still returned, its report saying why, so the page can show it; a source
that cannot be materialised raises, and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from core.datasets.extraction import ExtractionLimits, is_junk_name, safe_extract_zip
from core.datasets.fetch import download_url
from core.datasets.report import SPLIT_ALIASES, DatasetReport, find_dataset_root, validate_imagefolder
from core.errors import BackendError, InvalidInputError

PrepareProgress = Callable[[str, float], None]
"""Called as ``progress(stage, fraction)``; stages: download, extract, copy, render, validate."""

DEFAULT_MAX_DOWNLOAD_BYTES = 16 * 1024**3
MAX_NAME_LENGTH = 40
DEMO_NAME = "digits-demo"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
STAGED_RECORD = "prepared.json"
"""Beside a checked dataset's ``data/`` folder: what :meth:`PreparedDataset.save` recorded."""


@dataclass(frozen=True)
class ZipUpload:
    """A zip the user dropped: its original file name and its bytes (or a file holding them)."""

    filename: str
    data: bytes | Path


@dataclass(frozen=True)
class UrlSource:
    """An http(s) URL of a zip archive."""

    url: str


@dataclass(frozen=True)
class FolderSource:
    """A folder on this machine; it is copied, never modified."""

    path: Path


@dataclass(frozen=True)
class DemoSource:
    """scikit-learn's digits rendered as images (see :mod:`core.datasets.demo`)."""

    image_size: int = 64
    seed: int = 0


DatasetSource = ZipUpload | UrlSource | FolderSource | DemoSource


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset materialised under the staging folder.

    Attributes:
        name_suggestion: a safe catalog name derived from the source.
        root: the folder holding ``train/ valid/ test/`` (inside ``folder``).
        report: what validation found; check ``report.is_usable`` before uploading.
        folder: the folder created under the staging folder; :meth:`discard` removes it.
    """

    name_suggestion: str
    root: Path
    report: DatasetReport
    folder: Path
    source: str = ""

    def discard(self) -> None:
        """Deletes the staged copy (after upload, or when the user gives up on it)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def save(self) -> None:
        """Records the check beside the staged files, so that it outlives the browser session
        (a reload, another tab): :func:`staged_datasets` finds it again.

        Raises:
            BackendError: the record could not be written (nothing half-written is left).
        """
        record = {"name_suggestion": self.name_suggestion, "root": str(self.root.relative_to(self.folder)),
                  "source": self.source, "report": self.report.to_dict()}
        partial = self.folder / f"{STAGED_RECORD}.partial"
        try:
            partial.write_text(json.dumps(record))
            os.replace(partial, self.folder / STAGED_RECORD)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise BackendError(f"could not record the checked dataset: {exc.strerror or exc}") from exc


def staged_datasets(staging_dir: Path) -> list[PreparedDataset]:
    """The checked datasets under staging_dir not yet uploaded or discarded, newest first.

    A folder without a readable record (a check still running, or killed) is skipped.
    """
    if not staging_dir.is_dir():
        return []
    found = []
    for record_path in staging_dir.glob(f"*/{STAGED_RECORD}"):
        folder = record_path.parent
        try:
            record = json.loads(record_path.read_text())
            found.append((record_path.stat().st_mtime, PreparedDataset(
                name_suggestion=record["name_suggestion"], root=folder / record["root"],
                report=DatasetReport.from_dict(record["report"]), folder=folder, source=record["source"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return [prepared for _, prepared in sorted(found, key=lambda pair: pair[0], reverse=True)]


def suggest_dataset_name(s: str) -> str:
    """Derives a catalog name (``[a-z0-9-]``, at most 40 characters) from a file name, URL or path.

    ``"https://host/data/dogImages.zip?x=1"`` gives ``"dog-images"``; an empty result gives
    ``"dataset"``.
    """
    text = s.strip()
    parsed = urlparse(text)
    if parsed.scheme.lower() in ("http", "https") and parsed.netloc:
        text = unquote(parsed.path).rstrip("/").rsplit("/", 1)[-1] or (parsed.hostname or "")
    else:
        text = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for suffix in _ARCHIVE_SUFFIXES:
        if text.lower().endswith(suffix):
            text = text[: -len(suffix)]
            break
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text).lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:MAX_NAME_LENGTH].rstrip("-") or "dataset"


def prepare_dataset(
    source: DatasetSource,
    staging_dir: Path,
    *,
    progress: PrepareProgress | None = None,
    limits: ExtractionLimits = ExtractionLimits(),
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
    timeout_s: float = 30,
) -> PreparedDataset:
    """Materialises source into a new folder under staging_dir and validates it.

    Args:
        source: what the user gave.
        staging_dir: parent of the new folder; created when missing.
        progress: see :data:`PrepareProgress`.
        limits: limits for zip extraction; a folder copy obeys max_files, max_total_bytes and
            max_member_bytes too.
        max_download_bytes: largest archive a URL may deliver.
        timeout_s: network timeout of a URL download.

    Returns:
        The staged dataset, usable or not (see ``report.is_usable``).

    Raises:
        InvalidInputError: the source cannot be used: not a zip archive, unsafe or too large
            archive, unreachable URL, missing folder, symlink escaping the folder, ...
        BackendError: the staged files could not be written.
    """
    report_progress = progress or (lambda stage, fraction: None)
    name = _name_for(source)
    staging_dir = Path(staging_dir)
    try:
        staging_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=staging_dir, prefix=f"{name}-"))
    except OSError as exc:
        raise BackendError(f"could not create a staging folder in {staging_dir}: {exc.strerror or exc}") from exc
    try:
        root = _materialise(source, folder, report_progress, limits, max_download_bytes, timeout_s)
        notes = _normalise_split_names(root)
        report = validate_imagefolder(root, progress=lambda fraction: report_progress("validate", fraction))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if notes:
        report = replace(report, warnings=notes + report.warnings)
    return PreparedDataset(name_suggestion=name, root=root, report=report, folder=folder)


def _name_for(source: DatasetSource) -> str:
    if isinstance(source, ZipUpload):
        return suggest_dataset_name(source.filename)
    if isinstance(source, UrlSource):
        return suggest_dataset_name(source.url)
    if isinstance(source, FolderSource):
        return suggest_dataset_name(Path(source.path).resolve().name)
    if isinstance(source, DemoSource):
        return DEMO_NAME
    raise InvalidInputError(f"unknown dataset source {type(source).__name__}")


def _materialise(
    source: DatasetSource,
    folder: Path,
    progress: PrepareProgress,
    limits: ExtractionLimits,
    max_download_bytes: int,
    timeout_s: float,
) -> Path:
    """Writes the dataset under folder/data and returns its root."""
    data = folder / "data"
    incoming = folder / "incoming"

    def extract(archive: Path) -> Path:
        return safe_extract_zip(archive, data, limits, progress=lambda f: progress("extract", f))

    if isinstance(source, FolderSource):
        _copy_folder(Path(source.path), data, limits, lambda f: progress("copy", f))
        return find_dataset_root(data)
    if isinstance(source, DemoSource):
        from core.datasets.demo import write_demo_folder  # see core.datasets: keeps -m clean

        progress("render", 0.0)
        write_demo_folder(data, image_size=source.image_size, seed=source.seed)
        progress("render", 1.0)
        return data
    if isinstance(source, ZipUpload):
        if isinstance(source.data, Path):
            return extract(source.data)
        incoming.mkdir()
        archive = incoming / _safe_filename(source.filename, "upload.zip")
        _write_bytes(archive, source.data)
    else:
        incoming.mkdir()
        archive = incoming / _safe_filename(unquote(urlparse(source.url).path), "download.zip")
        download_url(
            source.url,
            archive,
            max_bytes=max_download_bytes,
            timeout_s=timeout_s,
            progress=lambda done, total: progress("download", done / total if total else 0.0),
        )
    root = extract(archive)
    shutil.rmtree(incoming)
    return root


def _safe_filename(name: str, default: str) -> str:
    """The last component of name with unusual characters replaced, for messages and disk."""
    base = _UNSAFE_FILENAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    return base[:100] or default


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise BackendError(f"could not stage the upload: {exc.strerror or exc}") from exc


def _normalise_split_names(root: Path) -> tuple[str, ...]:
    """Renames a ``val``/``validation`` folder to ``valid`` when there is no ``valid``."""
    if (root / "valid").exists():
        return ()
    for alias, split in SPLIT_ALIASES.items():
        if (root / alias).is_dir() and not (root / split).exists():
            os.rename(root / alias, root / split)
            return (f"renamed the {alias}/ folder to {split}/",)
    return ()


def _copy_folder(src: Path, dst: Path, limits: ExtractionLimits, progress: Callable[[float], None]) -> None:
    """Copies src to dst, following symlinks only while they stay inside src.

    Raises:
        InvalidInputError: src is not a folder, contains dst, has a symlink escaping it, a
            symlink loop or a special file, or exceeds the limits.
        BackendError: a file could not be copied.
    """
    if not src.is_dir():
        raise InvalidInputError(f"{src} is not a folder")
    real_root = src.resolve()
    if dst.resolve().is_relative_to(real_root):
        raise InvalidInputError(f"the staging folder {dst.parent} is inside {src}: choose another staging folder")
    files: list[tuple[Path, tuple[str, ...]]] = []
    _plan_copy(real_root, (), frozenset({real_root}), real_root, files, limits)
    total = sum(path.stat().st_size for path, _ in files)
    if total > limits.max_total_bytes:
        raise InvalidInputError(f"{src} holds {total:,} bytes, over the limit of {limits.max_total_bytes:,}")
    dst.mkdir(parents=True, exist_ok=True)
    for index, (path, rel) in enumerate(files, start=1):
        target = dst.joinpath(*rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        except OSError as exc:
            raise BackendError(f"could not copy {'/'.join(rel)}: {exc.strerror or exc}") from exc
        progress(index / len(files))


def _plan_copy(
    directory: Path,
    rel: tuple[str, ...],
    active: frozenset[Path],
    real_root: Path,
    files: list[tuple[Path, tuple[str, ...]]],
    limits: ExtractionLimits,
) -> None:
    """Lists the regular files below directory (a real path), checking every symlink."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInputError(f"could not read {directory}: {exc.strerror or exc}") from None
    for entry in entries:
        entry_rel = (*rel, entry.name)
        shown = "/".join(entry_rel)
        if is_junk_name(shown):
            continue
        target = Path(entry.path).resolve() if entry.is_symlink() else Path(entry.path)
        if not target.is_relative_to(real_root):
            raise InvalidInputError(f"{shown} is a symbolic link pointing outside the folder")
        if target.is_dir():
            if target in active:
                raise InvalidInputError(f"{shown} is a symbolic link loop")
            _plan_copy(target, entry_rel, active | {target}, real_root, files, limits)
        elif target.is_file():
            if target.stat().st_size > limits.max_member_bytes:
                raise InvalidInputError(f"{shown} is larger than the limit of {limits.max_member_bytes:,} bytes")
            files.append((target, entry_rel))
            if len(files) > limits.max_files:
                raise InvalidInputError(f"the folder holds more than {limits.max_files:,} files")
        else:
            raise InvalidInputError(f"{shown} is not a regular file or folder (a broken link or a device?)")
