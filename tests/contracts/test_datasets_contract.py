"""The dataset catalog on both backends: what the check refuses never reaches storage."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.backend import Backend, get_backend
from core.catalog import check_dataset, check_in_place, register_dataset, register_in_place
from core.datasets import EXCLUDED_MANIFEST, FolderSource, read_manifest
from core.errors import ConsoleError, InvalidInputError, NotFoundError
from core.progress import run_with_progress
from core.types import BackendKind
from tests.core.aws_faults import Fault, faults_fixture  # noqa: F401  (the faults fixture)

GOOD = [f"{split}/{cls}/{i}.jpg" for split in ("train", "valid", "test") for cls in ("cat", "dog") for i in range(2)]
BAD = {
    "train/cat/0-truncated.jpg": "Truncated File Read",
    "train/dog/0-not_an_image.jpg": "not a readable image",
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
    (root / "train/cat/0-truncated.jpg").write_bytes(_jpeg(7)[:-300])
    (root / "train/dog/0-not_an_image.jpg").write_text("<html>a scraped error page</html>")
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


# --- an ImageFolder already in S3, checked and registered where it lies ---------------------------------

USER_BUCKET = "user-data"
aws_only = pytest.mark.parametrize("backend", [BackendKind.AWS], indirect=True, ids=["aws"])


def _put_prefix(backend: Backend, root: Path, prefix: str) -> None:
    """Uploads the files below root to s3://user-data/<prefix>/ (another bucket than the console's)."""
    s3 = backend.session.client("s3")  # type: ignore[attr-defined]
    s3.create_bucket(Bucket=USER_BUCKET)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.put_object(Bucket=USER_BUCKET, Key=f"{prefix}/{path.relative_to(root).as_posix()}", Body=path.read_bytes())


@aws_only
def test_an_s3_prefix_is_checked_where_it_lies_and_registered_without_copying(backend: Backend,
                                                                                tmp_path: Path) -> None:
    _put_prefix(backend, dataset_with_bad_files(tmp_path / "dogs"), "scraped/dogs")
    stages: list[str] = []
    checked = check_in_place(backend, f"s3://{USER_BUCKET}/scraped/dogs", progress=lambda s, f: stages.append(s))

    assert checked.uri == f"s3://{USER_BUCKET}/scraped/dogs/"
    report = checked.report
    assert report.is_usable and report.classes == ("cat", "dog")
    assert checked.sampled == 12  # two of each class and split: the bad images sort first
    assert sorted(b.path for b in report.bad_files) == sorted(p for p in BAD if p != "README.txt")
    assert report.total_images == len(GOOD)
    assert stages[0].startswith("listed") and stages[-1] == "sample"
    record = register_in_place(backend, checked, name="dogs")
    assert record.uri == checked.uri
    assert backend.storage.list() == []  # nothing copied
    assert [d.uri for d in backend.store.list_datasets()] == [checked.uri]


@aws_only
@pytest.mark.parametrize(("make", "message"), [
    (lambda root: None, "s3://user-data/nothing/ holds no objects: check the bucket and the prefix"),
    (lambda root: (root / "a.txt").parent.mkdir(parents=True) or (root / "a.txt").write_text("x"), None),
], ids=["empty", "no-imagefolder"])
def test_an_s3_prefix_without_an_imagefolder_is_refused_clearly(backend: Backend, tmp_path: Path, make: Any,
                                                                 message: str | None) -> None:
    make(tmp_path / "nothing")
    _put_prefix(backend, tmp_path / "nothing", "nothing")
    if message:
        with pytest.raises(InvalidInputError, match=f"^{message}$"):
            check_in_place(backend, f"s3://{USER_BUCKET}/nothing/")
        return
    checked = check_in_place(backend, f"s3://{USER_BUCKET}/nothing/")
    assert "missing the train split: expected train/<class>/<images>" in checked.report.errors
    with pytest.raises(InvalidInputError, match="this dataset has errors"):
        register_in_place(backend, checked, name="nothing")
    assert backend.store.list_datasets() == []


@aws_only
def test_a_missing_bucket_and_a_denied_one_are_said_in_words(backend: Backend, tmp_path: Path,
                                                            faults: dict[str, list[Fault]]) -> None:
    with pytest.raises(NotFoundError, match="s3://no-such-bucket/x/"):
        check_in_place(backend, "s3://no-such-bucket/x/")
    _put_prefix(backend, dataset_with_bad_files(tmp_path / "dogs"), "dogs")
    faults["s3"].append(Fault("ListObjectsV2", "AccessDenied", "Access Denied", status=403))
    denied = get_backend(backend.settings)  # a new session: the fault is armed in its clients
    with pytest.raises(ConsoleError, match=r"(?i)access denied.*s3:ListBucket|s3:ListBucket.*access denied"):
        check_in_place(denied, f"s3://{USER_BUCKET}/dogs/")
    assert denied.store.list_datasets() == []


def test_a_uri_that_is_not_s3_is_refused(backend: Backend) -> None:
    with pytest.raises(InvalidInputError, match="s3://"):
        check_in_place(backend, "https://example.com/dogs/")


class _UserLeft(BaseException):
    """What Streamlit raises in the script thread when the user clicks elsewhere or leaves the page."""


def test_an_upload_the_user_walks_away_from_stops_and_leaves_nothing(backend: Backend, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = check_dataset(FolderSource(dataset_with_bad_files(tmp_path / "dogs")), tmp_path / "staging")
    put_file = backend.storage.put_file

    def slow_put_file(*args: Any, **kwargs: Any) -> str:
        time.sleep(0.05)  # a real dataset takes minutes: the user leaves while files are still going up
        return put_file(*args, **kwargs)

    monkeypatch.setattr(backend.storage, "put_file", slow_put_file)

    def on_progress(done: int, total: int) -> None:
        raise _UserLeft()

    with pytest.raises(_UserLeft):
        run_with_progress(lambda progress: register_dataset(backend, prepared.root, name="dogs", source="folder",
                                                            report=prepared.report.to_dict(), progress=progress),
                          on_progress, poll_interval_s=0.01, name="upload-walked-away")
    for worker in [t for t in threading.enumerate() if t.name == "upload-walked-away"]:
        worker.join(60)
    assert backend.storage.list() == []
    assert backend.store.list_datasets() == []
