"""A tiny real model artifact (untrained EfficientNet-Lite0, 3 classes, 32 px), built once
in the job environment and packed as a training job would pack it."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR

CLASS_NAMES = ("circle", "cross", "square")
_BUILD = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from imagedata import IMAGENET_MEAN, IMAGENET_STD
from imagemodels import build_model, make_artifact
torch.manual_seed(0)
model = build_model("efficientnet_lite0", 3, image_size=32, pretrained=False).eval()
torch.save(make_artifact(model, arch="efficientnet_lite0", class_names=sys.argv[3].split(","), image_size=32,
                         mean=IMAGENET_MEAN, std=IMAGENET_STD), sys.argv[2])
"""


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (40, 30),
                color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A plain image file in ``fmt``."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def pack(model_file: Path, archive: Path) -> Path:
    """model.tar.gz with model_file as model.pth, as the training supervisor packs it."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_file, arcname="model.pth")
    return archive


@pytest.fixture(scope="session")
def model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working model.tar.gz."""
    folder = tmp_path_factory.mktemp("model")
    subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-c", _BUILD, str(ENTRYPOINTS_DIR), str(folder / "model.pth"), ",".join(CLASS_NAMES)],
        check=True, capture_output=True, timeout=300,
    )
    return pack(folder / "model.pth", folder / "model.tar.gz")


@pytest.fixture(scope="session")
def broken_model_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model.tar.gz whose model.pth is not a torch file: the server cannot load it."""
    folder = tmp_path_factory.mktemp("broken-model")
    (folder / "model.pth").write_bytes(b"these are not weights")
    return pack(folder / "model.pth", folder / "model.tar.gz")
