"""What of a checked dataset is uploaded, and the manifest of what is left out.

Only the images the check could read travel: ``<split>/<class>/.../<image>`` under ``train/``,
``valid/`` and ``test/``. Everything else the check found (unreadable, truncated or non-image
files, decompression bombs, files outside a class folder) and whatever lies beside the splits
(a README, a ``__MACOSX`` folder) stays behind, listed with its reason in ``excluded.json``,
stored with the dataset. The training script never meets a file the check refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from core.datasets.report import SPLITS, BadFile, is_hidden_name, is_image_name

EXCLUDED_MANIFEST = "excluded.json"
"""Beside ``train/ valid/ test/`` in storage: ``[{"path": ..., "reason": ...}, ...]``."""
OUTSIDE_SPLITS = "outside train/, valid/ and test/"


def upload_plan(root: Path, refused: Iterable[tuple[str, str]]) -> tuple[list[tuple[Path, str]], list[BadFile]]:
    """Splits the files below root into those to upload and those left out.

    Args:
        root: the checked folder holding the splits.
        refused: (path relative to root, reason) of each file the check refused: a
            :class:`~core.datasets.report.DatasetReport`'s ``bad_files``.

    Returns:
        ``(included, excluded)``: each included file with its '/'-separated path relative to root,
        sorted by that path; each excluded file with its reason, sorted by path.
    """
    refused_reasons = dict(refused)
    included: list[tuple[Path, str]] = []
    excluded: dict[str, str] = dict(refused_reasons)
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if relative in refused_reasons:
            continue
        parts = relative.split("/")
        if parts[0] not in SPLITS:
            excluded[relative] = OUTSIDE_SPLITS
        elif any(is_hidden_name(part) for part in parts):
            excluded[relative] = "a hidden or system file"
        elif len(parts) >= 3 and is_image_name(parts[-1]):
            included.append((path, relative))
        else:
            excluded[relative] = "not an image inside a class folder"
    return included, [BadFile(p, excluded[p]) for p in sorted(excluded)]


def manifest_json(excluded: Iterable[BadFile]) -> str:
    """The text of ``excluded.json``."""
    return json.dumps([{"path": bad.path, "reason": bad.reason} for bad in excluded], indent=1)


def read_manifest(text: str) -> Sequence[BadFile]:
    """Parses what :func:`manifest_json` wrote."""
    return [BadFile(str(item["path"]), str(item["reason"])) for item in json.loads(text)]

