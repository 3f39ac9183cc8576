"""entrypoints/ec2_train.py as an EC2 instance runs it: job-env subprocesses, a local IMDSv2
server serving the interruption notice, checkpoints mirrored to an "S3" folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from core.spot.metadata import LocalMetadataServer
from tests.entrypoints.test_train import _job_env, _metric_lines, _write_dataset

EC2_TRAIN = ENTRYPOINTS_DIR / "ec2_train.py"
CASES = Path(__file__).with_name("spot_cases.py")
ARGS = (
    "--epochs", "2", "--batch-size", "2", "--max-steps-per-epoch", "6", "--image-size", "32",
    "--num-workers", "0", "--seed", "11", "--lr", "0.001", "--pretrained", "True", "--notice-poll-s", "0.1",
)  # fmt: skip
HANG_GUARD_S = 300


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("shapes"), {"train": 8, "valid": 3, "test": 3})


def _env(tmp: Path, data: Path) -> dict[str, str]:
    env = _job_env(tmp, data)
    env.update(SM_OUTPUT_DIR=str(tmp / "output"), SMC_SCRATCH_DIR=str(tmp / "scratch"))
    return env


def _instance(tmp: Path, data: Path, imds: LocalMetadataServer, *extra: str,
              interrupt_on: str | None = None) -> tuple[int, list[str]]:
    """One "instance": run the script; serve the notice when a line starts with interrupt_on."""
    process = subprocess.Popen(
        [str(DEFAULT_JOB_PYTHON), str(EC2_TRAIN), *ARGS, "--metadata-url", imds.url,
         "--checkpoint-uri", str(tmp / "s3" / "checkpoints"), "--output-uri", (tmp / "s3" / "output").as_uri(),
         "--checkpoint-dir", str(tmp / f"disk-{time.monotonic_ns()}"), *extra],
        env=_env(tmp, data), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if interrupt_on and line.startswith(interrupt_on) and imds.notice is None:
            imds.serve_notice(at=time.time() + 120)
    return process.wait(timeout=HANG_GUARD_S), lines


def _case(*args: str) -> dict[str, Any]:
    result = subprocess.run([str(DEFAULT_JOB_PYTHON), str(CASES), *args], capture_output=True, text=True,
                            timeout=HANG_GUARD_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("uninterrupted")
    with LocalMetadataServer() as imds:
        code, lines = _instance(tmp, dataset, imds)
    assert code == 0, "\n".join(lines)
    return tmp, lines


def test_uninterrupted_run_publishes_a_sagemaker_layout_model(uninterrupted: tuple[Path, list[str]]) -> None:
    tmp, lines = uninterrupted
    assert "spot: start step=0 steps_per_epoch=6 epochs=2" in lines
    with tarfile.open(tmp / "s3" / "output" / "model.tar.gz") as archive:
        assert archive.getnames() == ["model.pth"]  # the root of SM_MODEL_DIR, as SageMaker packs it
    assert (tmp / "output" / "model.tar.gz").is_file()
    metrics = json.loads((tmp / "s3" / "output" / "data" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["test_acc"] <= 1
    events = [json.loads(line) for line in (tmp / "s3" / "output" / "data" / "spot-events.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in events] == ["start", "checkpoint", "checkpoint", "done"]
    assert events[0]["instance"] == "i-local-0"  # read from the metadata service
    assert (tmp / "s3" / "checkpoints" / "checkpoint.pt").is_file()
    # Debugger and Profiler data, as every other run writes them, are published with the model
    assert (tmp / "s3" / "output" / "debug-output" / "capture.json").is_file()
    assert any((tmp / "s3" / "output" / "profiler-output").rglob("*.json"))


def test_interrupted_twice_resumes_and_ends_bit_identical(
    tmp_path: Path, dataset: Path, uninterrupted: tuple[Path, list[str]]
) -> None:
    """Two notices (one mid-epoch-1, one mid-epoch-2); every new instance has an empty disk and
    restores the mirrored checkpoint; the final weights equal the uninterrupted run's bit for bit."""
    transcript: list[str] = []
    with LocalMetadataServer() as imds:
        code, lines = _instance(tmp_path, dataset, imds, interrupt_on="spot: start")
        transcript += lines
        assert code == 143, "\n".join(lines)
        assert any(line.startswith("spot: interruption notice action=terminate") for line in lines)
        first = next(line for line in lines if line.startswith("spot: checkpoint"))
        assert first.endswith("reason=notice-or-sigterm")
        imds.new_instance("i-local-1")
        code, lines = _instance(tmp_path, dataset, imds, interrupt_on="spot: checkpoint epoch=1 batch=0")
        transcript += lines
        assert code == 143, "\n".join(lines)
        assert any(line.startswith("spot: restored the checkpoint from") for line in lines)
        imds.new_instance("i-local-2")
        code, lines = _instance(tmp_path, dataset, imds)
        transcript += lines
        assert code == 0, "\n".join(lines)
    resumes = [line for line in transcript if line.startswith("spot: resumed")]
    assert len(resumes) == 2
    assert _metric_lines("\n".join(transcript)) == _metric_lines("\n".join(uninterrupted[1]))
    same = _case("same-weights", str(tmp_path / "model" / "model.pth"), str(uninterrupted[0] / "model" / "model.pth"))
    assert same["identical"], same["differences"]
    events = [json.loads(line)["kind"]
              for line in (tmp_path / "s3" / "output" / "data" / "spot-events.jsonl").read_text().splitlines()]
    assert events.count("notice") == 2 and events.count("resume") == 2 and events[-1] == "done"


def test_resume_restores_a_bit_identical_state(tmp_path: Path, dataset: Path) -> None:
    with LocalMetadataServer() as imds:
        code, lines = _instance(tmp_path, dataset, imds, interrupt_on="progress")
    assert code in (0, 143), "\n".join(lines)
    with LocalMetadataServer() as imds:  # a mid-epoch checkpoint: the notice comes right after start
        code, lines = _instance(tmp_path / "mid", dataset, imds, interrupt_on="spot: start")
    assert code == 143
    checkpoint = tmp_path / "mid" / "s3" / "checkpoints" / "checkpoint.pt"
    state = _case("resume-state", str(checkpoint), "--", *ARGS, "--data-dir", str(dataset))
    assert state["identical"], state["differences"]
    assert state["epoch"] == 0 and state["batch"] >= 1
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "batch", "meter"} <= set(state["keys"])


def test_sigterm_checkpoints_and_exits_143(tmp_path: Path, dataset: Path) -> None:
    with LocalMetadataServer() as imds:
        process = subprocess.Popen(
            [str(DEFAULT_JOB_PYTHON), str(EC2_TRAIN), *ARGS, "--metadata-url", imds.url],
            env=_env(tmp_path, dataset), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("spot: start"):
                process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=HANG_GUARD_S) == 143, "".join(lines)
    assert any(line.startswith("spot: checkpoint") and "reason=notice-or-sigterm" in line for line in lines)
    assert (tmp_path / "checkpoints" / "checkpoint.pt").is_file()


def test_atomic_checkpoint_writes_survive_sigkill(tmp_path: Path) -> None:
    """SIGKILL a writer at arbitrary moments: the file is always a whole checkpoint, never
    older than the last reported save, and the next run clears the writer's leftovers."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for stop_after in (1, 2, 3, 5, 8):
        writer = subprocess.Popen([str(DEFAULT_JOB_PYTHON), str(CASES), "atomic-writer", str(folder)],
                                  stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        last = 0
        for line in writer.stdout:
            last = int(line)
            if last >= stop_after:
                os.kill(writer.pid, signal.SIGKILL)  # most likely in the middle of the next write
                break
        writer.wait(timeout=HANG_GUARD_S)
        check = subprocess.run(
            [str(DEFAULT_JOB_PYTHON), "-c",
             "import sys, json, torch; sys.path.insert(0, sys.argv[1]); from checkpoints import remove_stale_temps;"
             "from pathlib import Path; c = torch.load(sys.argv[2] + '/checkpoint.pt', weights_only=True);"
             "stale = remove_stale_temps(Path(sys.argv[2]));"
             "print(json.dumps({'k': c['k'], 'whole': bool((c['payload'] == c['k']).all()), 'stale': len(stale)}))",
             str(ENTRYPOINTS_DIR), str(folder)],
            capture_output=True, text=True, timeout=HANG_GUARD_S,
        )
        assert check.returncode == 0, check.stderr
        result = json.loads(check.stdout)
        assert result["whole"] and result["k"] >= last, (stop_after, result)
        assert not list(folder.glob(".checkpoint.pt.*.tmp"))


def test_bad_input_gets_a_clear_error(tmp_path: Path, dataset: Path) -> None:
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), str(EC2_TRAIN), *ARGS, "--data-uri", "ftp://example/data", "--watch-notice", "false"],
        env=_env(tmp_path, dataset), capture_output=True, text=True, timeout=HANG_GUARD_S,
    )
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == "ERROR: ftp://example/data: use a local folder or an s3:// URI, not ftp://"
