"""Large files dropped in the browser, written to disk piece by piece as they arrive.

Streamlit's own file uploader keeps every upload in the server's memory, whole: a 2 GB dataset zip
would hold 2 GB of RAM for as long as the browser session lives. Instead the browser sends the file
in pieces (``PUT`` with ``Content-Range``, see ``server.py``) and each piece is appended to a file
in the workspace, so memory holds one piece of a request at most. An upload is resumable: after a
broken connection the browser asks how much arrived (:meth:`UploadSpool.received`) and goes on
from there. Only an upload the page announced (:meth:`UploadSpool.announce`, with an unguessable
id) is accepted; a finished one is renamed into place, an abandoned one is removed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from core.errors import InvalidInputError, NotFoundError

MAX_UPLOAD_BYTES = 16 * 1024**3
"""The largest file accepted (a dataset zip of a few GB fits)."""
UPLOADS_ROUTE = "/smc/uploads"
"""Where server.py takes the pieces (see its docstring)."""
PIECE_BYTES = 8 * 1024**2
"""How much the browser sends per request: a broken connection costs at most this much again."""
STALE_AFTER_S = 24 * 3600
"""An upload untouched this long is abandoned: :meth:`UploadSpool.sweep` removes it."""
_ID = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


@dataclass(frozen=True)
class SpooledFile:
    """A finished upload: the original file name, and the file on disk holding its bytes."""

    filename: str
    path: Path
    size: int


class _UploadMeta(TypedDict):
    """What ``<id>.json`` holds: the announced file name and size."""

    filename: str
    size: int


class UploadSpool:
    """Uploads in progress and finished, under one folder (``<id>.json``, ``<id>.part``, ``<id>.done``).

    Args:
        workspace: the console's workspace; the uploads go to its ``uploads/`` folder.
    """

    def __init__(self, workspace: Path) -> None:
        self.folder = Path(workspace) / "uploads"

    def announce(self, filename: str, size: int) -> str:
        """Expects an upload of size bytes named filename; returns its id for the browser to send under.

        Raises:
            InvalidInputError: a size of 0 or above :data:`MAX_UPLOAD_BYTES`.
        """
        if not 0 < size <= MAX_UPLOAD_BYTES:
            raise InvalidInputError(f"{filename}: {size:,} bytes; the largest file accepted is "
                                    f"{MAX_UPLOAD_BYTES / 1024**3:g} GiB")
        free = shutil.disk_usage(self._ensure_folder()).free
        if size > free:
            raise InvalidInputError(f"{filename} is {size / 1e9:.2f} GB and the workspace disk has "
                                    f"{free / 1e9:.2f} GB free")
        upload_id = secrets.token_urlsafe(24)
        meta: _UploadMeta = {"filename": filename, "size": size}
        self._meta(upload_id).write_text(json.dumps(meta))
        self._part(upload_id).touch()
        return upload_id

    def exists(self, upload_id: str) -> bool:
        """True while the upload is announced, in progress or finished, and not discarded."""
        return bool(_ID.match(upload_id)) and self._meta(upload_id).exists()

    def received(self, upload_id: str) -> int:
        """How many bytes of the upload arrived (its size once it is finished).

        Raises:
            NotFoundError: no such upload (never announced, discarded, or swept).
        """
        meta = self._read_meta(upload_id)
        if self._done(upload_id).exists():
            return meta["size"]
        return self._part(upload_id).stat().st_size

    def append(self, upload_id: str, start: int, piece: bytes) -> int:
        """Writes piece at byte offset start; returns the bytes received so far.

        The piece must start where the received bytes end (a resumed upload asks first). When the last
        byte arrives the upload is finished: see :meth:`finished`.

        Raises:
            NotFoundError: no such upload, or it is finished already.
            InvalidInputError: start is not where the received bytes end, or the piece runs past the
                announced size.
        """
        size = self._read_meta(upload_id)["size"]
        part = self._part(upload_id)
        try:
            out = open(part, "r+b")
        except FileNotFoundError:
            raise NotFoundError(f"upload {upload_id!r} is finished or discarded") from None
        with out:
            have = out.seek(0, os.SEEK_END)
            if start != have:
                raise InvalidInputError(f"this piece starts at byte {start:,} but {have:,} bytes have arrived")
            if have + len(piece) > size:
                raise InvalidInputError(f"more bytes than the announced {size:,}")
            out.write(piece)
            have += len(piece)
        if have == size:
            os.replace(part, self._done(upload_id))
        return have

    def finished(self, upload_id: str) -> SpooledFile | None:
        """The finished upload, or None while bytes are still missing.

        Raises:
            NotFoundError: no such upload.
        """
        meta = self._read_meta(upload_id)
        done = self._done(upload_id)
        if not done.exists():
            return None
        return SpooledFile(filename=meta["filename"], path=done, size=meta["size"])

    def discard(self, upload_id: str) -> None:
        """Removes the upload, finished or not (nothing if it is gone already)."""
        if _ID.match(upload_id):
            for path in (self._part(upload_id), self._done(upload_id), self._meta(upload_id)):
                path.unlink(missing_ok=True)

    def sweep(self, older_than_s: float = STALE_AFTER_S) -> int:
        """Removes the uploads nobody touched for older_than_s; returns how many."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        stale = {p.name.split(".", 1)[0] for p in self.folder.iterdir() if p.stat().st_mtime < cutoff}
        for upload_id in stale:
            self.discard(upload_id)
        return len(stale)

    def _ensure_folder(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def _read_meta(self, upload_id: str) -> _UploadMeta:
        if not _ID.match(upload_id):
            raise NotFoundError(f"no upload {upload_id!r}")
        try:
            return json.loads(self._meta(upload_id).read_text())
        except (OSError, ValueError):
            raise NotFoundError(f"no upload {upload_id!r}: it was never announced, or it was discarded") from None

    def _meta(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.json"

    def _part(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.part"

    def _done(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}.done"
