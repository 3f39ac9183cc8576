"""entrypoints/train.py run as a training job would run it: a job-env subprocess, SM_* paths."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from core.training.spec import DEFAULT_METRIC_DEFINITIONS

TRAIN_PY = ENTRYPOINTS_DIR / "train.py"
CLASSES = ("circle", "cross", "square")
# Small and fast, but every code path of a real run: pretrained weights, light augmentation,
# progress lines (10 steps), two epochs, a test split, and SageMaker's string hyperparameters.
RUN_ARGS = (
    "--epochs", "2", "--batch-size", "2", "--max-steps-per-epoch", "10", "--image-size", "32",
    "--num-workers", "0", "--seed", "7", "--lr", "0.001", "--pretrained", "True",
    "--_tuning_objective_metric", "validation:accuracy",
)  # fmt: skip
EPOCH_LINE = re.compile(
    r"^epoch=(\d+)/(\d+) train_loss=\d+\.\d{4} train_acc=\d\.\d{4} valid_loss=\d+\.\d{4} "
    r"valid_acc=\d\.\d{4} images_per_s=\d+\.\d epoch_time_s=\d+\.\d$"
)
TEST_LINE = re.compile(r"^test_loss=\d+\.\d{4} test_acc=\d\.\d{4}$")
TIMING = re.compile(r" (images_per_s|epoch_time_s)=\S+")


def _draw(kind: str, index: int) -> Image.Image:
    """A 16x16 shape, jittered per index; every third image grayscale (converted by the job)."""
    grey = index % 3 == 0
    image = Image.new("L" if grey else "RGB", (16, 16), 0 if grey else (20, 20, 60))
    draw = ImageDraw.Draw(image)
    fill = 255 if grey else ((200 + 5 * index) % 256, 120, 40)
    o = index % 3
    if kind == "circle":
        draw.ellipse((2 + o, 2, 12 + o, 12), fill=fill)
    elif kind == "cross":
        draw.line((2 + o, 2, 13, 13), fill=fill, width=2)
        draw.line((13 - o, 2, 2, 13), fill=fill, width=2)
    else:
        draw.rectangle((3, 3 + o, 12, 12), fill=fill)
    return image


def _write_dataset(root: Path, counts: dict[str, int]) -> Path:
    for split, count in counts.items():
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True)
            for i in range(count):
                _draw(kind, i).save(folder / f"{i:03d}.jpg", quality=95)
    return root


def _job_env(tmp: Path, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(
        SM_CHANNEL_TRAINING=str(data_dir),
        SM_MODEL_DIR=str(tmp / "model"),
        SM_OUTPUT_DATA_DIR=str(tmp / "output" / "data"),
        SM_CHECKPOINT_DIR=str(tmp / "checkpoints"),
        SM_NUM_CPUS="1",  # one intra-op thread: fast for these tiny steps, robust on a busy machine
        TORCH_HOME=str(tmp / "torch-home"),  # an empty hub cache: nothing cached, nothing fetched
        PYTHONUNBUFFERED="1",
    )
    return env


def _train(tmp: Path, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *args],
        env=_job_env(tmp, data_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.strip()]


def _metric_lines(stdout: str) -> list[str]:
    """Epoch and test lines without their timings (which differ between identical runs)."""
    return [TIMING.sub("", line) for line in _lines(stdout) if EPOCH_LINE.match(line) or TEST_LINE.match(line)]


def _reference_metrics(reference: tuple[Path, subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    return json.loads((reference[0] / "output" / "data" / "metrics.json").read_text())


_SUMMARISE = """
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from imagemodels import model_from_artifact
summaries = []
for path in sys.argv[2:]:
    obj = torch.load(path, weights_only=True)
    out = {"keys": sorted(obj)}
    for key in ("arch", "num_classes", "class_names", "image_size", "mean", "std", "epoch", "batch"):
        if key in obj:
            out[key] = obj[key]
    if "history" in obj:
        out["history_epochs"] = [h["epoch"] for h in obj["history"]]
    if "rng" in obj:
        out["rng"] = sorted(obj["rng"])
    if "state_dict" in obj:
        out["dtypes"] = sorted({str(t.dtype) for t in obj["state_dict"].values() if t.is_floating_point()})
        model = model_from_artifact(obj)
        out["logits_shape"] = list(model(torch.zeros(2, 3, obj["image_size"], obj["image_size"])).shape)
    summaries.append(out)
print(json.dumps(summaries))
"""


def _summarise(*paths: Path) -> list[dict[str, Any]]:
    """Load model.pth / checkpoint.pt files in the job env with weights_only=True and describe them."""
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-c", _SUMMARISE, str(ENTRYPOINTS_DIR), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


_MAIN_CASES = """
import contextlib, io, json, os, sys
sys.path.insert(0, sys.argv[1])
import train
results = []
for argv, env in json.loads(sys.argv[2]):
    os.environ.update(env)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = train.main(argv)
        except SystemExit as exc:
            code = exc.code
    checkpoint = os.path.join(os.environ["SM_CHECKPOINT_DIR"], "checkpoint.pt")
    trained = None
    if os.path.exists(checkpoint):
        trained = len(train.torch.load(checkpoint, weights_only=True)["optimizer"]["param_groups"][0]["params"])
    results.append({
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "hub_cache_created": os.path.exists(os.environ["TORCH_HOME"]),
        "optimized_tensors": trained,
    })
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("shapes"), {"train": 10, "valid": 3, "test": 3})


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One uninterrupted run; other tests compare against it."""
    tmp = tmp_path_factory.mktemp("reference")
    result = _train(tmp, dataset, *RUN_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp, result


@pytest.fixture(scope="module")
def saved(reference: tuple[Path, subprocess.CompletedProcess[str]]) -> dict[str, dict[str, Any]]:
    """The reference run's model.pth and checkpoint.pt, as loaded by the job env."""
    model, checkpoint = _summarise(reference[0] / "model" / "model.pth", reference[0] / "checkpoints" / "checkpoint.pt")
    return {"model": model, "checkpoint": checkpoint}


def test_run_prints_metric_lines_that_the_metric_definitions_scrape(
    reference: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = reference
    lines = _lines(result.stdout)
    epochs = [EPOCH_LINE.match(line) for line in lines if line.startswith("epoch=")]
    assert [(m.group(1), m.group(2)) for m in epochs if m] == [("1", "2"), ("2", "2")]
    assert len(epochs) == 2 and all(epochs)
    assert sum(bool(TEST_LINE.match(line)) for line in lines) == 1
    assert any(line.startswith("progress epoch=1 batch=10/10 loss=") for line in lines)
    assert ("start model=efficientnet_lite0 epochs=2 steps_per_epoch=10 batch_size=2 device=cpu threads=1 processes=1 "
            "precision=float32 channels_last=False compiled=False") in lines
    for definition in DEFAULT_METRIC_DEFINITIONS:
        values = [m.group(1) for line in lines if (m := re.search(definition.regex, line))]
        assert values, f"{definition.name} never printed"
        for value in values:
            float(value)
    scraped = [line for line in lines if any(re.search(d.regex, line) for d in DEFAULT_METRIC_DEFINITIONS)]
    assert all(EPOCH_LINE.match(line) or TEST_LINE.match(line) for line in scraped), scraped


def test_run_writes_a_self_contained_model_and_metrics(
    reference: tuple[Path, subprocess.CompletedProcess[str]], saved: dict[str, dict[str, Any]]
) -> None:
    tmp, _ = reference
    artifact = saved["model"]
    assert artifact["keys"] == sorted(["arch", "num_classes", "class_names", "image_size", "mean", "std", "state_dict"])
    assert artifact["arch"] == "efficientnet_lite0"
    assert artifact["class_names"] == list(CLASSES)
    assert artifact["num_classes"] == 3
    assert artifact["image_size"] == 32
    assert artifact["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert artifact["std"] == pytest.approx([0.229, 0.224, 0.225])
    assert artifact["logits_shape"] == [2, 3]

    metrics = json.loads((tmp / "output" / "data" / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    for key in ("train_loss", "train_acc", "valid_loss", "valid_acc", "best_valid_acc", "test_loss", "test_acc"):
        assert isinstance(metrics[key], float), key
    assert 0.0 <= metrics["test_acc"] <= 1.0


def test_checkpoint_after_the_last_epoch_holds_the_whole_state(
    reference: tuple[Path, subprocess.CompletedProcess[str]], saved: dict[str, dict[str, Any]]
) -> None:
    tmp, _ = reference
    assert [p.name for p in (tmp / "checkpoints").iterdir()] == ["checkpoint.pt"]  # no temp files left
    checkpoint = saved["checkpoint"]
    assert {"epoch", "batch", "arch", "class_names", "model", "optimizer", "scheduler", "best_valid_acc", "rng"} <= set(
        checkpoint["keys"]
    )
    assert checkpoint["epoch"] == 2 and checkpoint["batch"] == 0
    assert checkpoint["arch"] == "efficientnet_lite0"
    assert checkpoint["class_names"] == list(CLASSES)
    assert checkpoint["history_epochs"] == [1, 2]
    assert checkpoint["rng"] == ["cuda", "numpy", "python", "torch"]


def test_same_seed_gives_the_same_metrics(
    tmp_path: Path, dataset: Path, reference: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    result = _train(tmp_path, dataset, *RUN_ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _metric_lines(result.stdout) == _metric_lines(reference[1].stdout)
    assert len(_metric_lines(result.stdout)) == 3


def test_sigterm_writes_a_checkpoint_exits_143_and_the_rerun_resumes_exactly(
    tmp_path: Path, dataset: Path, reference: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    process = subprocess.Popen(
        [str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *RUN_ARGS],
        env=_job_env(tmp_path, dataset),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    head = []
    for line in process.stdout:  # the handler is installed before this line is printed
        head.append(line)
        if line.startswith("start model="):
            break
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.communicate(timeout=120)
    stdout = "".join(head) + rest
    assert process.returncode == 143, stdout + stderr
    assert _lines(stdout)[-1] == "stopped by SIGTERM"
    assert not (tmp_path / "model" / "model.pth").exists()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint.pt"]

    resumed = _train(tmp_path, dataset, *RUN_ARGS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    position = re.search(r"^resumed from checkpoint epoch=(\d+) batch=(\d+)$", resumed.stdout, re.MULTILINE)
    assert position, resumed.stdout
    assert (int(position[1]), int(position[2])) < (2, 0)  # stopped before the end
    # Model, optimizer, schedule, RNG and epoch sums all came back: the result is the same.
    before = [line for line in _metric_lines(stdout) if line.startswith("epoch=")]
    assert before + _metric_lines(resumed.stdout) == _metric_lines(reference[1].stdout)


def test_rerun_with_more_epochs_continues_from_the_checkpoint(
    tmp_path: Path, dataset: Path, reference: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    shutil.copytree(reference[0] / "checkpoints", tmp_path / "checkpoints")
    args = [*RUN_ARGS]
    args[args.index("--epochs") + 1] = "3"
    result = _train(tmp_path, dataset, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resumed from checkpoint epoch=2 batch=0" in result.stdout
    assert [line.split()[0] for line in _lines(result.stdout) if EPOCH_LINE.match(line)] == ["epoch=3/3"]
    metrics = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert metrics["history"][:2] == _reference_metrics(reference)["history"]


OPTIONS_CASE = [
    "--model", "resnet18", "--pretrained", "false", "--freeze-backbone", "1", "--optimizer", "sgd",
    "--augment", "heavy", "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--num-workers", "1",
]  # fmt: skip
FAILURES: dict[str, tuple[list[str], int, str]] = {
    # name: (extra argv, exit code, expected message: the last stdout line, or in stderr for argparse)
    "no train folder": ([], 1, "ERROR: no train/ folder in "),
    "empty valid split": ([], 1, "ERROR: valid/ holds no images"),
    "resnet18 without weights": (
        ["--model", "resnet18", "--pretrained", "true"],
        1,
        "ERROR: no pretrained weights for resnet18 on this machine: pass --weights-path or --pretrained false",
    ),
    "unknown argument": (["--learning-rate", "0.1"], 2, "unrecognized arguments: --learning-rate 0.1"),
    "bad boolean": (["--pretrained", "maybe"], 2, "argument --pretrained: expected true/false"),
}


@pytest.fixture(scope="module")
def main_calls(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> dict[str, dict[str, Any]]:
    """Each failure case, and one run with other options, through train.main() in one job-env
    process (each subprocess would cost a torch import)."""
    tmp = tmp_path_factory.mktemp("failures")
    data = {
        "no train folder": _write_dataset(tmp / "no-train", {"valid": 2}),
        "empty valid split": _write_dataset(tmp / "empty-valid", {"train": 2, "valid": 0}),
    }
    no_test = _write_dataset(tmp / "no-test", {"train": 4, "valid": 2})
    cases = []
    for name, (argv, _, _) in [*FAILURES.items(), ("options", (OPTIONS_CASE, 0, ""))]:
        env = _job_env(tmp / name.replace(" ", "-"), data.get(name, no_test if name == "options" else dataset))
        cases.append((argv, {k: v for k, v in env.items() if k.startswith("SM_") or k == "TORCH_HOME"}))
    result = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), "-c", _MAIN_CASES, str(ENTRYPOINTS_DIR), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return dict(zip([*FAILURES, "options"], json.loads(result.stdout)))


@pytest.mark.parametrize("name", FAILURES)
def test_bad_input_fails_clearly(main_calls: dict[str, dict[str, Any]], name: str) -> None:
    _, code, message = FAILURES[name]
    outcome = main_calls[name]
    assert outcome["code"] == code, outcome
    if code == 1:
        assert _lines(outcome["stdout"])[-1].startswith(message), outcome["stdout"]
    else:
        assert message in outcome["stderr"]
    assert not outcome["hub_cache_created"]  # nothing was fetched into the torch hub cache



def test_resnet_frozen_sgd_heavy_without_test_split(main_calls: dict[str, dict[str, Any]]) -> None:
    outcome = main_calls["options"]
    assert outcome["code"] == 0, outcome
    lines = _lines(outcome["stdout"])
    assert lines[0] == "data classes=3 train=12 valid=6 test=0"
    assert EPOCH_LINE.match(lines[-3]) and lines[-3].startswith("epoch=1/1 ")
    assert lines[-1] == "no test/ split: skipping test evaluation"
    assert outcome["optimized_tensors"] == 2  # the classifier's weight and bias only


def test_tuning_trials_sharing_a_checkpoint_folder_keep_their_checkpoints_apart(tmp_path: Path,
                                                                                dataset: Path) -> None:
    """SageMaker gives every trial of a tuning job one CheckpointConfig: a trial (``_tuning_objective_metric``
    set) names its checkpoint for its job, so it never resumes from another trial's."""

    def trial(job: str, epochs: int) -> subprocess.CompletedProcess[str]:
        env = {**_job_env(tmp_path, dataset), "TRAINING_JOB_NAME": job}
        return subprocess.run([str(DEFAULT_JOB_PYTHON), str(TRAIN_PY), *RUN_ARGS, "--epochs", str(epochs),
                               "--max-steps-per-epoch", "2"], env=env, capture_output=True, text=True, timeout=300)

    for job in ("hpo-001", "hpo-002"):
        result = trial(job, 1)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "resumed from checkpoint" not in result.stdout
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-hpo-001.pt",
                                                                           "checkpoint-hpo-002.pt"]
    again = trial("hpo-001", 2)  # restarted (a spot interruption): its own checkpoint, one epoch done
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed from checkpoint epoch=1 batch=0" in _lines(again.stdout)


def test_mixed_precision_and_channels_last_train_and_save_a_full_precision_model(tmp_path: Path,
                                                                                 dataset: Path) -> None:
    """On CPU ``--amp`` autocasts to bfloat16 (no gradient scaler: bfloat16 has float32's range); the
    saved weights stay float32, so serving needs nothing new."""
    result = _train(tmp_path, dataset, *RUN_ARGS, "--epochs", "1", "--max-steps-per-epoch", "3", "--amp", "true",
                    "--channels-last", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert any(line.startswith("start model=") and line.endswith(" precision=bfloat16 channels_last=True compiled=False")
               for line in lines)
    assert sum(bool(EPOCH_LINE.match(line)) for line in lines) == 1
    assert sum(bool(TEST_LINE.match(line)) for line in lines) == 1
    (model,) = _summarise(tmp_path / "model" / "model.pth")
    assert model["dtypes"] == ["torch.float32"], model


def test_compiled_training_keeps_the_hooks_and_saves_the_plain_modules_weights(tmp_path: Path,
                                                                              dataset: Path) -> None:
    """``--compile`` compiles the model's forward; the Debugger's and the Profiler's hooks run around
    it uncompiled (they save tensors and time phases), and the model and checkpoint hold the plain
    module's state (no ``_orig_mod.`` prefix), so serving and resuming need nothing new."""
    result = _train(tmp_path, dataset, *RUN_ARGS, "--epochs", "1", "--max-steps-per-epoch", "2",
                    "--model", "resnet18", "--pretrained", "false", "--compile", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert any(line.startswith("start model=") and line.endswith(" compiled=True") for line in lines)
    assert any(line.startswith("debugger: saving losses") for line in lines)
    assert list((tmp_path / "output" / "data" / "profiler-output" / "framework" / "events").rglob("*.json"))
    assert sum(bool(TEST_LINE.match(line)) for line in lines) == 1
    (model,) = _summarise(tmp_path / "model" / "model.pth")
    assert len(model["logits_shape"]) == 2  # the plain architecture loaded the saved state_dict
