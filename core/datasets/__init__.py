"""Datasets: bring an ImageFolder in (zip, URL, folder, demo), check it, describe it.

The Data page calls :func:`prepare_dataset`; the pieces it is built from are public too.
The demo's functions are imported on first use, so that ``python -m core.datasets.demo``
does not find its module imported already (runpy warns about that).
"""

from __future__ import annotations

import importlib
from typing import Any

from core.datasets.extraction import ExtractionLimits, is_junk_name, safe_extract_zip
from core.datasets.fetch import DownloadProgress, download_url
from core.datasets.manifest import EXCLUDED_MANIFEST, read_manifest, upload_plan
from core.datasets.prepare import (
    DatasetSource,
    DemoSource,
    FolderSource,
    PreparedDataset,
    PrepareProgress,
    UrlSource,
    ZipUpload,
    prepare_dataset,
    staged_datasets,
    suggest_dataset_name,
)
from core.datasets.report import (
    IMAGE_EXTENSIONS,
    SPLITS,
    BadFile,
    DatasetReport,
    ImageSizeStats,
    find_dataset_root,
    sample_images,
    validate_imagefolder,
)

__all__ = [
    "EXCLUDED_MANIFEST",
    "IMAGE_EXTENSIONS",
    "SPLITS",
    "BadFile",
    "DatasetReport",
    "DatasetSource",
    "DemoSource",
    "DownloadProgress",
    "ExtractionLimits",
    "FolderSource",
    "ImageSizeStats",
    "PrepareProgress",
    "PreparedDataset",
    "UrlSource",
    "ZipUpload",
    "build_demo_zip",
    "download_url",
    "find_dataset_root",
    "is_junk_name",
    "prepare_dataset",
    "read_manifest",
    "safe_extract_zip",
    "sample_images",
    "staged_datasets",
    "suggest_dataset_name",
    "upload_plan",
    "validate_imagefolder",
    "write_demo_folder",
    "write_standin_folder",
    "write_standin_zip",
]

_LAZY = {
    "build_demo_zip": "core.datasets.demo",
    "write_demo_folder": "core.datasets.demo",
    "write_standin_folder": "core.datasets.standin",
    "write_standin_zip": "core.datasets.standin",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
