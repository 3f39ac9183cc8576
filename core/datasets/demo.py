"""The bundled demo dataset: scikit-learn's handwritten digits as an ImageFolder.

``load_digits`` ships 1,797 real 8x8 grey-level digits (10 classes) inside scikit-learn, so
the demo works offline. Each digit is scaled up with a smooth (bicubic) resample, saved as a
JPEG (quality 95) under ``<split>/<digit>/<index>.jpg``, and split 70/15/15 stratified by
class into train (1,257), valid (270) and test (270). The same seed gives the same split.

Command line::

    python -m core.datasets.demo OUT_DIR            # writes the folder OUT_DIR
    python -m core.datasets.demo OUT.zip --zip      # writes the zip OUT.zip
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from core.errors import AlreadyExistsError, ConsoleError, InvalidInputError

VALID_FRACTION = 0.15
TEST_FRACTION = 0.15
MIN_IMAGE_SIZE = 8
MAX_IMAGE_SIZE = 1024
_GREY_LEVELS = 16  # load_digits pixel values run from 0 to 16


def write_demo_folder(out_dir: Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """Renders the digits as ``out_dir/{train,valid,test}/{0..9}/NNNN.jpg``.

    Args:
        out_dir: folder to create; it may exist only when empty. Written beside it first and
            renamed into place, so it is complete or absent.
        image_size: width and height of each image in pixels (8 to 1024).
        seed: seed of the stratified split.

    Returns:
        out_dir.

    Raises:
        InvalidInputError: image_size out of range.
        AlreadyExistsError: out_dir exists and is not an empty folder.
    """
    from sklearn.datasets import load_digits

    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise InvalidInputError(f"image_size: must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, not {image_size}")
    out_dir = Path(out_dir)
    _claim_empty(out_dir)
    digits = load_digits()
    splits = split_indices(digits.target.tolist(), seed=seed)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial"))
    try:
        for split, members in splits.items():
            for label in range(10):
                (tmp / split / str(label)).mkdir(parents=True)
            for index in members:
                pixels = (digits.images[index] * (255 / _GREY_LEVELS)).clip(0, 255).astype("uint8")
                image = Image.fromarray(pixels).resize(
                    (image_size, image_size), Image.Resampling.BICUBIC
                )
                image.save(tmp / split / str(digits.target[index]) / f"{index:04d}.jpg", quality=95)
        if out_dir.is_dir():
            out_dir.rmdir()
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def split_indices(labels: Sequence[int], *, seed: int = 0) -> dict[str, list[int]]:
    """Splits sample indices 70/15/15 into train/valid/test, stratified by label.

    The valid and test sizes are rounded from 15% of all samples; the same labels and seed
    always give the same split.
    """
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    n_valid = round(len(indices) * VALID_FRACTION)
    n_test = round(len(indices) * TEST_FRACTION)
    rest, test = train_test_split(indices, test_size=n_test, stratify=labels, random_state=seed)
    rest_labels = [labels[i] for i in rest]
    train, valid = train_test_split(rest, test_size=n_valid, stratify=rest_labels, random_state=seed)
    return {"train": sorted(train), "valid": sorted(valid), "test": sorted(test)}


def build_demo_zip(zip_path: Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """Writes the demo folder as a zip with ``train/ valid/ test/`` at its top level.

    Raises:
        InvalidInputError: image_size out of range.
        AlreadyExistsError: zip_path exists.
    """
    zip_path = Path(zip_path)
    if os.path.lexists(zip_path):
        raise AlreadyExistsError(f"{zip_path} exists already")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=zip_path.parent, prefix=f".{zip_path.name}.") as tmp:
        folder = write_demo_folder(Path(tmp) / "digits", image_size=image_size, seed=seed)
        partial = Path(tmp) / "demo.zip"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:  # JPEGs do not deflate
            for path in sorted(folder.rglob("*.jpg")):
                archive.write(path, path.relative_to(folder).as_posix())
        os.rename(partial, zip_path)
    return zip_path


def _claim_empty(out_dir: Path) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        return
    if os.path.lexists(out_dir):
        raise AlreadyExistsError(f"{out_dir} exists already and is not an empty folder")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the demo folder, or with ``--zip`` the demo zip."""
    parser = argparse.ArgumentParser(prog="python -m core.datasets.demo", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (with --zip: the zip file)")
    parser.add_argument("--zip", action="store_true", help="write a zip archive instead of a folder")
    parser.add_argument("--image-size", type=int, default=64, help="image width and height (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/valid/test split (default 0)")
    args = parser.parse_args(argv)
    build = build_demo_zip if args.zip else write_demo_folder
    try:
        path = build(args.out, image_size=args.image_size, seed=args.seed)
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
