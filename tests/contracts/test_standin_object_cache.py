"""The container stand-in's download cache: each object's bytes fetched once, and only what was listed."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.standins.object_cache import ObjectCache

BODY = b"\xff\xd8 a jpeg's bytes"
ETAG = '"5d41402abc4b2a76b9719d911017c592"'


def test_jobs_wanting_one_object_at_once_fetch_it_once(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "cache")
    fetched: list[int] = []
    first_fetch_started, release = threading.Event(), threading.Event()

    def fetch() -> tuple[bytes, str]:
        fetched.append(1)
        first_fetch_started.set()
        release.wait(10)
        return BODY, ETAG

    targets = [tmp_path / f"job-{i}.jpg" for i in range(2)]
    first = threading.Thread(target=cache.copy_to, args=(targets[0], ETAG, len(BODY), fetch))
    first.start()
    assert first_fetch_started.wait(10)
    second = threading.Thread(target=cache.copy_to, args=(targets[1], ETAG, len(BODY), fetch))
    second.start()
    release.set()
    first.join(10)
    second.join(10)

    assert len(fetched) == 1
    assert [t.read_bytes() for t in targets] == [BODY, BODY]
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_an_object_replaced_since_it_was_listed_is_written_but_not_kept(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "cache")
    newer = b"other bytes"
    fetches = 0

    def fetch() -> tuple[bytes, str]:
        nonlocal fetches
        fetches += 1
        return newer, '"e4d909c290d0fb1ca068ffaddf22cbd0"'

    for _ in range(2):
        cache.copy_to(tmp_path / "job.jpg", ETAG, len(BODY), fetch)
        assert (tmp_path / "job.jpg").read_bytes() == newer

    assert fetches == 2  # nothing was cached under the listed ETag
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
