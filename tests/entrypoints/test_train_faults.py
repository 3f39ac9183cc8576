"""entrypoints/train.py when things go wrong: unreadable image files, a killed DataLoader worker,
an exception in the loop or in a worker. Bad files below ``--max-bad-fraction`` are skipped and
reported; any fatal error ends the process with a non-zero code in seconds (a job that printed
its traceback and then hung in multiprocessing's exit handler stayed InProgress for minutes).

The exit-time bounds are generous on purpose: they check "does not hang", not speed. Measured
times are printed (``pytest -s``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from tests.entrypoints.test_train import EPOCH_LINE, TEST_LINE, TRAIN_PY, _job_env, _lines, _write_dataset

slow = pytest.mark.slow  # runs train.py in the job environment, with a real model

FAULT_CASES = Path(__file__).with_name("fault_cases.py")
EXIT_BOUND_S = 60.0  # "does not hang" on a loaded machine; a few seconds is the normal case
FAST_ARGS = ("--batch-size", "4", "--image-size", "32", "--seed", "7", "--lr", "0.001")
BAD_FILES = {  # path -> what is in it
    "train/cross/not_an_image.jpg": b"this is a text file with an image extension\n",
    "train/circle/truncated.jpg": None,  # the first 400 bytes of a real JPEG
    "valid/square/empty.png": b"",
    "test/circle/cut.jpg": None,
}


def _write_flawed(root: Path) -> Path:
    _write_dataset(root, {"train": 10, "valid": 3, "test": 3})
    jpeg = (root / "train" / "circle" / "001.jpg").read_bytes()
    for name, content in BAD_FILES.items():
        (root / name).write_bytes(jpeg[:400] if content is None else content)
    return root


def _env(tmp: Path, data_dir: Path) -> dict[str, str]:
    return {**_job_env(tmp, data_dir), "SM_OUTPUT_DIR": str(tmp / "output")}


@pytest.fixture(scope="module")
def flawed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_flawed(tmp_path_factory.mktemp("flawed"))


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 training steps of 2 images per epoch: a worker killed at step 10 has work left."""
    return _write_dataset(tmp_path_factory.mktemp("larger"), {"train": 60, "valid": 3})


class Watched:
    """A job-env process whose merged output a thread reads line by line, noting when each came."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[tuple[float, str]] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._arrived:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._arrived.notify_all()
        with self._arrived:
            self._arrived.notify_all()

    def read_until(self, prefix: str, timeout: float = 240) -> float:
        """Waits for a line that starts with ``prefix``; returns when it came."""
        with self._arrived:
            found = self._arrived.wait_for(
                lambda: self._first(prefix) is not None or not self._reader.is_alive(), timeout=timeout
            )
            at = self._first(prefix)
        if at is None:
            self._kill()
            pytest.fail(f"no {prefix!r} line ({'timed out' if not found else 'exited'}):\n{self.output}")
        return at

    def wait(self, timeout: float) -> tuple[int, float]:
        """Waits for the exit; returns the code and when it came (the process is killed, and the test
        fails, when it is still running ``timeout`` s later)."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            pytest.fail(f"still running {timeout} s later:\n{self.output}")
        ended = time.monotonic()
        self._reader.join(timeout=30)
        return code, ended

    def _kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # its own session: the workers too
        self.process.wait()
        self._reader.join(timeout=30)

    def _first(self, prefix: str) -> float | None:
        return next((at for at, line in self.lines if line.startswith(prefix)), None)

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first(self, prefix: str) -> float:
        at = self._first(prefix)
        assert at is not None, f"no {prefix!r} line:\n{self.output}"
        return at


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


_UNITS = """
import pickle, sys, torch
sys.path.insert(0, sys.argv[1])
from multiprocessing.reduction import ForkingPickler
from torch.utils.data._utils.pin_memory import pin_memory
from imagedata import Batch, Unreadable, collate_readable
from unreadable import TooManyUnreadable, UnreadableImages, summary

bad = Unreadable("train/a/x.jpg", "OSError: image file is truncated")
batch = collate_readable([(torch.zeros(3, 4, 4), 1), bad, (torch.ones(3, 4, 4), 2)])
images, labels = batch  # unpacks like the default collate's batches
assert images.shape == (2, 3, 4, 4) and labels.tolist() == [1, 2] and batch.skipped == (bad,)
sent = pickle.loads(bytes(ForkingPickler.dumps(batch)))  # as a worker sends it
assert type(sent) is Batch and sent.skipped == (bad,) and sent[1].tolist() == [1, 2]
torch.Tensor.pin_memory = lambda self, *args: self.clone()  # no CUDA here: pinning is a copy
pinned = pin_memory(batch)  # what the pin-memory thread does with it
assert type(pinned) is Batch and pinned.skipped == (bad,)
empty = collate_readable([bad])
assert empty[1].numel() == 0 and empty.skipped == (bad,)

caps = [(100, 0.01), (99, 0.01), (10, 0.1), (31, 0.01), (5, 1.0)]
assert [UnreadableImages("s", n, f).limit for n, f in caps] == [1, 0, 1, 0, 5]
tally = UnreadableImages("train", 100, 0.01)
tally.add([bad, bad])
tally.add([bad])  # the same file in every epoch counts once
assert tally.count == 1 and summary([tally]) == "train=1/100"
try:
    tally.add([Unreadable("train/b/y.jpg", "UnidentifiedImageError: cannot identify image file")])
except TooManyUnreadable as exc:
    print(exc)
else:
    raise AssertionError("no TooManyUnreadable")
"""


def test_batches_keep_their_unreadable_files_through_workers_and_pinning() -> None:
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-c", _UNITS, str(ENTRYPOINTS_DIR)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == (
        "too many unreadable images in train/: 2 of 100 files (2.0%) is more than --max-bad-fraction 0.01 "
        "allows (at most 1); train/a/x.jpg, train/b/y.jpg: fix or remove them, or raise --max-bad-fraction"
    )


def _failure(tmp: Path) -> str:
    return (tmp / "output" / "failure").read_text()


@slow
@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_files_below_the_cap_are_skipped_logged_once_and_counted(
    tmp_path: Path, flawed: Path, workers: int
) -> None:
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *FAST_ARGS, "--epochs", "2", "--num-workers", str(workers),
         "--max-bad-fraction", "0.1"],
        env=_env(tmp_path, flawed), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    skipped = [line for line in lines if line.startswith("skipped unreadable image ")]
    assert sorted(line.split()[3].rstrip(":") for line in skipped) == sorted(BAD_FILES), skipped
    reasons = {line.split()[3].rstrip(":"): line.split(": ", 1)[1] for line in skipped}
    assert reasons["train/cross/not_an_image.jpg"].startswith("UnidentifiedImageError: cannot identify image file")
    assert reasons["train/circle/truncated.jpg"].startswith("OSError: ")
    assert all(str(flawed) not in line for line in skipped)  # paths relative to the data folder

    # Two epochs, one line each, and after each what was unreadable so far.
    epochs = [i for i, line in enumerate(lines) if EPOCH_LINE.match(line)]
    assert len(epochs) == 2
    assert [lines[i + 1] for i in epochs] == ["unreadable images train=2/32 valid=1/10 test=0/10"] * 2
    assert sum(bool(TEST_LINE.match(line)) for line in lines) == 1
    assert lines[-1] == "unreadable images train=2/32 valid=1/10 test=1/10"
    metrics = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    assert metrics["unreadable_images"] == {"train": 2, "valid": 1, "test": 1}
    assert metrics["epochs"] == 2 and (tmp_path / "model" / "model.pth").is_file()
    assert not (tmp_path / "output" / "failure").exists()


@slow
def test_unreadable_files_above_the_cap_fail_with_the_reason(tmp_path: Path, flawed: Path) -> None:
    # The default cap (1%) allows none of 32; two DataLoader workers are running when it trips.
    watched = Watched(
        [str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *FAST_ARGS, "--epochs", "2", "--num-workers", "2"],
        _env(tmp_path, flawed),
    )
    code, ended = watched.wait(timeout=300)
    assert code == 1, watched.output
    last = watched.output.splitlines()[-1]
    assert last.startswith("ERROR: too many unreadable images in train/: 1 of 32 files (3.1%) is more than "
                           "--max-bad-fraction 0.01 allows (at most 0); train/"), last  # fmt: skip
    assert last.endswith(": fix or remove them, or raise --max-bad-fraction")
    assert _failure(tmp_path) == last.removeprefix("ERROR: ") + "\n"
    print(f"\nexit {ended - watched.first('ERROR: '):.2f} s after the ERROR line")
    assert not (tmp_path / "model" / "model.pth").exists()


@slow
def test_a_killed_dataloader_worker_ends_the_job_promptly(tmp_path: Path, larger: Path) -> None:
    watched = Watched(
        [str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *FAST_ARGS, "--batch-size", "2", "--epochs", "3",
         "--num-workers", "2"],
        _env(tmp_path, larger),
    )  # fmt: skip
    watched.read_until("progress epoch=1 batch=10/")
    workers = _children(watched.process.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    killed_at = time.monotonic()
    code, ended = watched.wait(timeout=EXIT_BOUND_S)
    print(f"\nexit {ended - killed_at:.2f} s after SIGKILL of a worker")
    assert code == 1, watched.output
    # Depending on what the main process was doing, torch reports "DataLoader worker (pid N) is
    # killed by signal", "... exited unexpectedly", or a broken connection: the pid is named anyway.
    last = watched.output.splitlines()[-1]
    assert last.startswith("ERROR: ") and str(workers[0]) in last, last
    assert _failure(tmp_path) == last.removeprefix("ERROR: ") + "\n"
    assert not _running(workers[1])  # the other worker did not outlive the job


@slow
@pytest.mark.parametrize("where", ["loop", "worker"])
def test_an_exception_with_workers_alive_ends_the_job_promptly(tmp_path: Path, larger: Path, where: str) -> None:
    watched = Watched(
        [str(DEFAULT_JOB_PYTHON), str(FAULT_CASES), where, "5", "--", *FAST_ARGS,
         "--batch-size", "2", "--epochs", "3", "--num-workers", "2"],
        _env(tmp_path, larger),
    )  # fmt: skip
    traceback_at = watched.read_until("Traceback (most recent call last)")
    code, ended = watched.wait(timeout=EXIT_BOUND_S)
    print(f"\nexit {ended - traceback_at:.2f} s after the traceback began ({where})")
    assert code == 1, watched.output
    last = watched.output.splitlines()[-1]
    expected = "optimizer step 5" if where == "loop" else "sample 5 of a DataLoader worker"
    assert last.startswith("ERROR: RuntimeError: ") and expected in last, last
    assert expected in _failure(tmp_path)
