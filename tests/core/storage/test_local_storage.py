"""The local store: atomic puts, folders with progress, listing, deletion, safe keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import BackendError, InvalidInputError, NotFoundError
from core.storage import LocalStorage, _local


def test_put_get_list_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 3_000_000)
    seen: list[tuple[int, int]] = []
    uri = storage.put_file(source, "a/f.bin", lambda done, total: seen.append((done, total)))
    assert uri == (tmp_path / "store" / "a" / "f.bin").as_uri()
    assert seen[-1] == (3_000_000, 3_000_000)
    assert storage.exists("a/f.bin") and not storage.exists("a")
    assert storage.key_from_uri(uri) == "a/f.bin"
    storage.get_file("a/f.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert [o.key for o in storage.list("a/")] == ["a/f.bin"]
    assert storage.delete("a") == 1
    with pytest.raises(NotFoundError):
        storage.get_file("a/f.bin", tmp_path / "again.bin")


def test_folder_round_trip_with_progress(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    folder = tmp_path / "ds"
    for name in ("train/a/1.jpg", "train/b/2.jpg", "valid/a/3.jpg"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"12345")
    totals: list[tuple[int, int]] = []
    uri = storage.put_folder(folder, "datasets/ds", lambda d, t: totals.append((d, t)))
    assert uri.endswith("/datasets/ds")
    assert totals[-1] == (15, 15)
    assert [d for d, _ in totals] == sorted(d for d, _ in totals)
    storage.get_folder("datasets/ds", tmp_path / "back")
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in (tmp_path / "back").rglob("*.jpg")) == [
        "train/a/1.jpg", "train/b/2.jpg", "valid/a/3.jpg"]


def test_failed_folder_upload_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "store")
    folder = tmp_path / "ds"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "1.jpg").write_bytes(b"1")
    (folder / "a" / "2.jpg").write_bytes(b"2")
    copies: list[Path] = []

    def fail_on_second(src: Path, dst_tmp: Path, progress: object) -> None:
        copy_with_progress(src, dst_tmp, progress)  # type: ignore[arg-type]
        copies.append(src)
        if len(copies) == 2:
            raise OSError("disk full")

    copy_with_progress = _local._copy_with_progress
    monkeypatch.setattr(_local, "_copy_with_progress", fail_on_second)
    with pytest.raises(BackendError, match="disk full"):
        storage.put_folder(folder, "datasets/x")
    assert storage.list("datasets/") == []
    assert not any(p.name.startswith(".part-") for p in (tmp_path / "store").rglob("*"))


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../../b", "a\\b", "./a"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(InvalidInputError):
        storage.exists(key)


def test_uri_of_another_store_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(InvalidInputError):
        storage.key_from_uri("s3://bucket/key")
    with pytest.raises(InvalidInputError):
        storage.key_from_uri((tmp_path / "elsewhere").as_uri())
