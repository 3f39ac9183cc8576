"""An offline stand-in for the dog-breeds dataset (``dogImages``), for tests and benchmarks.

The original is 133 breeds in ``train/ valid/ test/`` with 6,680 / 835 / 836 JPEGs of about
500x375 pixels, 1.1 GB zipped. The stand-in has the same layout, class names, split sizes and
a similar byte count, with synthetic pictures: a smooth random backdrop, a blob-shaped "dog" in
its class's coat colours and stripe pattern, and noise at every scale from blobs to pixel grain
so that JPEG sizes are those of photos. Classes are learnable from colour and texture.
A handful of broken files, like those of a scraped set, are added (unless bad_files=False) and listed in
the result, so tests can check that validation leaves them out.

Every image is drawn from its own seed (the run's seed and the image's number), so a seed gives
the same bytes whatever the number of worker processes.

Command line::

    python -m core.datasets.standin OUT_DIR                    # the full set, about 1 GB
    python -m core.datasets.standin OUT.zip --zip --scale 0.1  # a tenth of it, zipped
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from core.datasets.report import SPLITS, BadFile
from core.errors import AlreadyExistsError, ConsoleError, InvalidInputError

BREEDS = (
    "Affenpinscher", "Afghan_hound", "Airedale_terrier", "Akita", "Alaskan_malamute", "American_eskimo_dog",
    "American_foxhound", "American_staffordshire_terrier", "American_water_spaniel", "Anatolian_shepherd_dog",
    "Australian_cattle_dog", "Australian_shepherd", "Australian_terrier", "Basenji", "Basset_hound", "Beagle",
    "Bearded_collie", "Beauceron", "Bedlington_terrier", "Belgian_malinois", "Belgian_sheepdog", "Belgian_tervuren",
    "Bernese_mountain_dog", "Bichon_frise", "Black_and_tan_coonhound", "Black_russian_terrier", "Bloodhound",
    "Bluetick_coonhound", "Border_collie", "Border_terrier", "Borzoi", "Boston_terrier", "Bouvier_des_flandres",
    "Boxer", "Boykin_spaniel", "Briard", "Brittany", "Brussels_griffon", "Bull_terrier", "Bulldog", "Bullmastiff",
    "Cairn_terrier", "Canaan_dog", "Cane_corso", "Cardigan_welsh_corgi", "Cavalier_king_charles_spaniel",
    "Chesapeake_bay_retriever", "Chihuahua", "Chinese_crested", "Chinese_shar-pei", "Chow_chow", "Clumber_spaniel",
    "Cocker_spaniel", "Collie", "Curly-coated_retriever", "Dachshund", "Dalmatian", "Dandie_dinmont_terrier",
    "Doberman_pinscher", "Dogue_de_bordeaux", "English_cocker_spaniel", "English_setter", "English_springer_spaniel",
    "English_toy_spaniel", "Entlebucher_mountain_dog", "Field_spaniel", "Finnish_spitz", "Flat-coated_retriever",
    "French_bulldog", "German_pinscher", "German_shepherd_dog", "German_shorthaired_pointer",
    "German_wirehaired_pointer", "Giant_schnauzer", "Glen_of_imaal_terrier", "Golden_retriever", "Gordon_setter",
    "Great_dane", "Great_pyrenees", "Greater_swiss_mountain_dog", "Greyhound", "Havanese", "Ibizan_hound",
    "Icelandic_sheepdog", "Irish_red_and_white_setter", "Irish_setter", "Irish_terrier", "Irish_water_spaniel",
    "Irish_wolfhound", "Italian_greyhound", "Japanese_chin", "Keeshond", "Kerry_blue_terrier", "Komondor", "Kuvasz",
    "Labrador_retriever", "Lakeland_terrier", "Leonberger", "Lhasa_apso", "Lowchen", "Maltese", "Manchester_terrier",
    "Mastiff", "Miniature_schnauzer", "Neapolitan_mastiff", "Newfoundland", "Norfolk_terrier", "Norwegian_buhund",
    "Norwegian_elkhound", "Norwegian_lundehund", "Norwich_terrier", "Nova_scotia_duck_tolling_retriever",
    "Old_english_sheepdog", "Otterhound", "Papillon", "Parson_russell_terrier", "Pekingese", "Pembroke_welsh_corgi",
    "Petit_basset_griffon_vendeen", "Pharaoh_hound", "Plott", "Pointer", "Pomeranian", "Poodle",
    "Portuguese_water_dog", "Saint_bernard", "Silky_terrier", "Smooth_fox_terrier", "Tibetan_mastiff",
    "Welsh_springer_spaniel", "Wirehaired_pointing_griffon", "Xoloitzcuintli", "Yorkshire_terrier",
)  # fmt: skip
FULL_SPLIT_SIZES: Mapping[str, int] = {"train": 6_680, "valid": 835, "test": 836}
TYPICAL_SIZE = (500, 375)
MIN_SIDE, MAX_SIDE = 200, 1_000  # the long side's range at image_scale 1
BOMB_SIDE = 100_000  # the declared width and height of the decompression-bomb PNG
_GRAIN = 16.0  # finest noise amplitude; with 4:4:4 chroma the full set measured 1.05 GB (125 KB per image)
_SUBSAMPLING = 0  # 4:4:4, as high-quality saves often are; 4:2:0 would need far more grain for the bytes
_ROUGHNESS = 1.1  # each coarser noise octave is this much stronger: photo-like blobs over grain
_LOOK, _IMAGE, _PLAN, _NUMBERS, _BAD = range(5)  # separate random streams per use of the seed


@dataclass(frozen=True)
class StandinDataset:
    """What :func:`write_standin_folder` wrote.

    Attributes:
        root: the folder holding ``train/ valid/ test/``.
        classes: class folder names (``001.Affenpinscher``...), sorted.
        counts: readable images per split per class; the bad files are extra and not counted.
        total_bytes: bytes of every file written, the bad files included.
        bad_files: the broken or misplaced files, relative to root, and what is wrong with each.
    """

    root: Path
    classes: tuple[str, ...]
    counts: Mapping[str, Mapping[str, int]]
    total_bytes: int
    bad_files: tuple[BadFile, ...]

    @property
    def split_totals(self) -> dict[str, int]:
        """Readable images per split."""
        return {split: sum(per_class.values()) for split, per_class in self.counts.items()}

    @property
    def total_images(self) -> int:
        """Readable images over all splits."""
        return sum(self.split_totals.values())


@dataclass(frozen=True)
class _Look:
    """A class's visual signature: what makes its images alike and learnable."""

    backdrop: tuple[float, float, float]
    coat: tuple[float, float, float]
    marking: tuple[float, float, float]
    stripe_angle: float
    stripe_cycles: float  # stripes across the image's short side
    body_aspect: float
    head_angle: float
    roughness: float  # texture gain inside the dog relative to the backdrop


@dataclass(frozen=True)
class _ImageJob:
    path: Path
    number: int
    class_index: int
    seed: int
    image_scale: float


def class_names(classes: int = len(BREEDS)) -> tuple[str, ...]:
    """The first ``classes`` folder names of the original: ``001.Affenpinscher``, ``002.Afghan_hound``..."""
    return tuple(f"{index:03d}.{breed}" for index, breed in enumerate(BREEDS[:classes], start=1))


def plan_counts(
    split_sizes: Mapping[str, int], classes: int, *, seed: int = 0, min_per_class: int = 1
) -> dict[str, dict[str, int]]:
    """Spreads each split's size over the classes unevenly, as a scraped set is.

    Each class has a popularity (0.5 to 1.5, the spread of the original's train counts) that
    every split follows, with a little jitter per split. Every class gets ``min_per_class``
    images first; the rest go by popularity (largest remainder), so the sizes are exact.

    Raises:
        InvalidInputError: a split is smaller than classes * min_per_class.
    """
    names = class_names(classes)
    rng = np.random.default_rng([seed, _PLAN])
    popularity = rng.uniform(0.5, 1.5, len(names))
    plan: dict[str, dict[str, int]] = {}
    for split, size in split_sizes.items():
        spare = size - min_per_class * len(names)
        if spare < 0:
            raise InvalidInputError(
                f"split_sizes: {split} needs at least {min_per_class * len(names)} images, not {size}"
            )
        weights = popularity * rng.uniform(0.85, 1.15, len(names))
        shares = spare * weights / weights.sum()
        extra = np.floor(shares).astype(int)
        leftover = spare - int(extra.sum())
        extra[np.argsort(extra - shares, kind="stable")[:leftover]] += 1
        plan[split] = {name: min_per_class + int(n) for name, n in zip(names, extra)}
    return plan


def write_standin_folder(
    out_dir: Path,
    *,
    scale: float = 1.0,
    split_sizes: Mapping[str, int] | None = None,
    classes: int = len(BREEDS),
    image_scale: float = 1.0,
    min_per_class: int = 1,
    seed: int = 0,
    bad_files: bool = True,
    workers: int = 1,
) -> StandinDataset:
    """Writes the stand-in as ``out_dir/{train,valid,test}/NNN.Breed/Breed_NNNNN.jpg``.

    Args:
        out_dir: folder to create; it may exist only when empty. Written beside it first and
            renamed into place, so it is complete or absent.
        scale: fraction of the original's images per class (1.0: 6,680 / 835 / 836 over 133
            classes). Splits too small to give each class min_per_class images are enlarged.
        split_sizes: images per split, instead of scale.
        classes: number of classes, the original's first ones (2 to 133).
        image_scale: factor on the image sides (1.0: typically 500x375, long side 200 to 1,000);
            small for fast tests. No side is under 16 pixels.
        min_per_class: images each class has at least in every split.
        seed: the same seed gives the same files.
        bad_files: also write the broken files listed in the result's ``bad_files``.
        workers: processes that render the images.

    Returns:
        What was written.

    Raises:
        InvalidInputError: an argument out of range.
        AlreadyExistsError: out_dir exists and is not an empty folder.
    """
    _check_args(scale=scale, classes=classes, image_scale=image_scale, min_per_class=min_per_class, workers=workers)
    if split_sizes is None:
        share = scale * classes / len(BREEDS)
        split_sizes = {s: max(round(n * share), classes * min_per_class) for s, n in FULL_SPLIT_SIZES.items()}
    elif set(split_sizes) != set(SPLITS):
        raise InvalidInputError(f"split_sizes: needs exactly the splits {', '.join(SPLITS)}")
    else:
        split_sizes = {split: split_sizes[split] for split in SPLITS}
    counts = plan_counts(split_sizes, classes, seed=seed, min_per_class=min_per_class)
    names = class_names(classes)
    out_dir = Path(out_dir)
    _claim_empty(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".partial"))
    try:
        jobs = _plan_jobs(tmp, counts, seed=seed, image_scale=image_scale)
        if workers == 1:
            total_bytes = sum(map(_write_image, jobs))
        else:  # spawn: forking a process that runs threads (a Streamlit server) can deadlock
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                total_bytes = sum(pool.map(_write_image, jobs, chunksize=32))
        bad: list[BadFile] = []
        if bad_files:
            bad = _write_bad_files(tmp, names, first_number=len(jobs) + 1, seed=seed, image_scale=image_scale)
        total_bytes += sum((tmp / b.path).stat().st_size for b in bad)
        if out_dir.is_dir():
            out_dir.rmdir()
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StandinDataset(out_dir, names, counts, total_bytes, tuple(bad))


def write_standin_zip(root: Path, zip_path: Path, *, prefix: str | None = None) -> Path:
    """Zips every file below ``root`` as ``prefix/<path>``, the way dogImages.zip is laid out.

    Members are stored (JPEGs do not deflate) with a fixed timestamp, so the same folder gives
    the same zip. The zip is written to ``zip_path.partial`` and renamed when complete.

    Args:
        root: the folder to zip, usually a :func:`write_standin_folder` result's root.
        zip_path: the zip to write.
        prefix: top folder inside the zip; root's name by default, "" for none.

    Returns:
        zip_path.

    Raises:
        AlreadyExistsError: zip_path exists.
    """
    zip_path, root = Path(zip_path), Path(root)
    if os.path.lexists(zip_path):
        raise AlreadyExistsError(f"{zip_path} exists already")
    top = root.name if prefix is None else prefix
    partial = zip_path.with_name(zip_path.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            for path in sorted(root.rglob("*")):
                if not path.is_file():
                    continue
                name = path.relative_to(root).as_posix()
                info = zipfile.ZipInfo.from_file(path, f"{top}/{name}" if top else name)
                info.date_time = (1980, 1, 1, 0, 0, 0)
                with open(path, "rb") as source, archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        os.rename(partial, zip_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return zip_path


def _check_args(*, scale: float, classes: int, image_scale: float, min_per_class: int, workers: int) -> None:
    if not scale > 0:
        raise InvalidInputError(f"scale: must be above 0, not {scale}")
    if not 2 <= classes <= len(BREEDS):
        raise InvalidInputError(f"classes: must be 2 to {len(BREEDS)}, not {classes}")
    if not 0 < image_scale <= 4:
        raise InvalidInputError(f"image_scale: must be above 0 and at most 4, not {image_scale}")
    if min_per_class < 1:
        raise InvalidInputError(f"min_per_class: must be at least 1, not {min_per_class}")
    if workers < 1:
        raise InvalidInputError(f"workers: must be at least 1, not {workers}")


def _claim_empty(out_dir: Path) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        return
    if os.path.lexists(out_dir):
        raise AlreadyExistsError(f"{out_dir} exists already and is not an empty folder")


def _plan_jobs(
    root: Path, counts: Mapping[str, Mapping[str, int]], *, seed: int, image_scale: float
) -> list[_ImageJob]:
    """Makes the class folders and names each image; numbers run over the whole set, shuffled across splits."""
    total = sum(n for per_class in counts.values() for n in per_class.values())
    numbers = iter(np.random.default_rng([seed, _NUMBERS]).permutation(total) + 1)
    jobs: list[_ImageJob] = []
    for split, per_class in counts.items():
        for class_index, (name, count) in enumerate(per_class.items()):
            (root / split / name).mkdir(parents=True)
            breed = name.partition(".")[2]
            for _ in range(count):
                number = int(next(numbers))
                path = root / split / name / f"{breed}_{number:05d}.jpg"
                jobs.append(_ImageJob(path, number, class_index, seed, image_scale))
    return jobs


def _write_image(job: _ImageJob) -> int:
    data = _render_jpeg(job.number, job.class_index, job.seed, job.image_scale)
    job.path.write_bytes(data)
    return len(data)


def _write_bad_files(
    root: Path, names: Sequence[str], *, first_number: int, seed: int, image_scale: float
) -> list[BadFile]:
    """Writes one file of each kind a scraped download has broken; returns them with reasons."""
    picks = np.random.default_rng([seed, _BAD]).choice(len(names), size=5, replace=len(names) < 5)
    folders = [f"{split}/{names[i]}" for split, i in zip(("train", "train", "valid", "test", "test"), picks)]
    breeds = [names[i].partition(".")[2] for i in picks]

    jpeg = _render_jpeg(first_number, int(picks[0]), seed, image_scale)
    files = {
        BadFile(f"{folders[0]}/{breeds[0]}_{first_number:05d}.jpg", "truncated JPEG: cut at half its bytes"):
            jpeg[: len(jpeg) // 2],
        BadFile(f"{folders[1]}/{breeds[1]}_{first_number + 1:05d}.jpg", "an HTML error page saved as .jpg"):
            b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>"
            b"<body><h1>Forbidden</h1></body></html>\n",
        BadFile(f"{folders[2]}/{breeds[2]}_{first_number + 2:05d}.jpg", "an empty file (0 bytes)"): b"",
        BadFile(f"{folders[3]}/{breeds[3]}_{first_number + 3:05d}.png",
                f"a PNG declaring {BOMB_SIDE:,}x{BOMB_SIDE:,} pixels (a decompression bomb)"): _bomb_png(),
        BadFile(f"{folders[4]}/notes.txt", "a text file among the images"): b"scraped 2017; to check: duplicates\n",
        BadFile("train/stray.jpg", "a readable JPEG outside any class folder"):
            _render_jpeg(first_number + 4, 0, seed, image_scale),
    }  # fmt: skip
    for bad, data in files.items():
        (root / bad.path).write_bytes(data)
    return list(files)


def _bomb_png() -> bytes:
    """A 65-byte PNG whose header declares a huge image: cheap to write, costly to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _render_jpeg(number: int, class_index: int, seed: int, image_scale: float) -> bytes:
    """Draws picture ``number`` of a class: backdrop, striped dog-shaped blob, multi-scale texture."""
    rng = np.random.default_rng([seed, _IMAGE, number])
    look = _class_look(seed, class_index)
    width, height = _image_size(rng, image_scale)
    short = min(width, height)
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]

    grid = (np.array(look.backdrop) + rng.normal(0, 35, (3, 3, 3))).clip(0, 255).astype(np.uint8)
    backdrop = np.asarray(Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC), np.float32)

    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.4, 0.65)
    ry = short * rng.uniform(0.18, 0.3)
    rx = ry * look.body_aspect
    hx, hy = cx + rx * math.cos(look.head_angle), cy - ry * math.sin(look.head_angle)
    body = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    head = ((x - hx) / (0.55 * ry)) ** 2 + ((y - hy) / (0.55 * ry)) ** 2
    mask = np.clip((1 - np.minimum(body, head)) * 6, 0, 1)[..., None]

    angle = look.stripe_angle + rng.normal(0, 0.15)
    phase = (x * math.cos(angle) + y * math.sin(angle)) * (2 * math.pi * look.stripe_cycles / short)
    wave = (0.5 + 0.5 * np.sin(phase + rng.uniform(0, 2 * math.pi)))[..., None]
    coat = np.array(look.coat, np.float32) + (np.array(look.marking, np.float32) - look.coat) * wave

    texture = _fractal_noise(rng, width, height, _GRAIN)[..., None]
    pixels = backdrop * (1 - mask) + coat * mask + texture * (1 + (look.roughness - 1) * mask)
    pixels = pixels * rng.uniform(0.8, 1.15) + rng.normal(0, 10)  # exposure
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(85, 91)), subsampling=_SUBSAMPLING)
    return buffer.getvalue()


def _image_size(rng: np.random.Generator, image_scale: float) -> tuple[int, int]:
    """Long side log-normal around 500 px (200 to 1,000), mostly 4:3 landscape, some portrait or square."""
    long_side = float(np.clip(np.exp(rng.normal(math.log(TYPICAL_SIZE[0]), 0.3)), MIN_SIDE, MAX_SIDE))
    aspect = rng.choice([4 / 3, 3 / 2, 16 / 9, 1.0], p=[0.7, 0.15, 0.05, 0.1])
    width, height = long_side, long_side / aspect
    if rng.uniform() < 0.15:
        width, height = height, width
    return max(16, round(width * image_scale)), max(16, round(height * image_scale))


def _fractal_noise(rng: np.random.Generator, width: int, height: int, grain: float) -> np.ndarray:
    """Noise with detail at every scale, as in photos: from blobs 1/8 of the image across to pixel grain.

    The finest octave has amplitude ``grain`` and each coarser one ``_ROUGHNESS`` times more; the
    fine octaves decide the JPEG size, the coarse ones the look.
    """
    sizes = [(width, height)]
    while min(sizes[-1]) >= 8:
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    field = np.zeros((sizes[-1][1], sizes[-1][0]), np.float32)
    for octave in range(len(sizes) - 1, -1, -1):
        w, h = sizes[octave]
        if field.shape != (h, w):
            field = np.asarray(Image.fromarray(field).resize((w, h), Image.Resampling.BICUBIC))
        field = field + rng.standard_normal((h, w), dtype=np.float32) * (grain * _ROUGHNESS**octave)
    return field


@cache
def _class_look(seed: int, class_index: int) -> _Look:
    rng = np.random.default_rng([seed, _LOOK, class_index])

    def colour(low: float, high: float) -> tuple[float, float, float]:
        red, green, blue = rng.uniform(low, high, 3).tolist()
        return red, green, blue

    return _Look(
        backdrop=colour(50, 210),
        coat=colour(20, 235),
        marking=colour(20, 235),
        stripe_angle=float(rng.uniform(0, math.pi)),
        stripe_cycles=float(rng.uniform(3, 20)),
        body_aspect=float(rng.uniform(1.1, 1.9)),
        head_angle=float(rng.uniform(0.2, math.pi - 0.2)),
        roughness=float(rng.uniform(0.5, 1.6)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the stand-in folder, or with ``--zip`` a zip of it."""
    parser = argparse.ArgumentParser(prog="python -m core.datasets.standin", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write (with --zip: the zip file)")
    parser.add_argument("--zip", action="store_true", help="write a zip (top folder: its name without .zip)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the original's images (default 1.0)")
    parser.add_argument("--classes", type=int, default=len(BREEDS), help=f"number of classes (default {len(BREEDS)})")
    parser.add_argument("--image-scale", type=float, default=1.0, help="factor on the image sides (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything drawn (default 0)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes (default: CPUs)")
    parser.add_argument("--no-bad-files", action="store_true", help="leave out the broken files")
    args = parser.parse_args(argv)

    def write(out_dir: Path) -> StandinDataset:
        return write_standin_folder(
            out_dir, scale=args.scale, classes=args.classes, image_scale=args.image_scale, seed=args.seed,
            bad_files=not args.no_bad_files, workers=args.workers,
        )  # fmt: skip

    started = time.perf_counter()
    try:
        if not args.zip:
            dataset = write(args.out)
        else:
            if os.path.lexists(args.out):
                raise AlreadyExistsError(f"{args.out} exists already")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=f".{args.out.name}.") as tmp:
                dataset = write(Path(tmp) / args.out.stem)
                write_standin_zip(dataset.root, args.out)
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    totals = ", ".join(f"{split} {n:,}" for split, n in dataset.split_totals.items())
    size = args.out.stat().st_size if args.zip else dataset.total_bytes
    print(f"{args.out}: {dataset.total_images:,} images ({totals}) in {len(dataset.classes)} classes, "
          f"{size:,} bytes, {len(dataset.bad_files)} bad files, {time.perf_counter() - started:.1f} s")  # fmt: skip
    for bad in dataset.bad_files:
        print(f"  bad: {bad.path}: {bad.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
