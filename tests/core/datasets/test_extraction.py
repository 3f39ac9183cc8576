"""safe_extract_zip: every hostile or broken archive is refused and leaves nothing behind."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.datasets import ExtractionLimits, is_junk_name, safe_extract_zip
from core.errors import AlreadyExistsError, InvalidInputError

_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def _patch_headers(path: Path, *, central: tuple[int, str, int], local: tuple[int, str, int]) -> None:
    """Overwrites one field (offset, struct format, value) of every central and local header."""
    data = bytearray(path.read_bytes())
    for signature, (offset, fmt, value) in ((_CENTRAL, central), (_LOCAL, local)):
        start = data.find(signature)
        while start != -1:
            struct.pack_into(fmt, data, start + offset, value)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Destination parent; after a failure it must be empty."""
    return tmp_path / "out"


def _assert_nothing_left(out: Path, tmp_path: Path) -> None:
    assert not (out / "data").exists()
    assert not out.exists() or list(out.iterdir()) == []
    assert not list(tmp_path.rglob("evil*"))


def test_extracts_and_finds_nested_root(tmp_path: Path, out: Path) -> None:
    archive = _zip(
        tmp_path / "nested.zip",
        {
            "dogs/train/a/1.png": png_bytes(),
            "dogs/valid/a/2.png": png_bytes(),
            "dogs/": b"",
            "__MACOSX/dogs/._1.png": b"junk",
            "dogs/.DS_Store": b"junk",
            "dogs/train/a/._1.png": b"junk",
        },
    )
    fractions: list[float] = []
    root = safe_extract_zip(archive, out / "data", progress=fractions.append)
    assert root == out / "data" / "dogs"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "train/a/1.png",
        "valid/a/2.png",
    ]
    assert not (out / "data" / "__MACOSX").exists()
    assert fractions[-1] == 1.0
    assert [p.name for p in out.iterdir()] == ["data"]  # no temporary folder left


def test_flat_archive_returns_dest(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "flat.zip", {"train/a/1.png": png_bytes(), "./valid/a/1.png": png_bytes()})
    assert safe_extract_zip(archive, out / "data") == out / "data"
    assert (out / "data" / "valid" / "a" / "1.png").read_bytes() == png_bytes()


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("../evil.txt", "outside"),
        ("train/../../evil.txt", "outside"),
        ("/tmp/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("..\\evil.txt", "backslash"),
    ],
)
def test_refuses_zip_slip(tmp_path: Path, out: Path, member: str, reason: str) -> None:
    archive = _zip(tmp_path / "slip.zip", {"train/a/1.png": png_bytes(), member: b"owned"})
    with pytest.raises(InvalidInputError, match=reason) as caught:
        safe_extract_zip(archive, out / "data")
    assert repr(member) in str(caught.value)
    _assert_nothing_left(out, tmp_path)


def test_refuses_symlink_member(tmp_path: Path, out: Path) -> None:
    info = zipfile.ZipInfo("train/a/link.png")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr("train/a/1.png", png_bytes())
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidInputError, match=r"'train/a/link.png' is a symbolic link"):
        safe_extract_zip(tmp_path / "link.zip", out / "data")
    _assert_nothing_left(out, tmp_path)


def test_refuses_encrypted_member(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "secret.zip", {"train/a/1.png": png_bytes()})
    _patch_headers(archive, central=(8, "<H", 0x1), local=(6, "<H", 0x1))
    with pytest.raises(InvalidInputError, match="encrypted"):
        safe_extract_zip(archive, out / "data")
    _assert_nothing_left(out, tmp_path)


def test_refuses_zip_bomb_member(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"train/a/zeros.png": bytes(50 * 1024 * 1024)})
    assert archive.stat().st_size < 1024 * 1024
    with pytest.raises(InvalidInputError, match=r"'train/a/zeros.png' has a suspicious compression ratio"):
        safe_extract_zip(archive, out / "data")
    _assert_nothing_left(out, tmp_path)


def test_refuses_archive_whose_overall_ratio_is_suspicious(tmp_path: Path, out: Path) -> None:
    members = {f"train/a/{i}.png": bytes(900_000) for i in range(4)}  # each under the ratio floor
    archive = _zip(tmp_path / "spread.zip", members)
    with pytest.raises(InvalidInputError, match="suspicious overall compression ratio"):
        safe_extract_zip(archive, out / "data")
    _assert_nothing_left(out, tmp_path)


def test_lying_size_header_cannot_bypass_limits(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "liar.zip", {"train/a/big.png": bytes(2_000_000)})
    _patch_headers(archive, central=(24, "<I", 1_000), local=(22, "<I", 1_000))
    with zipfile.ZipFile(archive) as check:
        assert check.getinfo("train/a/big.png").file_size == 1_000
    with pytest.raises(InvalidInputError, match=r"'train/a/big.png'"):
        safe_extract_zip(archive, out / "data", ExtractionLimits(max_member_bytes=10_000))
    _assert_nothing_left(out, tmp_path)


def test_refuses_too_many_files(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"train/a/{i}.png": png_bytes() for i in range(4)})
    with pytest.raises(InvalidInputError, match="more than 3 files"):
        safe_extract_zip(archive, out / "data", ExtractionLimits(max_files=3))
    _assert_nothing_left(out, tmp_path)


def test_refuses_too_many_bytes(tmp_path: Path, out: Path) -> None:
    members = {"train/a/1.bin": os.urandom(600), "train/a/2.bin": os.urandom(600)}
    archive = _zip(tmp_path / "big.zip", members)
    with pytest.raises(InvalidInputError, match="1,200 bytes uncompressed, over the limit of 1,000"):
        safe_extract_zip(archive, out / "data", ExtractionLimits(max_total_bytes=1_000))
    with pytest.raises(InvalidInputError, match=r"'train/a/1.bin' is 600 bytes"):
        safe_extract_zip(archive, out / "data", ExtractionLimits(max_member_bytes=500))
    _assert_nothing_left(out, tmp_path)


@pytest.mark.parametrize("content", [png_bytes(), b"just some text\n", b""])
def test_refuses_non_zip(tmp_path: Path, out: Path, content: bytes) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=r"photo.png is not a zip archive"):
        safe_extract_zip(path, out / "data")
    assert not out.exists()


def test_refuses_corrupt_member(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "corrupt.zip", {"train/a/1.txt": b"hello " * 5_000})
    data = bytearray(archive.read_bytes())
    start = data.find(_LOCAL) + 30 + len("train/a/1.txt")
    data[start + 5 : start + 40] = bytes(35)
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match=r"'train/a/1.txt' is corrupt"):
        safe_extract_zip(archive, out / "data")
    _assert_nothing_left(out, tmp_path)


@pytest.mark.parametrize("members", [{}, {"__MACOSX/._x": b"junk", "empty/": b""}])
def test_refuses_empty_archive(tmp_path: Path, out: Path, members: dict[str, bytes]) -> None:
    archive = _zip(tmp_path / "empty.zip", members)
    with pytest.raises(InvalidInputError, match=r"empty.zip is empty"):
        safe_extract_zip(archive, out / "data")
    assert not out.exists()


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"train/a": b"file", "train/a/1.png": b"x"}, "both a file and a folder"),
        ({"train/1.png": b"x", "train//1.png": b"y"}, "appears twice"),
    ],
)
def test_refuses_conflicting_members(tmp_path: Path, out: Path, members: dict[str, bytes], reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        safe_extract_zip(_zip(tmp_path / "c.zip", members), out / "data")
    assert not out.exists()


def test_refuses_existing_destination(tmp_path: Path, out: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {"train/a/1.png": png_bytes()})
    (out / "data").mkdir(parents=True)
    with pytest.raises(AlreadyExistsError):
        safe_extract_zip(archive, out / "data")
    assert list((out / "data").iterdir()) == []


@pytest.mark.parametrize("field", ["max_total_bytes", "max_files", "max_ratio", "max_member_bytes"])
def test_limits_are_validated(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExtractionLimits(**{field: 0})


@pytest.mark.parametrize(
    ("name", "junk"),
    [("__MACOSX/a/b.png", True), ("a/.DS_Store", True), ("a/._b.png", True), ("a/b.png", False), ("", False)],
)
def test_junk_names(name: str, junk: bool) -> None:
    assert is_junk_name(name) is junk

