"""The bundled digits demo: a valid, deterministic, stratified ImageFolder, as a folder or a zip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from core.datasets import build_demo_zip, safe_extract_zip, validate_imagefolder, write_demo_folder
from core.datasets.demo import main, split_indices
from core.errors import AlreadyExistsError, InvalidInputError

DIGITS = tuple(str(d) for d in range(10))


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


def test_demo_folder_is_a_valid_imagefolder(demo_dir: Path) -> None:
    report = validate_imagefolder(demo_dir)
    assert report.is_usable and report.errors == () and report.warnings == () and report.bad_files == ()
    assert report.classes == DIGITS
    assert report.total_images == 1_797
    assert report.split_totals == {"train": 1_257, "valid": 270, "test": 270}
    for split, share in (("train", 0.70), ("valid", 0.15), ("test", 0.15)):
        for digit in DIGITS:  # stratified: each class keeps its share in every split
            assert abs(report.counts[split][digit] - share * 180) <= 8, (split, digit)
    assert report.modes == {"L": 1_797}
    assert (report.image_sizes.min_width, report.image_sizes.max_height) == (64, 64)
    with Image.open(demo_dir / "train" / "0" / "0000.jpg") as image:
        assert (image.format, image.size) == ("JPEG", (64, 64))
        assert image.getextrema()[1] > 200  # a bright stroke on a dark background


def test_split_is_deterministic_per_seed() -> None:
    labels = [i % 10 for i in range(1_797)]
    first, again, other = split_indices(labels), split_indices(labels), split_indices(labels, seed=1)
    assert first == again and first != other
    assert {split: len(ids) for split, ids in first.items()} == {"train": 1_257, "valid": 270, "test": 270}
    assert sorted(i for ids in first.values() for i in ids) == list(range(1_797))
    for ids in first.values():  # stratified: every label keeps its share
        per_label = [sum(1 for i in ids if labels[i] == label) for label in range(10)]
        assert max(per_label) - min(per_label) <= 1


def test_same_seed_renders_the_same_split(tmp_path: Path, demo_dir: Path) -> None:
    again = write_demo_folder(tmp_path / "again", image_size=8)
    assert _files(again) == _files(demo_dir)
    with Image.open(again / "valid" / "5" / _files(again / "valid" / "5")[0]) as image:
        assert image.size == (8, 8)
    assert os.listdir(tmp_path) == ["again"]  # no temporary folder left


def test_demo_zip_round_trip_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "d.zip"), "--zip", "--image-size", "8", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "d.zip")
    root = safe_extract_zip(tmp_path / "d.zip", tmp_path / "extracted")
    assert root == tmp_path / "extracted"
    report = validate_imagefolder(root)
    assert report.is_usable and report.split_totals == {"train": 1_257, "valid": 270, "test": 270}
    assert sorted(os.listdir(tmp_path)) == ["d.zip", "extracted"]  # no temporaries left
    assert main([str(tmp_path / "d.zip"), "--zip"]) == 1
    assert "exists already" in capsys.readouterr().err


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="image_size"):
        write_demo_folder(tmp_path / "tiny", image_size=4)
    assert not (tmp_path / "tiny").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(AlreadyExistsError):
        write_demo_folder(tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    (tmp_path / "x.zip").write_bytes(b"mine")
    with pytest.raises(AlreadyExistsError):
        build_demo_zip(tmp_path / "x.zip")
    assert (tmp_path / "x.zip").read_bytes() == b"mine"
