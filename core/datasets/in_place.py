"""Checking an ImageFolder where it already lies (an ``s3://`` prefix), without copying it.

A dataset of thousands of images already in S3 need not travel through this machine: its
listing gives the layout, classes and counts, and a sample of its images, read one by one, tells
whether they are images at all. What the sample finds unreadable is reported; the rest is taken on
trust, and the training script skips (and counts) any unreadable image it meets later.

The objects are reached through an :class:`ObjectPrefix` that the backend provides (see
``Backend.object_prefixes``); this module knows nothing of S3.
"""

from __future__ import annotations

import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core.datasets.report import (
    DEFAULT_MAX_PIXELS,
    SPLITS,
    BadFile,
    DatasetReport,
    ImageSizeStats,
    check_classes,
    check_top_level,
    inspect_image,
    is_hidden_name,
    is_image_name,
)
from core.errors import InvalidInputError

SAMPLE_PER_CLASS = 2
MAX_SAMPLE = 200
CheckProgress = Callable[[str, float], None]
"""Called as ``progress(stage, fraction)``: "listed <n> objects" while listing (fraction 0), then "sample"."""


@dataclass(frozen=True)
class ListedObject:
    """An object below the prefix: its key relative to the prefix, and its size in bytes."""

    key: str
    size: int


class ObjectPrefix(ABC):
    """The objects under one URI prefix of an object store, read where they are."""

    uri: str
    """The prefix's URI, ending in '/'."""

    @abstractmethod
    def list(self, progress: Callable[[int], None] | None = None) -> list[ListedObject]:
        """Every object below the prefix, sorted by key; progress(objects listed so far) per page.

        Raises:
            NotFoundError: the bucket does not exist.
            CredentialsError, BackendError: access denied, no credentials, the store failed.
        """

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The bytes of one object (key relative to the prefix)."""


class ObjectPrefixes(ABC):
    """Opens prefixes of the object store a backend reaches (a backend capability)."""

    @abstractmethod
    def open(self, uri: str) -> ObjectPrefix:
        """The prefix named by uri.

        Raises:
            InvalidInputError: not a URI this backend reads.
        """


class NoObjectPrefixes(ObjectPrefixes):
    """A backend that reaches no object store besides its own (the local backend)."""

    def open(self, uri: str) -> ObjectPrefix:
        raise InvalidInputError(
            f"{uri}: the local backend reads no data in place (an s3:// prefix needs the aws backend, "
            "SMC_BACKEND=aws): download it and give the folder or a zip"
        )


@dataclass(frozen=True)
class InPlaceDataset:
    """An ImageFolder checked where it lies: its URI (ending in '/'), and what the check found."""

    uri: str
    report: DatasetReport
    sampled: int
    total_bytes: int


def check_in_place(
    prefix: ObjectPrefix,
    *,
    per_class: int = SAMPLE_PER_CLASS,
    max_sample: int = MAX_SAMPLE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: CheckProgress | None = None,
) -> InPlaceDataset:
    """Lists the prefix, reads a sample of its images, and describes it as an ImageFolder.

    Args:
        prefix: where the dataset lies.
        per_class: images read per class of ``train/`` (and as many of ``valid/`` and ``test/``).
        max_sample: most images read in all.
        max_pixels: see :func:`core.datasets.report.validate_imagefolder`.
        progress: see :data:`CheckProgress`.

    Returns:
        The check; ``report.is_usable`` tells whether it can be registered and trained on.

    Raises:
        InvalidInputError: the prefix holds no object.
        NotFoundError, CredentialsError, BackendError: as :meth:`ObjectPrefix.list` raises.
    """
    report_progress = progress or (lambda stage, fraction: None)
    objects = prefix.list(lambda listed: report_progress(f"listed {listed:,} objects", 0.0))
    if not objects:
        raise InvalidInputError(f"{prefix.uri} holds no objects: check the bucket and the prefix")
    errors: list[str] = []
    warns: list[str] = []
    bad: list[BadFile] = []
    tree = _layout(objects, errors, warns, bad)
    classes = tuple(sorted(tree.get("train", {})))
    counts = {split: {cls: len(keys) for cls, keys in per.items()} for split, per in tree.items()}

    chosen = _sample(tree, per_class, max_sample)
    sizes: list[tuple[int, int]] = []
    modes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="smc-sample-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for index, (split, cls, key) in enumerate(chosen, start=1):
            local = Path(scratch, "image")
            local.write_bytes(prefix.read(key))
            found = inspect_image(local, max_pixels)
            if isinstance(found, str):
                bad.append(BadFile(key, found))
                counts[split][cls] -= 1
            else:
                sizes.append(found[0])
                modes[found[1]] = modes.get(found[1], 0) + 1
            report_progress("sample", index / len(chosen))
    missing = check_classes(classes, counts, errors, warns)
    total_images = sum(sum(per.values()) for per in counts.values())
    warns.append(f"read a sample of {len(chosen):,} images of {total_images:,}: "
                 "the training script skips and counts any other unreadable image")
    report = DatasetReport(
        classes=classes,
        counts=counts,
        total_images=total_images,
        missing_classes=missing,
        bad_files=tuple(bad),
        image_sizes=ImageSizeStats.from_sizes(sizes),
        modes=dict(sorted(modes.items())),
        errors=tuple(errors),
        warnings=tuple(warns),
    )
    return InPlaceDataset(uri=prefix.uri, report=report, sampled=len(chosen),
                          total_bytes=sum(o.size for o in objects))


def _layout(objects: list[ListedObject], errors: list[str], warns: list[str],
            bad: list[BadFile]) -> dict[str, dict[str, list[str]]]:
    """Image keys per split per class, as :func:`core.datasets.report.validate_imagefolder` reads a folder."""
    folders = {o.key.split("/", 1)[0] for o in objects if "/" in o.key}
    check_top_level({o.key.split("/", 1)[0] for o in objects}, folders, errors, warns)
    tree: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS if split in folders}
    for obj in objects:
        parts = obj.key.split("/")
        if parts[0] not in tree or obj.key.endswith("/") or any(is_hidden_name(p) for p in parts):
            continue
        if len(parts) == 2:
            bad.append(BadFile(obj.key, "not inside a class folder"))
        elif not is_image_name(parts[-1]):
            bad.append(BadFile(obj.key, f"not an image file ({Path(parts[-1]).suffix or 'no extension'})"))
        else:
            tree[parts[0]].setdefault(parts[1], []).append(obj.key)
    return tree


def _sample(tree: dict[str, dict[str, list[str]]], per_class: int, max_sample: int) -> list[tuple[str, str, str]]:
    """(split, class, key) of the images to read: round-robin over splits and classes, first keys first."""
    queues = [(split, cls, keys[:per_class]) for split, per in tree.items() for cls, keys in sorted(per.items())]
    chosen: list[tuple[str, str, str]] = []
    for rank in range(per_class):
        for split, cls, keys in queues:
            if rank < len(keys) and len(chosen) < max_sample:
                chosen.append((split, cls, keys[rank]))
    return chosen
