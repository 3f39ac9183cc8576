"""The local store: a folder in the workspace, addressed by ``file://`` URIs."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

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

_CHUNK = 1024 * 1024


def _copy_with_progress(src: Path, dst_tmp: Path, progress: ProgressCallback | None) -> None:
    total = src.stat().st_size
    report = SafeProgress(progress)
    done = 0
    with open(src, "rb") as fin, open(dst_tmp, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            fout.write(chunk)
            done += len(chunk)
            report(done, total)


class LocalStorage(Storage):
    """Objects are files under ``root``; a put writes a temporary file and renames it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key_from_uri(self, uri: str) -> str:
        parsed = urlparse(uri)
        path = Path(unquote(parsed.path)).resolve()
        if parsed.scheme != "file" or not path.is_relative_to(self.root):
            raise InvalidInputError(f"{uri} is not in the local store {self.root.as_uri()}")
        return path.relative_to(self.root).as_posix()

    def put_file(self, local_path: Path, key: str, progress: ProgressCallback | None = None) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".part-{uuid.uuid4().hex}-{target.name}")
        try:
            _copy_with_progress(Path(local_path), tmp, progress)
            replace_atomically(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendError(f"could not store {key}: {exc.strerror or exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target.as_uri()

    def get_file(self, key: str, local_path: Path, progress: ProgressCallback | None = None) -> Path:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"no object {key} in the local store")
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".part-{local_path.name}")
        try:
            _copy_with_progress(source, tmp, progress)
            replace_atomically(tmp, local_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return local_path

    def list(self, prefix: str = "") -> list[StoredObject]:
        validate_prefix(prefix)
        objects = []
        for path in self.root.rglob("*"):
            if not path.is_file() or path.name.startswith(".part-"):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                objects.append(StoredObject(key=key, size=path.stat().st_size, uri=path.as_uri()))
        return sorted(objects, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, prefix: str) -> int:
        target = self._path(prefix)
        if target.is_file():
            target.unlink()
            return 1
        if target.is_dir():
            count = sum(1 for p in target.rglob("*") if p.is_file())
            shutil.rmtree(target)
            return count
        return 0

    def local_path(self, key: str) -> Path:
        """The file or folder that key names (local store only: jobs read it in place)."""
        return self._path(key)
