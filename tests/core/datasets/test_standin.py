"""The dog-breeds stand-in: layout, counts, varied textured images, bad files the validator lists, zip."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.datasets.report import validate_imagefolder
from core.datasets.standin import (
    BOMB_SIDE,
    BREEDS,
    FULL_SPLIT_SIZES,
    StandinDataset,
    class_names,
    main,
    plan_counts,
    write_standin_folder,
    write_standin_zip,
)
from core.errors import AlreadyExistsError, InvalidInputError

SMALL = {"scale": 0.01, "image_scale": 0.25}  # 133 images per split (one per class) of about 125x94
# What validate_imagefolder says about each kind of bad file the stand-in writes, by the stand-in's reason.
VALIDATOR_SAYS = {
    "truncated JPEG": "truncated JPEG: the end-of-image marker is missing",
    "an HTML error page": "not a readable image",
    "an empty file": "not a readable image",
    "a PNG declaring": "decompression bomb",
    "a text file": "not an image file (.txt)",
    "a readable JPEG outside": "not inside a class folder",
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> StandinDataset:
    """The full 133 classes at 1% of the images, small pictures: written once for the module."""
    return write_standin_folder(tmp_path_factory.mktemp("standin") / "dogImages", **SMALL)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_class_names_follow_the_original() -> None:
    names = class_names()
    assert len(names) == len(set(names)) == 133
    assert names[0] == "001.Affenpinscher" and names[-1] == "133.Yorkshire_terrier"
    assert all(re.fullmatch(r"\d{3}\.[A-Z][A-Za-z_-]+", name) for name in names)
    assert class_names(5) == names[:5]


def test_full_plan_has_the_original_split_sizes_spread_unevenly() -> None:
    plan = plan_counts(FULL_SPLIT_SIZES, len(BREEDS))
    assert {split: sum(per_class.values()) for split, per_class in plan.items()} == {
        "train": 6_680,
        "valid": 835,
        "test": 836,
    }
    train = np.array(list(plan["train"].values()))
    assert train.min() >= 20 and train.max() >= 2 * train.min()  # the original: 26 to 77
    assert min(min(plan[split].values()) for split in ("valid", "test")) >= 3
    popular = max(plan["train"], key=plan["train"].__getitem__)
    assert plan["valid"][popular] > np.mean(list(plan["valid"].values()))  # splits follow one popularity
    assert plan_counts(FULL_SPLIT_SIZES, 133) == plan and plan_counts(FULL_SPLIT_SIZES, 133, seed=1) != plan


def test_plan_refuses_a_split_too_small_for_the_minimum() -> None:
    with pytest.raises(InvalidInputError, match="split_sizes: valid needs at least 10"):
        plan_counts({"train": 10, "valid": 9}, 5, min_per_class=2)


def test_scaled_set_has_every_class_in_every_split(standin: StandinDataset) -> None:
    root = standin.root
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "valid"]
    assert standin.classes == class_names(133)
    bad = {b.path for b in standin.bad_files}
    for split in ("train", "valid", "test"):
        assert sorted(p.name for p in (root / split).iterdir() if p.is_dir()) == list(standin.classes)
        for cls in standin.classes:
            good = [p for p in (root / split / cls).iterdir() if p.relative_to(root).as_posix() not in bad]
            assert len(good) == standin.counts[split][cls] >= 1
            assert all(re.fullmatch(cls[4:] + r"_\d{5}\.jpg", p.name) for p in good)
    assert standin.split_totals == {"train": 133, "valid": 133, "test": 133}
    assert standin.total_bytes == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert not list(root.parent.glob(".*partial"))


def test_images_are_varied_textured_jpegs(standin: StandinDataset) -> None:
    bad = {b.path for b in standin.bad_files}
    paths = [p for p in sorted(standin.root.rglob("*.jpg")) if p.relative_to(standin.root).as_posix() not in bad]
    sizes = []
    for path in paths[::3]:
        with Image.open(path) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")
            pixels = np.asarray(image, np.float32)
        sizes.append(pixels.shape[1::-1])
        assert pixels.std() > 25  # not flat colour
        assert np.abs(np.diff(pixels, axis=1)).mean() > 4  # fine texture, not only gradients
    widths, heights = np.array(sizes).T
    assert 100 <= np.median(widths) <= 150 and 75 <= np.median(heights) <= 115  # 500x375 at image_scale 0.25
    assert widths.min() >= 25 and max(widths.max(), heights.max()) <= 250
    assert len(set(sizes)) > len(sizes) / 2  # varied
    assert (heights > widths).any() and (heights < widths).mean() > 0.6  # mostly landscape, some portrait


def test_bad_files_are_written_and_validation_lists_exactly_them(standin: StandinDataset) -> None:
    assert [Path(b.path).suffix for b in standin.bad_files] == [".jpg", ".jpg", ".jpg", ".png", ".txt", ".jpg"]
    by_kind = {kind: b for b in standin.bad_files for kind in VALIDATOR_SAYS if b.reason.startswith(kind)}
    assert len(by_kind) == len(standin.bad_files) == len(VALIDATOR_SAYS)
    root = standin.root
    assert (root / by_kind["an empty file"].path).stat().st_size == 0
    assert (root / by_kind["an HTML error page"].path).read_bytes().startswith(b"<!DOCTYPE html>")
    assert b"\xff\xd9" not in (root / by_kind["truncated JPEG"].path).read_bytes()[-64:]
    with Image.open(root / by_kind["a readable JPEG outside"].path) as stray:
        stray.load()
    assert by_kind["a readable JPEG outside"].path == "train/stray.jpg"
    assert len((root / by_kind["a PNG declaring"].path).read_bytes()) == 65
    assert f"{BOMB_SIDE:,}x{BOMB_SIDE:,}" in by_kind["a PNG declaring"].reason

    report = validate_imagefolder(root)
    assert report.is_usable and report.errors == () and report.warnings == ()
    assert {b.path for b in report.bad_files} == {b.path for b in standin.bad_files}
    said = {b.path: b.reason for b in report.bad_files}
    for kind, bad in by_kind.items():
        assert said[bad.path].startswith(VALIDATOR_SAYS[kind]), (bad, said[bad.path])
    assert report.counts == standin.counts and report.total_images == standin.total_images == 399
    assert report.modes == {"RGB": 399}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    options = {"classes": 4, "split_sizes": {"train": 8, "valid": 4, "test": 4}, "image_scale": 0.2}
    one = write_standin_folder(tmp_path / "one", seed=3, **options)  # type: ignore[arg-type]
    two = write_standin_folder(tmp_path / "two", seed=3, workers=2, **options)  # type: ignore[arg-type]
    other = write_standin_folder(tmp_path / "other", seed=4, **options)  # type: ignore[arg-type]
    assert _tree(one.root) == _tree(two.root)
    assert (one.counts, one.bad_files, one.total_bytes) == (two.counts, two.bad_files, two.total_bytes)
    assert _tree(one.root) != _tree(other.root)
    assert sum(one.split_totals.values()) == 16


def test_classes_are_learnable_from_colour(tmp_path: Path) -> None:
    """A nearest-centroid classifier on colour histograms beats chance (1 in 5) by far."""
    sizes = {"train": 50, "valid": 25, "test": 5}
    dataset = write_standin_folder(tmp_path / "d", classes=5, split_sizes=sizes, image_scale=0.15, bad_files=False)

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows, labels = [], []
        for label, cls in enumerate(dataset.classes):
            for path in sorted((dataset.root / split / cls).glob("*.jpg")):
                with Image.open(path) as image:
                    pixels = np.asarray(image.resize((16, 16), Image.Resampling.BOX), np.float32)
                rows.append(np.concatenate([np.histogram(pixels[..., c], 8, (0, 256))[0] for c in range(3)]))
                labels.append(label)
        return np.array(rows, np.float32), np.array(labels)

    train, train_labels = features("train")
    valid, valid_labels = features("valid")
    centroids = np.stack([train[train_labels == k].mean(0) for k in range(5)])
    predicted = ((valid[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == valid_labels).mean() >= 0.5  # 0.68 with these sizes and seed
    assert dataset.bad_files == ()


def test_zip_extracts_to_the_folder(standin: StandinDataset, tmp_path: Path) -> None:
    zip_path = write_standin_zip(standin.root, tmp_path / "dogImages.zip")
    assert not (tmp_path / "dogImages.zip.partial").exists()
    with zipfile.ZipFile(zip_path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
        assert all(name.startswith("dogImages/") for name in archive.namelist())
        archive.extractall(tmp_path / "out")
    assert _tree(tmp_path / "out" / "dogImages") == _tree(standin.root)
    assert zip_path.stat().st_size < standin.total_bytes * 1.05
    again = write_standin_zip(standin.root, tmp_path / "again.zip")
    assert again.read_bytes() == zip_path.read_bytes()  # fixed timestamps: reproducible
    with pytest.raises(AlreadyExistsError):
        write_standin_zip(standin.root, zip_path)
    with zipfile.ZipFile(write_standin_zip(standin.root, tmp_path / "flat.zip", prefix="")) as archive:
        assert "train/stray.jpg" in archive.namelist()


def test_refuses_bad_arguments_and_a_used_folder(tmp_path: Path) -> None:
    for kwargs, field in (
        ({"scale": 0}, "scale"),
        ({"classes": 134}, "classes"),
        ({"classes": 1}, "classes"),
        ({"image_scale": 0}, "image_scale"),
        ({"min_per_class": 0}, "min_per_class"),
        ({"workers": 0}, "workers"),
        ({"split_sizes": {"train": 10, "valid": 10}}, "split_sizes"),
    ):
        with pytest.raises(InvalidInputError, match=f"^{field}:"):
            write_standin_folder(tmp_path / "d", **kwargs)  # type: ignore[arg-type]
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("x")
    with pytest.raises(AlreadyExistsError):
        write_standin_folder(tmp_path / "used", classes=2, scale=0.01, image_scale=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]


def test_command_line_writes_a_folder_or_a_zip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--classes", "3", "--scale", "0.01", "--image-scale", "0.1", "--workers", "1"]
    assert main([str(tmp_path / "set"), *args]) == 0
    out = capsys.readouterr().out
    assert re.match(r".*/set: 9 images \(train 3, valid 3, test 3\) in 3 classes, [\d,]+ bytes, 6 bad files, ", out)
    assert out.count("  bad: ") == 6 and (tmp_path / "set" / "train" / "stray.jpg").is_file()

    assert main([str(tmp_path / "dogImages.zip"), "--zip", "--no-bad-files", *args]) == 0
    assert ", 0 bad files, " in capsys.readouterr().out
    with zipfile.ZipFile(tmp_path / "dogImages.zip") as archive:
        assert len(archive.namelist()) == 9 and archive.namelist()[0].startswith("dogImages/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dogImages.zip", "set"]

    assert main([str(tmp_path / "set"), *args]) == 1
    assert "exists already" in capsys.readouterr().err
