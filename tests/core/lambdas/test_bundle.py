"""The deployment zip: what goes in, nothing else, the same bytes on every build."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.errors import InvalidInputError
from core.lambdas.bundle import LAMBDA_DIR, build_package


def test_the_package_holds_the_function_and_no_caches(tmp_path: Path) -> None:
    source = tmp_path / "fn"
    (source / "__pycache__").mkdir(parents=True)
    (source / "lambda_function.py").write_text("def lambda_handler(event, context):\n    return event\n")
    (source / "helpers.py").write_text("X = 1\n")
    (source / "__pycache__" / "lambda_function.cpython-312.pyc").write_bytes(b"\0")
    package = build_package(source)
    assert package.files == ("helpers.py", "lambda_function.py")
    with zipfile.ZipFile(io.BytesIO(package.data)) as archive:
        assert archive.namelist() == ["helpers.py", "lambda_function.py"]
        assert archive.read("lambda_function.py").startswith(b"def lambda_handler")
        assert all((info.external_attr >> 16) & 0o444 == 0o444 for info in archive.infolist())


def test_builds_are_byte_for_byte_identical() -> None:
    first, second = build_package(), build_package()
    assert first.data == second.data and first.sha256 == second.sha256
    assert "lambda_function.py" in first.files and (LAMBDA_DIR / "lambda_function.py").is_file()


def test_a_folder_without_the_handler_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no lambda_function.py"):
        build_package(tmp_path)
