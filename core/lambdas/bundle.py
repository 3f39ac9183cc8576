"""The deployment package: ``lambda/`` as a zip, byte-for-byte the same on every build."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from core.config import REPO_ROOT
from core.errors import InvalidInputError

LAMBDA_DIR = REPO_ROOT / "lambda"
MAX_ZIP_BYTES = 50 * 1024 * 1024
"""Lambda's limit on a zip uploaded directly (larger packages go through S3)."""
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_SKIPPED = ("__pycache__", ".pyc", ".pytest_cache", ".DS_Store")


@dataclass(frozen=True)
class Package:
    """A built zip with the checksum Lambda reports for it."""

    data: bytes
    files: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Base64 SHA-256, as Lambda's ``CodeSha256``."""
        return base64.b64encode(hashlib.sha256(self.data).digest()).decode()


def build_package(source_dir: Path = LAMBDA_DIR) -> Package:
    """Zips every file under source_dir (no caches), with fixed timestamps and sorted names.

    Raises:
        InvalidInputError: there is no ``lambda_function.py``, or the zip is over 50 MB.
    """
    source_dir = Path(source_dir)
    if not (source_dir / "lambda_function.py").is_file():
        raise InvalidInputError(f"{source_dir} has no lambda_function.py")
    paths = sorted(p for p in source_dir.rglob("*")
                   if p.is_file() and not any(part.endswith(_SKIPPED) for part in p.relative_to(source_dir).parts))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            info = zipfile.ZipInfo(path.relative_to(source_dir).as_posix(), date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16  # readable by Lambda's sandbox user
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    data = buffer.getvalue()
    if len(data) > MAX_ZIP_BYTES:
        raise InvalidInputError(f"the package is {len(data):,} bytes; a direct upload takes at most {MAX_ZIP_BYTES:,}")
    return Package(data=data, files=tuple(p.relative_to(source_dir).as_posix() for p in paths))
