"""A full disk (ENOSPC) at each place the console writes: a dropped zip, its extraction, the
dataset upload to the local store, the job store, a new job's folder, the model archive and a
checkpoint. The disk is never really filled: the write is patched to fail as a full disk
does, half-way through or when the file is closed. Each error must say so plainly, and
nothing half-written may stay behind."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from core.backend import get_backend
from core.catalog import register_dataset
from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR, Settings
from core.datasets import ZipUpload, extraction, prepare_dataset, safe_extract_zip
from core.entities import DatasetRecord, TrainingJob
from core.errors import BackendError
from core.jobstore import JobStore
from core.storage import _local as local_storage
from core.training import LocalJobRunner, TrainingJobSpec
from core.training._supervisor import RUNTIME_FILE, Supervisor
from core.training.layout import create_job_folder
from core.types import JobStatus

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, NO_SPACE)


class FullDiskFile:
    """A real file that runs out of space: a write stores half its bytes and fails, or the
    close (where buffered bytes reach the disk) fails."""

    def __init__(self, path: Path | str, mode: str, fail_on: str) -> None:
        self._file = builtins.open(path, mode)
        self._fail_on = fail_on

    def write(self, data: bytes) -> int:
        if self._fail_on == "write":
            self._file.write(data[: len(data) // 2])
            raise disk_full()
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()
        if self._fail_on == "close":
            raise disk_full()

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "valid"):
            for cls in ("a", "b"):
                archive.writestr(f"{split}/{cls}/1.png", png_bytes())
    return path


def image_folder(root: Path) -> Path:
    for split in ("train", "valid"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            (root / split / cls / "1.png").write_bytes(png_bytes())
    return root


def files_below(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


def job_store_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new SQLite connection may not grow the database: SQLite's own 'disk is full'."""
    real_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)


# --- uploads and datasets ----------------------------------------------------------------------


def test_disk_full_while_staging_a_dropped_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = dataset_zip(tmp_path / "dogs.zip").read_bytes()
    staging = tmp_path / "staging"
    real_write_bytes = Path.write_bytes

    def write_bytes(path: Path, content: bytes) -> int:  # the upload is staged with Path.write_bytes
        if staging in path.parents:
            real_write_bytes(path, content[: len(content) // 2])
            raise disk_full()
        return real_write_bytes(path, content)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(BackendError, match=f"^could not stage the upload: {NO_SPACE}$"):
        prepare_dataset(ZipUpload("dogs.zip", data), staging)
    assert files_below(staging) == []


@pytest.mark.parametrize("fail_on", ["write", "close"])
def test_disk_full_while_extracting_a_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_on: str) -> None:
    archive = dataset_zip(tmp_path / "dogs.zip")
    opened: list[str] = []

    def open_(path: Path, mode: str) -> Any:  # the second member runs out of space
        opened.append(str(path))
        return FullDiskFile(path, mode, fail_on if len(opened) == 2 else "never")

    monkeypatch.setattr(extraction, "open", open_, raising=False)
    with pytest.raises(BackendError, match=f"^could not write 'train/b/1.png' from dogs.zip: {NO_SPACE}$"):
        safe_extract_zip(archive, tmp_path / "out" / "data")
    assert len(opened) == 2
    assert files_below(tmp_path / "out") == []  # neither the half file nor the first member is left


def test_disk_full_while_uploading_a_dataset_to_the_local_store(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend(Settings(workspace=tmp_path / "ws"))
    root = image_folder(tmp_path / "ds")
    opened: list[str] = []

    def open_(path: Path, mode: str) -> Any:  # the third file of the upload (valid/a/1.png) runs out of space
        if "w" not in mode:
            return builtins.open(path, mode)
        opened.append(str(path))
        return FullDiskFile(path, mode, "write" if len(opened) == 3 else "never")

    monkeypatch.setattr(local_storage, "open", open_, raising=False)
    with pytest.raises(BackendError, match=f"^could not store datasets/dogs/valid/a/1.png: {NO_SPACE}$"):
        register_dataset(backend, root, name="dogs", source="folder", report={})
    assert backend.storage.list() == []
    storage_root = tmp_path / "ws" / "storage"
    assert [p for p in storage_root.rglob("*") if p.is_file()] == []  # no .part- file, no object
    assert not (storage_root / "datasets" / "dogs").exists()
    assert backend.store.list_datasets() == []


def test_job_store_full_while_recording_a_dataset_removes_its_upload(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend(Settings(workspace=tmp_path / "ws"))
    assert backend.store.list_datasets() == []  # the store is open before the disk fills, as in a running app
    root = image_folder(tmp_path / "ds")
    job_store_full(monkeypatch)
    with pytest.raises(BackendError, match=r"^job store error: database or disk is full$"):
        register_dataset(backend, root, name="dogs", source="folder", report={"notes": "x" * 100_000})
    monkeypatch.undo()
    assert backend.storage.list() == []
    assert backend.store.list_datasets() == []
    backend.store.put_dataset(DatasetRecord("dogs", "file:///d", "folder", time.time()))  # usable again
    assert [d.name for d in backend.store.list_datasets()] == ["dogs"]


# --- jobs --------------------------------------------------------------------------------------


@pytest.fixture
def runner(tmp_path: Path) -> LocalJobRunner:
    return LocalJobRunner(JobStore(tmp_path / "ws" / "console.db"), tmp_path / "ws" / "jobs", Path(sys.executable))


def job_spec(tmp_path: Path, **hyperparameters: str) -> TrainingJobSpec:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text("print('never runs')\n")
    (tmp_path / "data" / "train").mkdir(parents=True, exist_ok=True)
    return TrainingJobSpec(name="full-disk-job", inputs={"training": (tmp_path / "data").as_uri()},
                           hyperparameters=hyperparameters, source_dir=source)


def test_disk_full_while_creating_a_job_folder(tmp_path: Path, runner: LocalJobRunner,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_text = Path.write_text

    def write_text(path: Path, text: str, *args: Any, **kwargs: Any) -> int:
        if runner.jobs_root in path.parents and path.name == "hyperparameters.json":
            real_write_text(path, text[: len(text) // 2])
            raise disk_full()
        return real_write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(BackendError, match=f"could not create the job folder .*full-disk-job: {NO_SPACE}$"):
        runner.start(job_spec(tmp_path))
    assert files_below(runner.jobs_root) == []
    assert runner.store.list_jobs() == []


def test_job_store_full_while_recording_a_new_job(tmp_path: Path, runner: LocalJobRunner,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = job_spec(tmp_path, notes="x" * 50_000)  # a record that needs a new database page
    job_store_full(monkeypatch)
    with pytest.raises(BackendError, match=r"^job store error: database or disk is full$"):
        runner.start(spec)
    monkeypatch.undo()
    assert files_below(runner.jobs_root) == []
    assert runner.store.list_jobs() == []


def test_disk_full_while_packing_the_model_fails_the_job_and_leaves_no_partial_archive(
    tmp_path: Path, runner: LocalJobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = job_spec(tmp_path)
    layout = create_job_folder(spec, runner.jobs_root / spec.name)
    (layout.root / RUNTIME_FILE).write_text(json.dumps({"database": str(runner.store.path),
                                                        "job_python": sys.executable}))
    runner.store.insert_job(TrainingJob(name=spec.name, status=JobStatus.IN_PROGRESS, backend="local",
                                        created_at=time.time()), job_dir=layout.root)
    (layout.model_dir / "model.pth").write_bytes(os.urandom(4096))
    real_addfile = tarfile.TarFile.addfile

    def addfile(archive: tarfile.TarFile, info: tarfile.TarInfo, fileobj: Any = None, **kwargs: Any) -> None:
        real_addfile(archive, info, fileobj)  # the model's bytes go into the archive, then the disk is full
        raise disk_full()

    monkeypatch.setattr(tarfile.TarFile, "addfile", addfile)
    Supervisor(layout.root)._record_outcome()  # every process exited 0
    job = runner.store.get_job(spec.name)
    assert job.status is JobStatus.FAILED
    assert job.failure_reason == f"InternalServerError: could not write model.tar.gz: {NO_SPACE}"
    assert job.model_uri is None
    assert sorted(p.name for p in layout.output_dir.iterdir()) == ["data", "failure"]  # no model.tar.gz(.part)


CHECKPOINT_CASE = """
import errno, json, os, sys, torch
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import checkpoints
path = Path(sys.argv[2]) / "checkpoint.pt"
checkpoints.atomic_torch_save({"epoch": 1, "weights": torch.ones(1000)}, path)
real_save = torch.save
def save(obj, handle):  # half a checkpoint reaches the disk, then it is full
    handle.write(b"x" * 5000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
checkpoints.torch.save = save
try:
    checkpoints.atomic_torch_save({"epoch": 2, "weights": torch.zeros(1000)}, path)
    error = None
except OSError as exc:
    error = [exc.errno, str(exc)]
kept = checkpoints.load_checkpoint(path, torch.device("cpu"))
print(json.dumps({"error": error, "epoch": kept["epoch"], "files": sorted(os.listdir(path.parent))}))
"""


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path: Path) -> None:
    result = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", CHECKPOINT_CASE, str(ENTRYPOINTS_DIR), str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["error"] == [errno.ENOSPC, f"[Errno {errno.ENOSPC}] {NO_SPACE}"]
    assert outcome["epoch"] == 1  # the last whole checkpoint is still there ...
    assert outcome["files"] == ["checkpoint.pt"]  # ... and no temporary half of the new one

