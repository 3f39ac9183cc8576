"""The dataset catalog: upload a prepared dataset to the backend's storage and record it."""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.datasets import (
    DatasetSource,
    DemoSource,
    FolderSource,
    PreparedDataset,
    PrepareProgress,
    UrlSource,
    ZipUpload,
    prepare_dataset,
)
from core.datasets.in_place import CheckProgress, InPlaceDataset
from core.datasets.in_place import check_in_place as check_prefix
from core.datasets.manifest import EXCLUDED_MANIFEST, manifest_json, upload_plan
from core.entities import DatasetRecord
from core.errors import AlreadyExistsError, InvalidInputError
from core.storage import ProgressCallback

if TYPE_CHECKING:
    from core.backend import Backend

DATASET_NAME_RE = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,39}$")
DATASETS_PREFIX = "datasets"


def validate_dataset_name(name: str) -> str:
    """Returns name if it is a valid dataset name.

    Raises:
        InvalidInputError: not 1-40 lower-case letters, digits and single hyphens.
    """
    if not DATASET_NAME_RE.match(name):
        raise InvalidInputError(
            f"dataset name {name!r}: use 1-40 lower-case letters, digits and single hyphens"
        )
    return name


def register_dataset(
    backend: Backend,
    root: Path,
    *,
    name: str,
    source: str,
    report: dict[str, object],
    progress: ProgressCallback | None = None,
) -> DatasetRecord:
    """Uploads the usable images of a checked folder to ``datasets/<name>`` and adds it to the catalog.

    What the check refused, and whatever lies outside the splits, stays behind, listed with its
    reason in ``datasets/<name>/excluded.json`` (see :mod:`core.datasets.manifest`). All or
    nothing: if the upload fails, what was uploaded is deleted again.

    Raises:
        InvalidInputError: an invalid name, or a report that says the dataset is unusable.
        AlreadyExistsError: the name is taken in the catalog or in storage.
        BackendError: storage failed.
    """
    validate_dataset_name(name)
    if report.get("errors"):
        raise InvalidInputError("this dataset has errors (see the report): fix them before uploading")
    if any(d.name == name for d in backend.store.list_datasets()):
        raise AlreadyExistsError(f"a dataset named {name!r} already exists: choose another name")
    prefix = f"{DATASETS_PREFIX}/{name}"
    if backend.storage.list(prefix + "/"):
        raise AlreadyExistsError(f"storage already holds data under {backend.storage.uri(prefix)}")
    included, excluded = upload_plan(root, report.get("bad_files", []))  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="smc-manifest-") as scratch:
        manifest = Path(scratch, EXCLUDED_MANIFEST)
        manifest.write_text(manifest_json(excluded))
        uri = backend.storage.put_files([*included, (manifest, EXCLUDED_MANIFEST)], prefix, progress)
    record = DatasetRecord(name=name, uri=uri, source=source, created_at=time.time(),
                           report={**report, "excluded": [list(bad) for bad in excluded]})
    try:
        backend.store.put_dataset(record)
    except BaseException:
        backend.storage.delete(prefix)
        raise
    return record


def check_in_place(backend: Backend, uri: str, *, progress: CheckProgress | None = None) -> InPlaceDataset:
    """Checks the ImageFolder under an ``s3://`` prefix where it lies (see :mod:`core.datasets.in_place`).

    Raises:
        InvalidInputError: not a URI the backend reads (any ``s3://`` on the local backend), or
            nothing under it.
        NotFoundError, CredentialsError, BackendError: no such bucket, access denied, ...
    """
    return check_prefix(backend.object_prefixes.open(uri), progress=progress)


def register_in_place(backend: Backend, checked: InPlaceDataset, *, name: str) -> DatasetRecord:
    """Adds a dataset checked in place to the catalog; nothing is copied, jobs read it where it lies.

    Raises:
        InvalidInputError: an invalid name, or a check that found the dataset unusable.
        AlreadyExistsError: the name is taken.
    """
    validate_dataset_name(name)
    if not checked.report.is_usable:
        raise InvalidInputError("this dataset has errors (see the report): fix them before registering it")
    if any(d.name == name for d in backend.store.list_datasets()):
        raise AlreadyExistsError(f"a dataset named {name!r} already exists: choose another name")
    record = DatasetRecord(name=name, uri=checked.uri, source=f"in place: {checked.uri}", created_at=time.time(),
                           report=checked.report.to_dict())
    backend.store.put_dataset(record)
    return record


def list_datasets(backend: Backend) -> list[DatasetRecord]:
    """The catalog, newest first."""
    return backend.store.list_datasets()


def check_dataset(source: DatasetSource, staging_dir: Path, *,
                  progress: PrepareProgress | None = None) -> PreparedDataset:
    """Stages and validates a source (see :func:`prepare_dataset`, whose errors it raises) and
    records the check, so that it is not lost when the browser session ends."""
    prepared = replace(prepare_dataset(source, staging_dir, progress=progress), source=source_label(source))
    try:
        prepared.save()
    except BaseException:
        prepared.discard()
        raise
    return prepared


def source_label(source: DatasetSource) -> str:
    """A short description of where a dataset came from, for the catalog."""
    if isinstance(source, ZipUpload):
        return f"zip: {source.filename}"
    if isinstance(source, UrlSource):
        return f"url: {source.url}"
    if isinstance(source, FolderSource):
        return f"folder: {source.path}"
    if isinstance(source, DemoSource):
        return "demo: scikit-learn digits"
    raise TypeError(f"unknown dataset source {source!r}")
