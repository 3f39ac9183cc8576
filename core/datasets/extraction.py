"""Safe extraction of user-supplied zip archives.

Every member is checked from the central directory before a byte is written: its name (no
zip slip), its type (no symlinks or devices), encryption, and the declared sizes against
:class:`ExtractionLimits`. While streaming, the bytes really produced are counted again, so a
header that lies about sizes cannot get past the limits. The archive is extracted into a
hidden temporary folder beside the destination and renamed into place at the end: on any
failure the destination does not exist and the temporary folder is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

from core.datasets.report import find_dataset_root
from core.errors import AlreadyExistsError, BackendError, InvalidInputError, NotFoundError

MiB = 1024 * 1024
GiB = 1024 * MiB
_CHUNK = MiB
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_JUNK_FOLDERS = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class ExtractionLimits:
    """What an archive may hold.

    Attributes:
        max_total_bytes: uncompressed bytes over all members.
        max_files: number of files (folders and skipped junk do not count).
        max_ratio: uncompressed / compressed size, per member and over the whole archive.
        max_member_bytes: uncompressed bytes of any one member.
        ratio_floor_bytes: members (and archives) smaller than this are exempt from the ratio
            check: a few KiB of text legitimately compress several hundred times.
    """

    max_total_bytes: int = 16 * GiB
    max_files: int = 100_000
    max_ratio: float = 200.0
    max_member_bytes: int = 512 * MiB
    ratio_floor_bytes: int = MiB

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{spec.name}: must be a positive number, not {value!r}")
        if self.max_ratio < 1:
            raise ValueError(f"max_ratio: must be at least 1, not {self.max_ratio!r}")


def is_junk_name(path: str) -> bool:
    """True for operating-system clutter: ``__MACOSX/``, ``.DS_Store``, ``._*``, ``Thumbs.db``."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return False
    return any(p in _JUNK_FOLDERS for p in parts) or parts[-1] in _JUNK_FILES or parts[-1].startswith("._")


def safe_extract_zip(
    zip_path: Path,
    dest: Path,
    limits: ExtractionLimits = ExtractionLimits(),
    *,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Extracts a zip archive into ``dest`` after checking every member.

    Args:
        zip_path: the archive; its file name appears in error messages.
        dest: the folder to create; its parent is created when missing.
        limits: size, count and compression-ratio limits.
        progress: called with the fraction of bytes extracted (0..1).

    Returns:
        The dataset root: ``dest``, or the folder inside it when the archive wraps
        ``train/ valid/ test/`` in a single top-level folder.

    Raises:
        NotFoundError: zip_path does not exist.
        AlreadyExistsError: dest exists already.
        InvalidInputError: not a zip, corrupt, empty, unsafe member name, symlink or special
            file, encrypted member, too many files, too large, or a suspicious ratio.
        BackendError: the extracted files could not be written.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if not zip_path.is_file():
        raise NotFoundError(f"{zip_path} does not exist")
    if os.path.lexists(dest):
        raise AlreadyExistsError(f"{dest} exists already")
    archive = _open_archive(zip_path)
    with archive:
        members = _plan_members(archive, zip_path.name, limits)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial"))
        try:
            _extract_members(archive, members, tmp, zip_path.name, progress)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return find_dataset_root(dest)


def _open_archive(zip_path: Path) -> zipfile.ZipFile:
    if not zipfile.is_zipfile(zip_path):
        raise InvalidInputError(f"{zip_path.name} is not a zip archive")
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{zip_path.name} is a corrupt zip archive ({exc})") from None
    except OSError as exc:
        raise InvalidInputError(f"{zip_path.name} could not be read as a zip archive ({exc})") from None


def _check_name(name: str, archive: str) -> tuple[str, ...]:
    """Returns the path components of a member name, refusing any that could escape."""
    if "\\" in name:
        raise InvalidInputError(f"{archive}: member {name!r} has a backslash in its name")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise InvalidInputError(f"{archive}: member {name!r} has an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidInputError(f"{archive}: member {name!r} points outside the archive (..)")
    if any("\x00" in p for p in parts):
        raise InvalidInputError(f"{archive}: member {name!r} has a NUL character in its name")
    return parts


def _check_member(info: zipfile.ZipInfo, archive: str, limits: ExtractionLimits) -> None:
    """Refuses links, special files, encryption and oversize or over-compressed members."""
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise InvalidInputError(f"{archive}: member {info.filename!r} is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidInputError(f"{archive}: member {info.filename!r} is a special file")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise InvalidInputError(f"{archive}: member {info.filename!r} is encrypted; upload an unencrypted zip")
    if info.is_dir():
        return
    if info.file_size > limits.max_member_bytes:
        raise InvalidInputError(
            f"{archive}: member {info.filename!r} is {info.file_size:,} bytes uncompressed, "
            f"over the limit of {limits.max_member_bytes:,}"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
        raise InvalidInputError(
            f"{archive}: member {info.filename!r} has a suspicious compression ratio of {ratio:,.0f} "
            f"(limit {limits.max_ratio:,.0f}): possibly a zip bomb"
        )


def _plan_members(
    archive: zipfile.ZipFile, name: str, limits: ExtractionLimits
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Checks the whole central directory; returns the files to write and their paths."""
    files: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    seen: set[tuple[str, ...]] = set()
    for info in archive.infolist():
        parts = _check_name(info.filename, name)
        if not parts or is_junk_name(info.filename):
            continue
        _check_member(info, name, limits)
        if info.is_dir():
            continue
        if parts in seen:
            raise InvalidInputError(f"{name}: member {info.filename!r} appears twice")
        seen.add(parts)
        files.append((info, parts))
        if len(files) > limits.max_files:
            raise InvalidInputError(f"{name} holds more than {limits.max_files:,} files")
    if not files:
        raise InvalidInputError(f"{name} is empty: it holds no files")
    folders = {parts[:i] for _, parts in files for i in range(1, len(parts))}
    for info, parts in files:
        if parts in folders:
            raise InvalidInputError(f"{name}: member {info.filename!r} is both a file and a folder")
    total = sum(info.file_size for info, _ in files)
    if total > limits.max_total_bytes:
        raise InvalidInputError(
            f"{name} holds {total:,} bytes uncompressed, over the limit of {limits.max_total_bytes:,}"
        )
    ratio = total / max(sum(info.compress_size for info, _ in files), 1)
    if total > limits.ratio_floor_bytes and ratio > limits.max_ratio:
        raise InvalidInputError(
            f"{name} has a suspicious overall compression ratio of {ratio:,.0f} "
            f"(limit {limits.max_ratio:,.0f}): possibly a zip bomb"
        )
    return files


def _extract_members(
    archive: zipfile.ZipFile,
    members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    tmp: Path,
    name: str,
    progress: Callable[[float], None] | None,
) -> None:
    """Streams each member to disk, counting the bytes really produced against its header."""
    declared = max(sum(info.file_size for info, _ in members), 1)
    done = 0
    for info, parts in members:
        target = tmp.joinpath(*parts)
        written = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "xb")
        except OSError as exc:
            raise BackendError(f"could not write {info.filename!r} from {name}: {exc.strerror or exc}") from exc
        try:
            with out:  # closing flushes the last bytes: a full disk may show only there
                for chunk in _read_member(archive, info, name):
                    written += len(chunk)
                    # Each member is held to its declared size, so the declared totals that
                    # passed the limits also bound what is really written.
                    if written > info.file_size:
                        raise InvalidInputError(
                            f"{name}: member {info.filename!r} holds more bytes than its header declares "
                            f"({info.file_size:,}): the archive is corrupt or hostile"
                        )
                    out.write(chunk)
        except OSError as exc:
            raise BackendError(f"could not write {info.filename!r} from {name}: {exc.strerror or exc}") from exc
        done += written
        if progress:
            progress(min(done / declared, 1.0))


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Iterator[bytes]:
    """Yields a member's uncompressed bytes; any decoding failure becomes InvalidInputError."""
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                yield chunk
    except NotImplementedError as exc:
        raise InvalidInputError(f"{name}: member {info.filename!r} uses an unsupported compression ({exc})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{name}: member {info.filename!r} is corrupt ({exc})") from None
