"""The dataset catalog on both backends: what the check refuses never reaches storage."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from core.backend import Backend
from core.catalog import check_dataset, register_dataset
from core.datasets import EXCLUDED_MANIFEST, FolderSource, read_manifest

GOOD = [f"{split}/{cls}/{i}.jpg" for split in ("train", "valid", "test") for cls in ("cat", "dog") for i in range(2)]
BAD = {
    "train/cat/truncated.jpg": "Truncated File Read",
    "train/dog/not_an_image.jpg": "not a readable image",
    "valid/dog/notes.txt": "not an image file (.txt)",
    "train/stray.jpg": "not inside a class folder",
    "README.txt": "outside train/, valid/ and test/",
}


def _jpeg(color: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (color, 90, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def dataset_with_bad_files(root: Path) -> Path:
    """Twelve good JPEGs and one file of each kind the check refuses (see BAD)."""
    for index, relative in enumerate(GOOD):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(_jpeg(index * 20))
    (root / "train/cat/truncated.jpg").write_bytes(_jpeg(7)[:-300])
    (root / "train/dog/not_an_image.jpg").write_text("<html>a scraped error page</html>")
    (root / "valid/dog/notes.txt").write_text("labels checked by hand")
    (root / "train/stray.jpg").write_bytes(_jpeg(9))
    (root / "README.txt").write_text("dog breeds")
    return root


def test_a_dataset_with_bad_files_is_uploaded_without_them_and_lists_them(backend: Backend, tmp_path: Path) -> None:
    prepared = check_dataset(FolderSource(dataset_with_bad_files(tmp_path / "dogs")), tmp_path / "staging")
    assert prepared.report.is_usable
    record = register_dataset(backend, prepared.root, name="dogs", source=prepared.source,
                              report=prepared.report.to_dict())

    keys = [o.key for o in backend.storage.list("datasets/dogs/")]
    assert keys == sorted([f"datasets/dogs/{p}" for p in GOOD] + [f"datasets/dogs/{EXCLUDED_MANIFEST}"])
    backend.storage.get_file(f"datasets/dogs/{EXCLUDED_MANIFEST}", tmp_path / "excluded.json")
    manifest = read_manifest((tmp_path / "excluded.json").read_text())
    assert [bad.path for bad in manifest] == sorted(BAD)
    for bad in manifest:
        assert BAD[bad.path] in bad.reason
    assert record.report["excluded"] == [[bad.path, bad.reason] for bad in manifest]
    assert [d.report["excluded"] for d in backend.store.list_datasets()] == [record.report["excluded"]]
