"""entrypoints/train.py as several processes of one job: SageMaker's hosts (``SM_HOSTS``, one process
each, as the local backend runs an instance count above 1) and torchrun's ranks (SageMaker's
``torch_distributed`` launcher), with the gloo backend on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON
from tests.entrypoints.test_train import EPOCH_LINE, TRAIN_PY, _job_env, _lines, _write_dataset

# Four images a step, so that each of two processes trains on two (batch norm needs two).
ARGS = ("--epochs", "2", "--batch-size", "4", "--image-size", "32", "--num-workers", "0", "--seed", "7",
        "--lr", "0.001", "--debug", "false")  # fmt: skip
HOSTS = ["algo-1", "algo-2"]
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("shapes"), {"train": 10, "valid": 3, "test": 3})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_hosts(tmp: Path, data_dirs: list[Path], *args: str, hosts: list[str] = HOSTS,
                 port: int | None = None) -> list[subprocess.Popen[str]]:
    """One train.py process per host, as SageMaker starts the script on each instance of a job."""
    port = port or _free_port()
    processes = []
    for host, data_dir in zip(hosts, data_dirs, strict=True):
        env = _job_env(tmp, data_dir)
        env.update(SM_HOSTS=json.dumps(HOSTS), SM_CURRENT_HOST=host, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        processes.append(subprocess.Popen([str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *args], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes


def _finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    return [(p.wait(timeout=TIMEOUT_S), p.stdout.read() if p.stdout else "") for p in processes]


def test_two_hosts_train_one_job_and_the_first_alone_writes(tmp_path: Path, dataset: Path) -> None:
    (code0, out0), (code1, out1) = _finish(_start_hosts(tmp_path, [dataset, dataset], *ARGS))
    assert (code0, code1) == (0, 0), out0 + out1
    lines = _lines(out0)
    # the steps of one process: each step is one batch of 4, split in two
    assert ("start model=efficientnet_lite0 epochs=2 steps_per_epoch=8 batch_size=4 device=cpu threads=1 processes=2 "
            "precision=float32 channels_last=False compiled=False") in lines
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 2
    assert _lines(out1) == ["rank 1 of 2: rank 0 logs the metrics and writes the model, checkpoints, Debugger and "
                            "Profiler data"]  # no metric line: the job's metrics are counted once
    metrics = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    for split, images in (("valid", 9), ("test", 9)):  # accuracies over the whole split, not one share of it
        correct = metrics[f"{split}_acc"] * images
        assert correct == pytest.approx(round(correct)), (split, metrics[f"{split}_acc"])
    assert (tmp_path / "model" / "model.pth").is_file()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint.pt"]


def test_a_stop_on_one_host_stops_both_at_the_same_step_and_the_rerun_resumes(tmp_path: Path,
                                                                              dataset: Path) -> None:
    first, second = _start_hosts(tmp_path, [dataset, dataset], *ARGS)
    assert first.stdout is not None
    head = []
    for line in first.stdout:  # both ranks have met once the first prints this
        head.append(line)
        if line.startswith("start model="):
            break
    second.send_signal(signal.SIGTERM)  # the second alone: the first learns it at the next step
    (code0, rest0), (code1, out1) = _finish([first, second])
    out0 = "".join(head) + rest0
    assert (code0, code1) == (143, 143), out0 + out1
    assert _lines(out0)[-1] == "stopped by SIGTERM"
    assert not (tmp_path / "model" / "model.pth").exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint.pt"]

    (code0, out0), (code1, out1) = _finish(_start_hosts(tmp_path, [dataset, dataset], *ARGS))
    assert (code0, code1) == (0, 0), out0 + out1
    assert any(line.startswith("resumed from checkpoint epoch=") for line in _lines(out0))
    assert (tmp_path / "model" / "model.pth").is_file()


def test_torchrun_ranks_train_one_job(tmp_path: Path, dataset: Path) -> None:
    """SageMaker's torch_distributed launcher on a GPU instance: torchrun, one process per GPU."""
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(TRAIN_PY), *ARGS],
        env=_job_env(tmp_path, dataset), capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert any(line.startswith("start model=") and " processes=2 " in line for line in lines)
    assert "rank 1 of 2: rank 0 logs the metrics and writes the model, checkpoints, Debugger and Profiler data" \
        in lines
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 2


def test_a_host_that_fails_ends_the_other_instead_of_leaving_it_waiting(tmp_path: Path, dataset: Path) -> None:
    (code0, out0), (code1, out1) = _finish(_start_hosts(tmp_path, [dataset, tmp_path / "missing"], *ARGS))
    assert code1 == 1 and _lines(out1)[-1] == f"ERROR: data folder {tmp_path / 'missing'} does not exist"
    assert code0 == 1 and _lines(out0)[-1].startswith("ERROR: "), out0  # its peer is gone: it cannot go on
    assert not (tmp_path / "model" / "model.pth").exists()


def test_a_host_missing_from_the_host_list_fails_clearly(tmp_path: Path, dataset: Path) -> None:
    (code, out), = _finish(_start_hosts(tmp_path, [dataset], *ARGS, hosts=["algo-9"]))
    assert code == 1
    assert _lines(out)[-1] == "ERROR: SM_CURRENT_HOST 'algo-9' is not one of SM_HOSTS ['algo-1', 'algo-2']"
