"""ImageFolder data for the job scripts: splits, transforms and seeded loaders.

The ``training`` channel holds ``train/<class>/*.jpg``, ``valid/<class>/...`` and optionally
``test/<class>/...``. Class names are the sorted folder names under ``train/``; the other
splits are labelled with that same mapping, so a class may be missing from ``valid/`` but a
class unknown to ``train/`` is an error. Shared by ``train.py``, the EC2 script and serving.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
AUGMENTATIONS: tuple[str, ...] = ("none", "light", "heavy")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

UNREADABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # PIL.UnidentifiedImageError, "image file is truncated", a file gone since indexing
    SyntaxError,  # PIL's parsers report some malformed headers (PNG chunks) this way
    ValueError,
    EOFError,
    Image.DecompressionBombError,
)
"""What decoding a bad file raises; anything else (a bug in a transform) still stops the job."""

Transform = Callable[[Image.Image], torch.Tensor]


class DataError(ValueError):
    """The data folder is not a usable ImageFolder tree (missing split, no classes, empty)."""


@dataclass(frozen=True)
class Unreadable:
    """What ``ImageSamples`` returns for a file it cannot decode; ``collate_readable`` drops it.

    ``path`` is relative to the data folder (``train/b/x.jpg``); ``reason`` is the decoder's error.
    """

    path: str
    reason: str


Sample = tuple[torch.Tensor, int] | Unreadable
"""What ``ImageSamples`` gives for one index."""


class Batch(tuple[torch.Tensor, torch.Tensor]):
    """A batch as ``(images, labels)`` of its readable samples; ``skipped`` lists the others.

    A 2-tuple, so ``images, labels = batch`` works as with the default collate. ``images`` and
    ``labels`` are empty when no sample of the batch was readable.
    """

    skipped: tuple[Unreadable, ...]

    def __new__(cls, images: torch.Tensor, labels: torch.Tensor, skipped: Sequence[Unreadable] = ()) -> Batch:
        batch = super().__new__(cls, (images, labels))
        batch.skipped = tuple(skipped)
        return batch

    def __reduce__(self) -> tuple[type[Batch], tuple[torch.Tensor, torch.Tensor, tuple[Unreadable, ...]]]:
        return Batch, (self[0], self[1], self.skipped)  # from a worker process to the main one

    def pin_memory(self) -> Batch:
        """Called by the DataLoader's pin-memory thread (CUDA): pins the tensors, keeps ``skipped``."""
        return Batch(self[0].pin_memory(), self[1].pin_memory(), self.skipped)


class ImageSamples(Dataset[Sample]):
    """A list of ``(path, label)`` pairs; images are opened as RGB and transformed.

    A file that cannot be decoded gives an ``Unreadable`` marker instead of a sample; its path
    is shown relative to ``root`` (the data folder) when given.
    """

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: Transform, *, root: Path | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.root = root

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        path, label = self.samples[index]
        try:
            image = load_rgb(path)
        except UNREADABLE_ERRORS as exc:
            shown = self.shown_path(path)
            reason = f"{type(exc).__name__}: {exc}".replace(str(path), shown)
            return Unreadable(shown, reason)
        return self.transform(image), label

    def shown_path(self, path: Path) -> str:
        """``path`` relative to the data folder (as logged), else as it is."""
        if self.root is not None:
            try:
                return path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return str(path)


def collate_readable(samples: list[Sample]) -> Batch:
    """The loaders' ``collate_fn``: stacks the readable samples and lists the unreadable ones."""
    readable = [s for s in samples if not isinstance(s, Unreadable)]
    skipped = [s for s in samples if isinstance(s, Unreadable)]
    if readable:
        images, labels = default_collate(readable)
    else:
        images, labels = torch.empty(0), torch.empty(0, dtype=torch.long)
    return Batch(images, labels, skipped)


@dataclass(frozen=True)
class Splits:
    """The datasets of one ImageFolder tree; ``test`` is None when there is no ``test/``."""

    class_names: list[str]
    train: ImageSamples
    valid: ImageSamples
    test: ImageSamples | None


def load_rgb(path: Path) -> Image.Image:
    """Open an image file as 3-channel RGB (grayscale and palette images included).

    Raises:
        OSError, SyntaxError, ValueError, EOFError: the file is not a decodable image
            (``UNREADABLE_ERRORS``).
    """
    with Image.open(path) as image:
        return image.convert("RGB")


def eval_transform(
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Transform:
    """The deterministic transform of validation, test and serving: resize, tensor, normalise."""
    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(list(mean), list(std)),
        ]
    )


def eval_pixels(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    """The first half of ``eval_transform``: the resized image as ``3 x S x S`` uint8.

    Serving stacks these and finishes a whole batch at once with ``normalise_pixels``: the
    same result, bit for bit, for a fraction of the per-image work.
    """
    return transforms.Compose([transforms.Resize((image_size, image_size)), transforms.PILToTensor()])


def normalise_pixels(pixels: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """The second half of ``eval_transform`` on ``[N x] 3 x S x S`` uint8: ``ToTensor``'s
    scaling, then ``Normalize``, operation for operation."""
    scaled = pixels.to(torch.get_default_dtype()).div(255)
    return transforms.functional.normalize(scaled, list(mean), list(std))


def train_transform(image_size: int, augment: str) -> Transform:
    """The training transform for an augmentation level.

    ``light`` is a small random affine (no flips, so digits and text keep their meaning);
    ``heavy`` adds random resized crops, horizontal flips, colour jitter and erasing.

    Raises:
        ValueError: ``augment`` is not one of ``AUGMENTATIONS``.
    """
    if augment == "none":
        return eval_transform(image_size)
    normalise = transforms.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))
    if augment == "light":
        return transforms.Compose(
            [
                transforms.Resize((image_size, image_size)),
                transforms.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1)),
                transforms.ToTensor(),
                normalise,
            ]
        )
    if augment == "heavy":
        return transforms.Compose(
            [
                transforms.RandomResizedCrop(image_size, scale=(0.6, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
                transforms.ToTensor(),
                normalise,
                transforms.RandomErasing(p=0.25),
            ]
        )
    raise ValueError(f"augment: {augment!r} is not one of {', '.join(AUGMENTATIONS)}")


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(class_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in class_dir.rglob("*")
        if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".")
    )


def _samples(split_dir: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    unknown = sorted(set(_class_dirs(split_dir)) - set(class_names))
    if unknown:
        raise DataError(f"{split_dir.name}/ has classes that train/ lacks: {', '.join(unknown)}")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(class_names):
        if (split_dir / name).is_dir():
            samples.extend((path, label) for path in _images_in(split_dir / name))
    if not samples:
        raise DataError(f"{split_dir.name}/ holds no images ({', '.join(IMG_EXTENSIONS)})")
    return samples


def load_splits(data_dir: Path, image_size: int, augment: str) -> Splits:
    """Index the ImageFolder tree under ``data_dir`` (files are opened lazily).

    Raises:
        DataError: ``data_dir``, ``train/`` or ``valid/`` is missing, ``train/`` has no class
            folders or a class without images, a split is empty, or ``valid/``/``test/`` has a
            class that ``train/`` lacks.
    """
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    for required in ("train", "valid"):
        if not (data_dir / required).is_dir():
            raise DataError(
                f"no {required}/ folder in {data_dir}: expected train/<class>/*.jpg, "
                "valid/<class>/... and optionally test/<class>/..."
            )
    class_names = _class_dirs(data_dir / "train")
    if not class_names:
        raise DataError(f"train/ in {data_dir} has no class folders")
    empty = [name for name in class_names if not _images_in(data_dir / "train" / name)]
    if empty:
        raise DataError(f"train/ classes without images: {', '.join(empty)}")
    evaluation = eval_transform(image_size)
    test_dir = data_dir / "test"

    def split(name: str, transform: Transform) -> ImageSamples:
        return ImageSamples(_samples(data_dir / name, class_names), transform, root=data_dir)

    return Splits(
        class_names=class_names,
        train=split("train", train_transform(image_size, augment)),
        valid=split("valid", evaluation),
        test=split("test", evaluation) if test_dir.is_dir() else None,
    )


def epoch_batches(num_samples: int, batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled batches of one epoch, a pure function of ``(seed, epoch)``.

    Resuming mid-epoch slices this list, so no image is seen twice. A trailing batch of one
    image is dropped (batch norm cannot train on it).
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_samples, generator=generator).tolist()
    batches = [order[i : i + batch_size] for i in range(0, num_samples, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed python/numpy from torch's per-worker seed.

    Workers also ignore SIGTERM: the main process owns shutdown (finish the batch, write a
    checkpoint) even when the signal is sent to the whole process group. So neither torch's
    ``terminate()`` nor multiprocessing's exit handler can stop a worker: after a fatal error the
    training script ends leftover workers itself (``shutdown.end_children``).
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def make_loader(
    dataset: ImageSamples,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    batches: list[list[int]] | None = None,
    pin_memory: bool = False,
) -> DataLoader[Sample]:
    """A seeded loader: over ``batches`` when given (training), else in order (evaluation).

    It yields ``Batch`` objects: ``(images, labels)`` of the readable samples, ``.skipped`` the
    unreadable ones.
    """
    generator = torch.Generator().manual_seed(seed)
    if batches is not None:
        return DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=num_workers,
            worker_init_fn=seed_worker,
            generator=generator,
            pin_memory=pin_memory,
            collate_fn=collate_readable,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=pin_memory,
        collate_fn=collate_readable,
    )
