"""prepare_dataset: every source becomes a validated folder, every failure leaves nothing."""

from __future__ import annotations

import errno
import io
import os
import socket
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from core.catalog import check_dataset
from core.datasets import (
    DemoSource,
    ExtractionLimits,
    FolderSource,
    UrlSource,
    ZipUpload,
    prepare_dataset,
    staged_datasets,
    suggest_dataset_name,
)
from core.errors import BackendError, InvalidInputError

Build = Callable[..., Path]
Pack = Callable[..., Path]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def good_zip(tmp_path: Path, make_imagefolder: Build, zip_folder: Pack) -> Path:
    """A valid dataset zipped under a wrapping dogImages/ folder."""
    return zip_folder(make_imagefolder(tmp_path / "src"), tmp_path / "dogImages.zip", prefix="dogImages/")


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    return tmp_path / "staging"


def _assert_staging_empty(staging: Path) -> None:
    assert not staging.exists() or os.listdir(staging) == []


def test_zip_upload_bytes(good_zip: Path, staging: Path) -> None:
    stages: list[tuple[str, float]] = []
    upload = ZipUpload("dogImages.zip", good_zip.read_bytes())
    prepared = prepare_dataset(upload, staging, progress=lambda s, f: stages.append((s, f)))
    assert prepared.name_suggestion == "dog-images"
    assert prepared.folder.parent == staging
    assert prepared.root == prepared.folder / "data" / "dogImages"
    assert prepared.report.is_usable and prepared.report.total_images == 10
    assert sorted(os.listdir(prepared.folder)) == ["data"]  # the uploaded archive is gone
    assert {stage for stage, _ in stages} == {"extract", "validate"}
    assert ("validate", 1.0) in stages
    prepared.discard()
    _assert_staging_empty(staging)


def test_zip_upload_path_is_left_alone(good_zip: Path, staging: Path) -> None:
    prepared = prepare_dataset(ZipUpload("dogImages.zip", good_zip), staging)
    assert prepared.report.is_usable
    assert good_zip.exists()


@pytest.mark.parametrize(
    ("filename", "content"),
    [("photo.png", "png"), ("notes.txt", b"hello, world\n"), ("weird name.zip", b"PK\x03\x04 truncated")],
)
def test_upload_that_is_not_a_zip(staging: Path, filename: str, content: bytes | str) -> None:
    if content == "png":
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format="PNG")
        content = buffer.getvalue()
    assert isinstance(content, bytes)
    with pytest.raises(InvalidInputError, match=f"{filename.replace(' ', '_')} is not a zip archive"):
        prepare_dataset(ZipUpload(filename, content), staging)
    _assert_staging_empty(staging)


def test_hostile_upload_leaves_nothing(tmp_path: Path, staging: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train/a/1.png", b"x")
        archive.writestr("../../evil.png", b"x")
    with pytest.raises(InvalidInputError, match="points outside the archive"):
        prepare_dataset(ZipUpload("evil.zip", buffer.getvalue()), staging)
    _assert_staging_empty(staging)
    assert not list(tmp_path.rglob("evil.png"))


def test_too_many_files_in_upload(good_zip: Path, staging: Path) -> None:
    with pytest.raises(InvalidInputError, match="more than 5 files"):
        prepare_dataset(ZipUpload("d.zip", good_zip), staging, limits=ExtractionLimits(max_files=5))
    _assert_staging_empty(staging)


def test_val_folder_is_renamed(tmp_path: Path, make_imagefolder: Build, zip_folder: Pack, staging: Path) -> None:
    src = make_imagefolder(tmp_path / "src", {"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}})
    prepared = prepare_dataset(ZipUpload("d.zip", zip_folder(src, tmp_path / "d.zip")), staging)
    assert prepared.report.is_usable, prepared.report.errors
    assert prepared.report.warnings[0] == "renamed the val/ folder to valid/"
    assert sorted(os.listdir(prepared.root)) == ["train", "valid"]


def test_unusable_dataset_is_returned_with_its_report(
    tmp_path: Path, make_imagefolder: Build, zip_folder: Pack, staging: Path
) -> None:
    src = make_imagefolder(tmp_path / "src", {"train": {"a": 1, "b": 1}})
    prepared = prepare_dataset(ZipUpload("d.zip", zip_folder(src, tmp_path / "d.zip")), staging)
    assert not prepared.report.is_usable
    assert prepared.report.errors[0].startswith("missing the valid split")
    prepared.discard()
    _assert_staging_empty(staging)


def test_url_source(good_zip: Path, staging: Path, http_server: Callable[..., str]) -> None:
    url = http_server("/files/dogImages.zip", good_zip.read_bytes())
    stages: set[str] = set()
    prepared = prepare_dataset(UrlSource(url), staging, progress=lambda s, f: stages.add(s))
    assert prepared.report.is_usable and prepared.name_suggestion == "dog-images"
    assert stages == {"download", "extract", "validate"}
    assert sorted(os.listdir(prepared.folder)) == ["data"]


def test_url_source_failures(good_zip: Path, staging: Path, http_server: Callable[..., str]) -> None:
    url = http_server("/dogImages.zip", good_zip.read_bytes())
    with pytest.raises(InvalidInputError, match="larger than the limit"):
        prepare_dataset(UrlSource(url), staging, max_download_bytes=100)
    _assert_staging_empty(staging)
    with pytest.raises(InvalidInputError, match="is this machine offline"):
        prepare_dataset(UrlSource(f"http://127.0.0.1:{_closed_port()}/d.zip"), staging, timeout_s=5)
    _assert_staging_empty(staging)
    with pytest.raises(InvalidInputError, match="not file:"):
        prepare_dataset(UrlSource("file:///etc/passwd"), staging)
    _assert_staging_empty(staging)


def test_folder_source(tmp_path: Path, make_imagefolder: Build, staging: Path) -> None:
    src = make_imagefolder(tmp_path / "My Dataset" / "inner")
    (src / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    os.symlink(src / "train" / "cat" / "0.png", src / "train" / "cat" / "link.png")
    before = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    prepared = prepare_dataset(FolderSource(tmp_path / "My Dataset"), staging)
    assert prepared.name_suggestion == "my-dataset"
    assert prepared.root == prepared.folder / "data" / "inner"
    assert prepared.report.is_usable and prepared.report.counts["train"]["cat"] == 4
    copied = prepared.root / "train" / "cat"
    assert not (copied / "link.png").is_symlink() and not (copied / ".DS_Store").exists()
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == before


@pytest.mark.parametrize("target", ["outside", "loop"])
def test_folder_source_refuses_bad_symlinks(
    tmp_path: Path, make_imagefolder: Build, staging: Path, target: str
) -> None:
    src = make_imagefolder(tmp_path / "src")
    (tmp_path / "secret.txt").write_text("private")
    if target == "outside":
        os.symlink(tmp_path / "secret.txt", src / "train" / "cat" / "s.png")
        message = "train/cat/s.png is a symbolic link pointing outside the folder"
    else:
        os.symlink(src / "train", src / "train" / "cat" / "up")
        message = "train/cat/up is a symbolic link loop"
    with pytest.raises(InvalidInputError, match=message):
        prepare_dataset(FolderSource(src), staging)
    _assert_staging_empty(staging)


def test_folder_source_refusals(tmp_path: Path, make_imagefolder: Build) -> None:
    with pytest.raises(InvalidInputError, match="is not a folder"):
        prepare_dataset(FolderSource(tmp_path / "missing"), tmp_path / "staging")
    src = make_imagefolder(tmp_path / "src")
    with pytest.raises(InvalidInputError, match="inside"):
        prepare_dataset(FolderSource(src), src / "staging")
    with pytest.raises(InvalidInputError, match="more than 3 files"):
        prepare_dataset(FolderSource(src), tmp_path / "staging", limits=ExtractionLimits(max_files=3))
    _assert_staging_empty(tmp_path / "staging")
    _assert_staging_empty(src / "staging")


def test_demo_source(staging: Path) -> None:
    prepared = prepare_dataset(DemoSource(image_size=8), staging)
    assert prepared.name_suggestion == "digits-demo"
    assert prepared.report.is_usable and prepared.report.total_images == 1_797
    assert prepared.report.classes == tuple(str(d) for d in range(10))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("dogImages.zip", "dog-images"),
        ("https://example.com/data/Flowers%20102.tar.gz?raw=1", "flowers-102"),
        ("https://example.com/", "example-com"),
        ("C:\\Users\\me\\My Cats.zip", "my-cats"),
        ("/home/me/datasets/birds/", "birds"),
        ("***", "dataset"),
        ("a" * 60, "a" * 40),
        ("x" * 39 + "-yz", "x" * 39),
    ],
)
def test_suggest_dataset_name(given: str, expected: str) -> None:
    assert suggest_dataset_name(given) == expected


def test_a_saved_check_is_found_again_and_a_failed_save_leaves_nothing(
    tmp_path: Path, make_imagefolder: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "staging"
    prepared = check_dataset(FolderSource(make_imagefolder(tmp_path / "pets")), staging)
    (staging / "killed-check").mkdir()  # a check that never finished: no record, skipped
    [found] = staged_datasets(staging)
    assert (found.name_suggestion, found.root, found.folder) == (prepared.name_suggestion, prepared.root, prepared.folder)
    assert found.report == prepared.report
    assert found.source == f"folder: {tmp_path / 'pets'}"

    def disk_full(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full)
    with pytest.raises(BackendError, match="could not record the checked dataset: No space left on device"):
        check_dataset(FolderSource(tmp_path / "pets"), staging)
    assert sorted(p.name for p in staging.iterdir()) == sorted(["killed-check", prepared.folder.name])


class _UserLeft(BaseException):
    """What Streamlit raises in the script thread when the user clicks elsewhere or leaves the page."""


@pytest.mark.parametrize("stage", ["extract", "validate"])
def test_a_check_the_user_walks_away_from_half_way_leaves_nothing(good_zip: Path, staging: Path, stage: str) -> None:
    def progress(at: str, fraction: float) -> None:
        if at == stage and 0 < fraction < 1:
            raise _UserLeft()

    with pytest.raises(_UserLeft):
        check_dataset(ZipUpload("cats.zip", good_zip), staging, progress=progress)
    assert list(staging.iterdir()) == []
    assert good_zip.exists()  # the dropped zip is the page's to discard
