"""What validation found in an ImageFolder dataset, and the validation itself.

The layout is the one torchvision's ``ImageFolder`` and our training entrypoint read::

    root/train/<class>/*.jpg     required
    root/valid/<class>/*.jpg     required ("valid", not "val": see below)
    root/test/<class>/*.jpg      optional (a warning when missing)

Class names are the sub-folder names of ``train/``, sorted as torchvision sorts them. Only
``valid`` is accepted as the validation split's name: an alias here would leave a folder the
training job does not find. ``val`` or ``validation`` are reported with a hint to rename them;
:func:`core.datasets.prepare.prepare_dataset` renames them itself in the copy it owns.

Validation opens every image (header only) and runs Pillow's ``verify()``; it never decodes
pixels, so thousands of small images take a few seconds.
"""

from __future__ import annotations

import os
import statistics
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from PIL import Image, UnidentifiedImageError

from core.errors import InvalidInputError, NotFoundError

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default for Image.MAX_IMAGE_PIXELS
MAX_SIZE_SAMPLES = 2_000
_JPEG_TAIL_BYTES = 64


class BadFile(NamedTuple):
    """A file that training could not use: its path relative to the root, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ImageSizeStats:
    """Widths and heights of the readable images.

    Attributes:
        count: number of images measured.
        min_width, max_width, median_width: width summary in pixels (0 when count is 0).
        min_height, max_height, median_height: height summary in pixels.
        sizes: (width, height) pairs for a histogram, an evenly spaced sample of at most
            ``MAX_SIZE_SAMPLES`` images.
    """

    count: int = 0
    min_width: int = 0
    max_width: int = 0
    median_width: float = 0.0
    min_height: int = 0
    max_height: int = 0
    median_height: float = 0.0
    sizes: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_sizes(cls, sizes: Sequence[tuple[int, int]], *, cap: int = MAX_SIZE_SAMPLES) -> ImageSizeStats:
        """Summarises every size and keeps an evenly spaced sample of at most ``cap`` of them."""
        if not sizes:
            return cls()
        widths = [w for w, _ in sizes]
        heights = [h for _, h in sizes]
        step = max(1, -(-len(sizes) // cap))
        return cls(
            count=len(sizes),
            min_width=min(widths),
            max_width=max(widths),
            median_width=float(statistics.median(widths)),
            min_height=min(heights),
            max_height=max(heights),
            median_height=float(statistics.median(heights)),
            sizes=tuple(sizes[::step]),
        )


@dataclass(frozen=True)
class DatasetReport:
    """The outcome of :func:`validate_imagefolder`; JSON-safe through to_dict/from_dict.

    Attributes:
        classes: class names from ``train/``, sorted.
        counts: readable images per split per class (``{"train": {"cat": 10}}``).
        total_images: readable images over all splits.
        missing_classes: per split, the train classes with no readable image there.
        bad_files: files training cannot use (listed, not fatal).
        image_sizes: size summary of the readable images.
        modes: readable images per Pillow mode (``RGB``, ``L``, ...).
        errors: layout problems that make the dataset unusable.
        warnings: problems worth knowing about that do not block training.
    """

    classes: tuple[str, ...] = ()
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    total_images: int = 0
    missing_classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    bad_files: tuple[BadFile, ...] = ()
    image_sizes: ImageSizeStats = ImageSizeStats()
    modes: Mapping[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def is_usable(self) -> bool:
        """True when nothing fatal was found: the dataset can be uploaded and trained on."""
        return not self.errors

    @property
    def split_totals(self) -> dict[str, int]:
        """Readable images per split."""
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    def to_dict(self) -> dict[str, Any]:
        """Returns plain lists, dicts, strings and numbers (``json.dumps`` accepts it)."""
        sizes = self.image_sizes
        return {
            "classes": list(self.classes),
            "counts": {split: dict(per_class) for split, per_class in self.counts.items()},
            "total_images": self.total_images,
            "missing_classes": {split: list(names) for split, names in self.missing_classes.items()},
            "bad_files": [[bad.path, bad.reason] for bad in self.bad_files],
            "image_sizes": {
                "count": sizes.count,
                "min_width": sizes.min_width,
                "max_width": sizes.max_width,
                "median_width": sizes.median_width,
                "min_height": sizes.min_height,
                "max_height": sizes.max_height,
                "median_height": sizes.median_height,
                "sizes": [[w, h] for w, h in sizes.sizes],
            },
            "modes": dict(self.modes),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetReport:
        """Rebuilds a report from :meth:`to_dict` output.

        Raises:
            InvalidInputError: data is not a report written by to_dict.
        """
        try:
            raw_sizes = dict(data["image_sizes"])
            sizes = ImageSizeStats(
                **{k: v for k, v in raw_sizes.items() if k != "sizes"},
                sizes=tuple((int(w), int(h)) for w, h in raw_sizes["sizes"]),
            )
            return cls(
                classes=tuple(data["classes"]),
                counts={s: {c: int(n) for c, n in per.items()} for s, per in data["counts"].items()},
                total_images=int(data["total_images"]),
                missing_classes={s: tuple(names) for s, names in data["missing_classes"].items()},
                bad_files=tuple(BadFile(str(p), str(r)) for p, r in data["bad_files"]),
                image_sizes=sizes,
                modes={m: int(n) for m, n in data["modes"].items()},
                errors=tuple(data["errors"]),
                warnings=tuple(data["warnings"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"not a dataset report ({type(exc).__name__}: {exc})") from None


def find_dataset_root(folder: Path, *, max_depth: int = 3) -> Path:
    """Finds the folder that holds the splits, looking through single wrapping folders.

    ``dogImages/train/...`` inside ``folder`` gives ``folder/dogImages`` (files beside the
    wrapping folder, such as a README, are ignored). When no split folder is found within
    ``max_depth`` levels of single sub-folders, ``folder`` itself is returned.
    """
    root = folder
    for _ in range(max_depth + 1):
        if any((root / name).is_dir() for name in (*SPLITS, *SPLIT_ALIASES)):
            return root
        subfolders = [c for c in root.iterdir() if c.is_dir() and not is_hidden_name(c.name)]
        if len(subfolders) != 1:
            break
        root = subfolders[0]
    return folder


def validate_imagefolder(
    root: Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[float], None] | None = None,
) -> DatasetReport:
    """Checks an ImageFolder tree and describes it; problems are reported, never raised.

    Args:
        root: the folder holding ``train/``, ``valid/`` and optionally ``test/``.
        max_pixels: images with more pixels are listed as decompression bombs, and so are
            images over Pillow's ``Image.MAX_IMAGE_PIXELS`` (its warning is made an error here).
        progress: called with the fraction of files checked (0..1), about 100 times.

    Returns:
        The report; ``report.is_usable`` tells whether training can use the dataset.
    """
    root = Path(root)
    if not root.is_dir():
        return DatasetReport(errors=(f"{root} is not a folder",))
    errors: list[str] = []
    warns: list[str] = []
    bad: list[BadFile] = []
    tree = _scan_layout(root, errors, warns, bad)
    classes = tuple(sorted(tree.get("train", {})))

    counts = {split: dict.fromkeys(per_class, 0) for split, per_class in tree.items()}
    sizes: list[tuple[int, int]] = []
    modes: dict[str, int] = {}
    files = [(s, c, p) for s, per in tree.items() for c, paths in sorted(per.items()) for p in paths]
    every = max(1, len(files) // 100)
    with warnings.catch_warnings():  # process-wide filters: restored on exit
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for index, (split, cls, path) in enumerate(files):
            found = inspect_image(path, max_pixels)
            if isinstance(found, str):
                bad.append(BadFile(path.relative_to(root).as_posix(), found))
            else:
                counts[split][cls] += 1
                sizes.append(found[0])
                modes[found[1]] = modes.get(found[1], 0) + 1
            if progress and (index + 1) % every == 0:
                progress((index + 1) / len(files))
    if progress:
        progress(1.0)

    missing = check_classes(classes, counts, errors, warns)
    return DatasetReport(
        classes=classes,
        counts=counts,
        total_images=len(sizes),
        missing_classes=missing,
        bad_files=tuple(bad),
        image_sizes=ImageSizeStats.from_sizes(sizes),
        modes=dict(sorted(modes.items())),
        errors=tuple(errors),
        warnings=tuple(warns),
    )


def sample_images(root: Path, split: str = "train", per_class: int = 1, limit: int = 20,
                  exclude: Collection[str] = ()) -> list[tuple[str, Path]]:
    """Picks image files for a preview grid: round-robin over sorted classes, first files first.

    Files are chosen by extension and not opened; pair it with a validated dataset, and pass the
    paths (relative to root) of its bad files as exclude.

    Raises:
        InvalidInputError: per_class < 1 or limit < 0.
        NotFoundError: root has no such split folder.
    """
    if per_class < 1 or limit < 0:
        raise InvalidInputError("sample_images: per_class must be ≥ 1 and limit ≥ 0")
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise NotFoundError(f"the dataset has no {split}/ folder")
    per_class_files = {
        cls.name: sorted(p for p in cls.iterdir() if p.is_file() and is_image_name(p.name)
                         and p.relative_to(root).as_posix() not in exclude)[:per_class]
        for cls in sorted(split_dir.iterdir(), key=lambda p: p.name)
        if cls.is_dir() and not is_hidden_name(cls.name)
    }
    picked: list[tuple[str, Path]] = []
    for rank in range(per_class):
        for cls, paths in per_class_files.items():
            if len(picked) >= limit:
                return picked
            if rank < len(paths):
                picked.append((cls, paths[rank]))
    return picked


def is_hidden_name(name: str) -> bool:
    """Dot files and the ``__MACOSX`` folder that macOS's zip adds: never data."""
    return name.startswith(".") or name == "__MACOSX"


def is_image_name(name: str) -> bool:
    """A file name with an image extension (not whether the file is an image)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS and not is_hidden_name(name)


def check_top_level(names: Iterable[str], folders: Collection[str], errors: list[str], warns: list[str]) -> None:
    """Records what the top level of a dataset gets wrong: entries beside the splits (with a hint for a
    misnamed split) and missing splits. names: every entry there; folders: those of them that are folders."""
    for name in sorted(names):
        if name not in SPLITS and not is_hidden_name(name):
            hint = f": rename it to {SPLIT_ALIASES[name]}/" if name in SPLIT_ALIASES else ""
            warns.append(f"ignored {name} at the top level{hint}")
    for split in ("train", "valid"):
        if split not in folders:
            aliases = [a for a, target in SPLIT_ALIASES.items() if target == split and a in folders]
            hint = f" (found {aliases[0]}/: rename it to {split}/)" if aliases else ""
            errors.append(f"missing the {split} split: expected {split}/<class>/<images>{hint}")
    if "test" not in folders:
        warns.append("no test split: the final evaluation will use the valid split only")


def _scan_layout(
    root: Path, errors: list[str], warns: list[str], bad: list[BadFile]
) -> dict[str, dict[str, list[Path]]]:
    """Lists image files per split per class; records layout problems and non-image files."""
    entries = list(root.iterdir())
    check_top_level([p.name for p in entries], {p.name for p in entries if p.is_dir()}, errors, warns)

    tree: dict[str, dict[str, list[Path]]] = {}
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        tree[split] = {}
        for entry in sorted(split_dir.iterdir(), key=lambda p: p.name):
            if is_hidden_name(entry.name):
                continue
            if not entry.is_dir():
                bad.append(BadFile(entry.relative_to(root).as_posix(), "not inside a class folder"))
                continue
            images = tree[split][entry.name] = []
            for folder, dirnames, filenames in os.walk(entry):
                dirnames[:] = sorted(d for d in dirnames if not is_hidden_name(d))
                for filename in sorted(filenames):
                    path = Path(folder, filename)
                    if is_image_name(filename):
                        images.append(path)
                    elif not is_hidden_name(filename):
                        suffix = os.path.splitext(filename)[1] or "no extension"
                        bad.append(BadFile(path.relative_to(root).as_posix(), f"not an image file ({suffix})"))
    return tree


def inspect_image(path: Path, max_pixels: int) -> tuple[tuple[int, int], str] | str:
    """Returns ((width, height), mode) of a readable image, or why it is unreadable."""
    try:
        with Image.open(path) as image:
            size, mode, fmt = image.size, image.mode, image.format
            if size[0] * size[1] > max_pixels:
                return f"decompression bomb: {size[0]}x{size[1]} pixels is over the limit of {max_pixels:,}"
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"decompression bomb: {exc}"
    except UnidentifiedImageError:
        return "not a readable image (unknown or corrupt format)"
    except Exception as exc:
        return f"corrupt image: {type(exc).__name__}: {exc}"
    if fmt == "JPEG" and not _has_jpeg_end(path):
        return "truncated JPEG: the end-of-image marker is missing"
    return size, mode


def _has_jpeg_end(path: Path) -> bool:
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        stream.seek(max(0, stream.tell() - _JPEG_TAIL_BYTES))
        return b"\xff\xd9" in stream.read()


def check_classes(
    classes: tuple[str, ...], counts: dict[str, dict[str, int]], errors: list[str], warns: list[str]
) -> dict[str, tuple[str, ...]]:
    """Adds the class-level errors and warnings; returns train classes missing per split."""
    if "train" not in counts:
        return {}
    if not classes:
        errors.append("train/ has no class folders: expected train/<class>/<images>")
        return {}
    if len(classes) == 1:
        errors.append(f"only one class ({classes[0]}): a classifier needs at least 2")
    for split, per_class in counts.items():
        if not sum(per_class.values()):
            errors.append(f"{split}/ has no readable images")
    empty_train = [c for c in classes if not counts["train"][c]]
    if empty_train and sum(counts["train"].values()):
        errors.append(f"train/ has no readable images of: {', '.join(empty_train)}")
    missing: dict[str, tuple[str, ...]] = {}
    for split in ("valid", "test"):
        if split not in counts:
            continue
        extra = sorted(set(counts[split]) - set(classes))
        if extra:
            errors.append(f"{split}/ has classes that train/ lacks: {', '.join(extra)}")
        absent = tuple(c for c in classes if not counts[split].get(c))
        if absent:
            missing[split] = absent
            if sum(counts[split].values()):
                warns.append(
                    f"{split}/ has no images of: {', '.join(absent)} "
                    "(its class indices must come from train/, not from its own folders)"
                )
    return missing
