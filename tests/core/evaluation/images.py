"""Labelled images for evaluation tests: ImageFolders of plain colour images, and zips of them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (200, 200, 30), (30, 200, 200), (200, 30, 200)]
"""The colours of :func:`write_image_folder`'s images, in the order it uses them."""


def write_image_folder(root: Path, counts: dict[str, int], *, fmt: str = "PNG") -> Path:
    """``root/<class>/<n>.png`` images of distinct colours, counts[class] of each; returns root."""
    for c, (cls, count) in enumerate(counts.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            colour = COLOURS[(c + n) % len(COLOURS)]
            Image.new("RGB", (40 + n, 30), colour).save(root / cls / f"{n}.{fmt.lower()}", format=fmt)
    return root


def zip_folder(folder: Path) -> bytes:
    """The folder's files in a zip, paths relative to folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()
