"""validate_imagefolder, DatasetReport and sample_images on small hand-built trees."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from core.datasets import (
    DatasetReport,
    ImageSizeStats,
    find_dataset_root,
    sample_images,
    validate_imagefolder,
)
from core.errors import InvalidInputError, NotFoundError

Build = Callable[..., Path]


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels and holds no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_good_tree(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds")
    (root / "train" / "cat" / "extra.jpg").write_bytes(_jpeg((20, 10)))
    report = validate_imagefolder(root)
    assert report.is_usable, report.errors
    assert report.classes == ("cat", "dog")
    assert report.counts == {"train": {"cat": 4, "dog": 3}, "valid": {"cat": 1, "dog": 1}, "test": {"cat": 1, "dog": 1}}
    assert report.split_totals == {"train": 7, "valid": 2, "test": 2}
    assert report.total_images == 11
    assert report.bad_files == () and report.errors == () and report.warnings == ()
    assert report.missing_classes == {}
    assert report.modes == {"RGB": 11}
    sizes = report.image_sizes
    assert (sizes.count, sizes.min_width, sizes.max_width, sizes.median_width) == (11, 16, 20, 16.0)
    assert (sizes.min_height, sizes.max_height) == (10, 12)
    assert sorted(set(sizes.sizes)) == [(16, 12), (20, 10)]


def test_bad_files_are_listed_not_fatal(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds")
    cat = root / "train" / "cat"
    (cat / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    (cat / "cut.jpg").write_bytes(_jpeg((200, 200))[:-50])  # pixel data cut, header intact
    (cat / "cut.png").write_bytes((cat / "0.png").read_bytes()[:-30])
    (cat / "notes.txt").write_text("hello")
    (cat / ".DS_Store").write_bytes(b"ignored")
    (root / "valid" / "loose.png").write_bytes((cat / "0.png").read_bytes())
    report = validate_imagefolder(root)
    assert report.is_usable
    assert report.counts["train"]["cat"] == 3
    reasons = dict(report.bad_files)
    assert set(reasons) == {
        "train/cat/garbage.jpg",
        "train/cat/cut.jpg",
        "train/cat/cut.png",
        "train/cat/notes.txt",
        "valid/loose.png",
    }
    assert reasons["train/cat/garbage.jpg"].startswith("not a readable image")
    assert reasons["train/cat/cut.jpg"].startswith("truncated JPEG")
    assert reasons["train/cat/cut.png"].startswith("corrupt image")
    assert reasons["train/cat/notes.txt"] == "not an image file (.txt)"
    assert reasons["valid/loose.png"] == "not inside a class folder"


@pytest.mark.parametrize("side", [10_000, 30_000])  # Pillow warns above 89 MP and refuses above 179 MP
def test_decompression_bombs_are_bad_files(tmp_path: Path, make_imagefolder: Build, side: int) -> None:
    root = make_imagefolder(tmp_path / "ds")
    (root / "train" / "dog" / "bomb.png").write_bytes(_png_header_only(side, side))
    report = validate_imagefolder(root, max_pixels=10**10)  # only Pillow's own guard applies
    assert report.is_usable
    assert [(b.path, b.reason.split(":")[0]) for b in report.bad_files] == [
        ("train/dog/bomb.png", "decompression bomb")
    ]


def test_max_pixels_is_applied(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds")
    report = validate_imagefolder(root, max_pixels=100)
    assert len(report.bad_files) == 10
    assert all("over the limit of 100" in bad.reason for bad in report.bad_files)
    assert not report.is_usable  # every split is now empty
    assert "train/ has no readable images" in report.errors


@pytest.mark.parametrize(
    ("layout", "error"),
    [
        ({"valid": {"a": 1, "b": 1}}, "missing the train split"),
        ({"train": {"a": 1, "b": 1}}, "missing the valid split"),
        ({"train": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}}, "(found val/: rename it to valid/)"),
        ({"train": {}, "valid": {}}, "train/ has no class folders"),
        ({"train": {"a": 2}, "valid": {"a": 1}}, "only one class (a)"),
        ({"train": {"a": 1, "b": 1}, "valid": {"a": 0, "b": 0}}, "valid/ has no readable images"),
        ({"train": {"a": 1, "b": 0}, "valid": {"a": 1, "b": 1}}, "train/ has no readable images of: b"),
        ({"train": {"a": 1, "b": 1}, "valid": {"a": 1, "c": 1}}, "valid/ has classes that train/ lacks: c"),
        ({"train": {"a": 1, "b": 1}, "valid": {"a": 1}, "test": {"z": 1}}, "test/ has classes that train/ lacks: z"),
    ],
)
def test_fatal_layout_problems(tmp_path: Path, make_imagefolder: Build, layout: dict, error: str) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    for split in layout:
        (root / split).mkdir()
    report = validate_imagefolder(make_imagefolder(root, layout))
    assert not report.is_usable
    assert any(error in message for message in report.errors), report.errors
    assert DatasetReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_missing_test_split_and_classes_are_warnings(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds", {"train": {"a": 2, "b": 2, "c": 1}, "valid": {"a": 1, "b": 1}})
    (root / "README.md").write_text("about")
    report = validate_imagefolder(root)
    assert report.is_usable, report.errors
    assert report.missing_classes == {"valid": ("c",)}
    assert any(w.startswith("no test split") for w in report.warnings)
    assert any(w.startswith("valid/ has no images of: c") for w in report.warnings)
    assert "ignored README.md at the top level" in report.warnings


def test_not_a_folder(tmp_path: Path) -> None:
    report = validate_imagefolder(tmp_path / "nope")
    assert not report.is_usable and "is not a folder" in report.errors[0]


def test_progress_reaches_one(tmp_path: Path, make_imagefolder: Build) -> None:
    fractions: list[float] = []
    validate_imagefolder(make_imagefolder(tmp_path / "ds"), progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_report_round_trips_through_json(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds", {"train": {"a": 2, "b": 2}, "valid": {"a": 1}})
    (root / "train" / "a" / "bad.png").write_bytes(b"nope")
    report = validate_imagefolder(root)
    assert report.bad_files and report.warnings and report.missing_classes
    data = json.loads(json.dumps(report.to_dict()))
    assert DatasetReport.from_dict(data) == report


@pytest.mark.parametrize("data", [{}, {"classes": []}, {"image_sizes": "x"}])
def test_from_dict_refuses_non_reports(data: dict) -> None:
    with pytest.raises(InvalidInputError, match="not a dataset report"):
        DatasetReport.from_dict(data)


def test_size_stats_sample_is_capped() -> None:
    sizes = [(w, 100 - w % 7) for w in range(1, 5_001)]
    stats = ImageSizeStats.from_sizes(sizes, cap=2_000)
    assert stats.count == 5_000
    assert (stats.min_width, stats.max_width, stats.median_width) == (1, 5_000, 2_500.5)
    assert (stats.min_height, stats.max_height) == (94, 100)
    assert 1_000 < len(stats.sizes) <= 2_000
    assert stats.sizes[0] == (1, 99)
    assert ImageSizeStats.from_sizes([]) == ImageSizeStats()


def test_sample_images_round_robin(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds", {"train": {"a": 3, "b": 1, "c": 2}})
    (root / "train" / "a" / "0.txt").write_text("skip me")
    picked = [(cls, path.relative_to(root / "train").as_posix()) for cls, path in sample_images(root, per_class=2)]
    assert picked == [("a", "a/0.png"), ("b", "b/0.png"), ("c", "c/0.png"), ("a", "a/1.png"), ("c", "c/1.png")]
    assert len(sample_images(root, per_class=3, limit=4)) == 4
    assert sample_images(root, limit=0) == []


def test_sample_images_errors(tmp_path: Path, make_imagefolder: Build) -> None:
    root = make_imagefolder(tmp_path / "ds", {"train": {"a": 1}})
    with pytest.raises(NotFoundError, match="no test/ folder"):
        sample_images(root, split="test")
    with pytest.raises(InvalidInputError):
        sample_images(root, per_class=0)


def test_find_dataset_root(tmp_path: Path) -> None:
    (tmp_path / "a" / "b" / "train").mkdir(parents=True)
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / "README.txt").write_text("about")
    assert find_dataset_root(tmp_path) == tmp_path / "a" / "b"
    (tmp_path / "a" / "other").mkdir()
    assert find_dataset_root(tmp_path) == tmp_path  # two folders: not a wrapper
