"""The Storage contract (core/storage/_base.py), held to the same assertions on both backends."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from core.backend import Backend
from core.errors import BackendError, InvalidInputError, NotFoundError
from core.storage import Storage

BIG = 9 * 1024 * 1024  # above the 8 MB multipart threshold of S3Storage: three parts on S3
UNSAFE_KEYS = ["", "/abs", "../up", "a/../../b", "a\\b", "./a", "a//b"]


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage


def _file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorder() -> tuple[list[tuple[int, int]], object]:
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


def _assert_progress(seen: list[tuple[int, int]], total: int) -> None:
    """Reports count up to total, never back (any thread may report: only values are checked)."""
    assert seen, "no progress was reported"
    assert {t for _, t in seen} == {total}
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert done[-1] == total


def test_a_file_goes_in_and_comes_back(storage: Storage, tmp_path: Path) -> None:
    source = _file(tmp_path / "in" / "model.bin", 300_000)
    uri = storage.put_file(source, "models/m1/model.bin")

    assert uri == storage.uri("models/m1/model.bin")
    assert storage.key_from_uri(uri) == "models/m1/model.bin"
    back = storage.get_file("models/m1/model.bin", tmp_path / "out" / "model.bin")
    assert back == tmp_path / "out" / "model.bin"
    assert _sha(back) == _sha(source)


def test_a_put_replaces_the_object(storage: Storage, tmp_path: Path) -> None:
    storage.put_file(_file(tmp_path / "v1", 10), "k")
    storage.put_file(_file(tmp_path / "v2", 20), "k")

    assert [(o.key, o.size) for o in storage.list("k")] == [("k", 20)]
    assert _sha(storage.get_file("k", tmp_path / "back")) == _sha(tmp_path / "v2")


def test_uris_name_keys_of_this_store_only(storage: Storage) -> None:
    for key in ("a", "datasets/digits/train/0/img 1.png"):
        assert storage.key_from_uri(storage.uri(key)) == key
    for foreign in ("http://example.com/a", "s3://another-bucket/sm-console/a", "file:///elsewhere/a"):
        with pytest.raises(InvalidInputError):
            storage.key_from_uri(foreign)


def test_list_is_sorted_by_key_with_sizes(storage: Storage, tmp_path: Path) -> None:
    for key, size in (("d/z.txt", 3), ("d/a/2.txt", 5), ("d/a/1.txt", 1), ("e/x.txt", 7)):
        storage.put_file(_file(tmp_path / "src" / key, size), key)

    listed = storage.list("d/")
    assert [(o.key, o.size) for o in listed] == [("d/a/1.txt", 1), ("d/a/2.txt", 5), ("d/z.txt", 3)]
    assert [o.uri for o in listed] == [storage.uri(o.key) for o in listed]
    assert [o.key for o in storage.list()] == ["d/a/1.txt", "d/a/2.txt", "d/z.txt", "e/x.txt"]
    assert storage.list("nothing/") == []


def test_exists_means_an_object_of_exactly_that_key(storage: Storage, tmp_path: Path) -> None:
    storage.put_file(_file(tmp_path / "f", 4), "p/q/f.txt")

    assert storage.exists("p/q/f.txt")
    assert not storage.exists("p/q")  # a prefix is not an object
    assert not storage.exists("p/q/f")
    assert not storage.exists("missing.txt")


def test_delete_takes_the_prefix_and_leaves_its_siblings(storage: Storage, tmp_path: Path) -> None:
    keys = ["a/b/1", "a/b/sub/2", "a/bc/3", "a/bcd", "a/b.txt"]
    for key in keys:
        storage.put_file(_file(tmp_path / "src" / key, 2), key)

    assert storage.delete("a/b") == 2
    assert [o.key for o in storage.list("a/")] == ["a/b.txt", "a/bc/3", "a/bcd"]
    assert storage.delete("a/bcd") == 1  # one object
    assert storage.delete("a/b") == 0  # nothing left there
    assert storage.delete("never/was") == 0
    assert [o.key for o in storage.list("a/")] == ["a/b.txt", "a/bc/3"]


def test_getting_a_missing_key_is_not_found(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        storage.get_file("no/such/key.bin", tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_unsafe_keys_are_invalid_input(storage: Storage, tmp_path: Path, key: str) -> None:
    source = _file(tmp_path / "f", 1)
    calls = [
        lambda: storage.uri(key),
        lambda: storage.put_file(source, key),
        lambda: storage.get_file(key, tmp_path / "out"),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.put_folder(tmp_path, key),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError):
            call()
    assert storage.list() == []


@pytest.mark.parametrize("prefix", ["/abs", "../up", "a/../../b", "a\\b"])
def test_listing_outside_the_store_is_invalid_input(storage: Storage, prefix: str) -> None:
    with pytest.raises(InvalidInputError):
        storage.list(prefix)


def test_a_folder_goes_in_with_progress_and_comes_back(storage: Storage, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    sizes = {"train/a/1.jpg": 1000, "train/b/2.jpg": 2000, "valid/a/3.jpg": 3000}
    for name, size in sizes.items():
        _file(folder / name, size)
    seen, progress = _recorder()

    uri = storage.put_folder(folder, "datasets/ds", progress)  # type: ignore[arg-type]

    assert uri == storage.uri("datasets/ds")
    _assert_progress(seen, sum(sizes.values()))
    assert [(o.key, o.size) for o in storage.list("datasets/ds/")] == [
        (f"datasets/ds/{name}", size) for name, size in sorted(sizes.items())]
    seen, progress = _recorder()
    storage.get_folder("datasets/ds", tmp_path / "back", progress)  # type: ignore[arg-type]
    _assert_progress(seen, sum(sizes.values()))
    for name in sizes:
        assert _sha(tmp_path / "back" / name) == _sha(folder / name)


def test_a_folder_that_fails_midway_leaves_nothing_under_its_prefix(storage: Storage, tmp_path: Path) -> None:
    storage.put_file(_file(tmp_path / "keep", 3), "datasets/ds-kept/keep.bin")
    folder = tmp_path / "ds"
    first, second, third = _file(folder / "1.bin", 1000), _file(folder / "2.bin", 1000), _file(folder / "3.bin", 1000)

    def vanish_second(done: int, _total: int) -> None:
        """Once the first file is up, the second disappears: its upload must fail."""
        if done >= first.stat().st_size:
            second.unlink(missing_ok=True)

    with pytest.raises(BackendError):
        storage.put_folder(folder, "datasets/ds", vanish_second)

    assert storage.list("datasets/ds/") == []
    assert not storage.exists("datasets/ds/1.bin")
    assert [o.key for o in storage.list("datasets/")] == ["datasets/ds-kept/keep.bin"]
    assert third.exists()


def test_a_large_file_round_trips_with_progress(storage: Storage, tmp_path: Path) -> None:
    source = _file(tmp_path / "big.bin", BIG)
    seen, progress = _recorder()

    storage.put_file(source, "models/big.bin", progress)  # type: ignore[arg-type]

    _assert_progress(seen, BIG)
    assert [(o.key, o.size) for o in storage.list("models/")] == [("models/big.bin", BIG)]
    seen, progress = _recorder()
    back = storage.get_file("models/big.bin", tmp_path / "back.bin", progress)  # type: ignore[arg-type]
    _assert_progress(seen, BIG)
    assert _sha(back) == _sha(source)


def test_a_progress_callback_that_raises_does_not_fail_the_transfer(storage: Storage, tmp_path: Path) -> None:
    source = _file(tmp_path / "f.bin", 50_000)

    def broken(_done: int, _total: int) -> None:
        raise RuntimeError("a progress bar from the wrong thread")

    storage.put_file(source, "f.bin", broken)
    assert _sha(storage.get_file("f.bin", tmp_path / "back.bin", broken)) == _sha(source)
