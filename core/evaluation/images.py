"""Labelled images and where they come from: an ImageFolder whose class folders are the truth,
unpacked from a dropped zip or fetched from a registered dataset's test split (from the backend's
storage, or from where it lies if it was registered in place) into a scratch folder."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.datasets import IMAGE_EXTENSIONS, find_dataset_root, is_junk_name, safe_extract_zip
from core.datasets.in_place import ObjectPrefix, ObjectPrefixes
from core.entities import DatasetRecord
from core.errors import BackendError, InvalidInputError
from core.evaluation.metrics import label_order
from core.storage import Storage, validate_key

EVALUATED_SPLITS = ("test", "valid", "val", "validation")
"""In a dataset with splits, the first of these present is evaluated."""
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+|^\.+")


@dataclass(frozen=True)
class LabelledImages:
    """Images on disk, each labelled by its class folder.

    Attributes:
        root: the folder holding the class folders.
        source: where they came from, for people (``zip dogs.zip, test/``).
        images: ``(path relative to root, class folder)``, sorted by path.
        note: what a user should know about the choice of images, if anything.
    """

    root: Path
    source: str
    images: tuple[tuple[str, str], ...]
    note: str | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted({cls for _, cls in self.images}, key=label_order))


def find_labelled_images(folder: Path, *, source: str) -> LabelledImages:
    """The labelled images below folder: class folders, possibly inside ``train/ valid/ test/``
    (and inside single wrapping folders). With splits, ``test/`` is evaluated, else ``valid/``.

    Raises:
        InvalidInputError: only a ``train/`` split, or no class folder holding images.
    """
    root = find_dataset_root(folder)
    note = None
    split = next((name for name in EVALUATED_SPLITS if (root / name).is_dir()), None)
    if split is not None:
        if split != "test":
            note = f"there is no test/ split: the {split}/ split is evaluated"
        root, source = root / split, f"{source}, {split}/"
    elif (root / "train").is_dir():
        raise InvalidInputError(
            f"{source} holds only a train/ split: accuracy on the images a model trained on says little; "
            "add a test/ folder of class folders"
        )
    else:
        root = _unwrap(folder)
    images = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if (path.is_file() and len(relative.parts) > 1 and path.suffix.lower() in IMAGE_EXTENSIONS
                and not is_junk_name(relative.as_posix()) and not any(p.startswith(".") for p in relative.parts)):
            images.append((relative.as_posix(), relative.parts[0]))
    if not images:
        raise InvalidInputError(
            f"{source} holds no labelled images: expected <class>/<image>.jpg folders (JPEG, PNG, BMP, GIF or "
            "WebP), optionally inside train/ valid/ test/"
        )
    return LabelledImages(root=root, source=source, images=tuple(sorted(images)), note=note)


def _unwrap(folder: Path) -> Path:
    """Descends single wrapping folders (``dogs/<class>/...``) to the folder of class folders."""
    root = folder
    while True:
        children = [c for c in root.iterdir() if not c.name.startswith(".") and not is_junk_name(c.name)]
        if len(children) != 1 or not children[0].is_dir() or not any(c.is_dir() for c in children[0].iterdir()):
            return root
        root = children[0]


@dataclass(frozen=True)
class LabelledZip:
    """A dropped zip of class folders, possibly inside ``train/ valid/ test/``."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class DatasetTestSplit:
    """A registered dataset's ``test/`` split (``valid/`` when it has none): in the backend's storage,
    or where it lies for a dataset registered in place (an ``s3://`` prefix)."""

    dataset: DatasetRecord


EvaluationSource = LabelledZip | DatasetTestSplit


@contextmanager
def fetch_labelled_images(source: EvaluationSource, *, storage: Storage, object_prefixes: ObjectPrefixes,
                          scratch_dir: Path, progress: Callable[[int, int], None] | None = None
                          ) -> Iterator[LabelledImages]:
    """Puts the source's images in a new folder under scratch_dir, and removes it on leaving.

    Args:
        source: a dropped zip, or a registered dataset.
        storage: the backend's storage, where the datasets uploaded on the Data page are.
        object_prefixes: the backend's reach beyond it, where datasets registered in place are.
        scratch_dir: parent of the temporary folder; created when missing.
        progress: ``progress(bytes_done, bytes_total)`` while the zip is unpacked or the split fetched.

    Raises:
        InvalidInputError: not a usable zip (see ``safe_extract_zip``), no labelled images, a
            dataset with neither a test nor a valid split, or one the backend cannot reach.
        NotFoundError, BackendError: the files could not be fetched or written.
    """
    report = progress or (lambda done, total: None)
    try:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=scratch_dir, prefix="evaluation-"))
    except OSError as exc:
        raise BackendError(f"could not create a scratch folder in {scratch_dir}: {exc.strerror or exc}") from exc
    try:
        if isinstance(source, LabelledZip):
            archive = folder / "incoming" / (_UNSAFE_FILENAME.sub("_", Path(source.filename).name) or "upload.zip")
            try:
                archive.parent.mkdir()
                archive.write_bytes(source.data)
            except OSError as exc:
                raise BackendError(f"could not stage the zip: {exc.strerror or exc}") from exc
            size = len(source.data)
            root = safe_extract_zip(archive, folder / "data", progress=lambda f: report(int(f * size), size))
            archive.unlink()
            images = find_labelled_images(root, source=f"zip {source.filename}")
        else:
            images = _fetch_split(source.dataset, storage, object_prefixes, folder / "data", report)
        yield images
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _fetch_split(dataset: DatasetRecord, storage: Storage, object_prefixes: ObjectPrefixes, target: Path,
                 progress: Callable[[int, int], None]) -> LabelledImages:
    """Downloads the dataset's test split (else its valid split) into ``target/<split>``."""
    try:
        prefix = storage.key_from_uri(dataset.uri).rstrip("/")
    except InvalidInputError:  # not in the console's storage: registered in place
        _read_split(object_prefixes.open(dataset.uri), target, progress)
    else:
        split = next((split for split in ("test", "valid") if storage.list(f"{prefix}/{split}/")), None)
        if split is not None:
            storage.get_folder(f"{prefix}/{split}", target / split, progress)
    if not target.exists():
        raise InvalidInputError(f"dataset {dataset.name} has no test/ or valid/ split in {dataset.uri}: "
                                "nothing to evaluate")
    return find_labelled_images(target, source=f"dataset {dataset.name}")


def _read_split(prefix: ObjectPrefix, target: Path, progress: Callable[[int, int], None]) -> None:
    """Reads the test split (else the valid split) of an ImageFolder lying under prefix, object by object."""
    listed = [o for o in prefix.list() if not o.key.endswith("/")]  # folder markers hold nothing
    for split in ("test", "valid"):
        objects = [o for o in listed if o.key.startswith(f"{split}/")]
        if objects:
            break
    else:
        return
    total, done = sum(o.size for o in objects), 0
    for listed_object in objects:
        path = target.joinpath(*validate_key(listed_object.key).split("/"))  # no key climbs out of target
        data = prefix.read(listed_object.key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as exc:
            raise BackendError(f"could not write {path}: {exc.strerror or exc}") from exc
        done += listed_object.size
        progress(done, total)
