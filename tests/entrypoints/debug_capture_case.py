"""Captures a tiny CNN's training with the Debugger hook and prints what the trial holds (job env).

    .venv-job/bin/python tests/entrypoints/debug_capture_case.py OUT_DIR [--debug-* ...]

The model has a frozen first convolution (the hook must skip it: sagemaker-python-sdk #1401),
an in-place ReLU and a Tanh. It trains 12 steps, runs a validation pass of 3 batches, a
second epoch of 4 steps, and a "test" pass of 2 batches after ``debug_hook.start_test()``.
numpy's ``tostring`` deprecation warning is an error here, so a writer that still calls it
(numpy 2 removed it) would lose every tensor.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "entrypoints"))

warnings.filterwarnings("error", message=r".*tostring.*")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import debug_config  # noqa: E402
import debug_hook  # noqa: E402


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.squash = nn.Tanh()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.stem(x)))
        x = self.squash(self.conv(x))
        return self.fc(self.pool(x).flatten(1))


def main() -> int:
    out = Path(sys.argv[1])
    parser = argparse.ArgumentParser()
    debug_config.add_arguments(parser)
    args = parser.parse_args(["--debug-out-dir", str(out), *sys.argv[2:]])
    torch.manual_seed(0)
    model = TinyNet()
    model.stem.requires_grad_(False)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    hook = debug_hook.attach(model, criterion, args)
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 3, (8,))) for _ in range(12)]

    def train(count: int) -> None:
        model.train()
        for images, labels in batches[:count]:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.inference_mode()
    def evaluate(count: int) -> None:
        model.eval()
        for images, labels in batches[:count]:
            criterion(model(images), labels)

    train(12)
    evaluate(3)
    train(4)
    debug_hook.start_test()
    evaluate(2)
    if hook is not None:
        hook.close()
    print(json.dumps(summarize(out, hook is not None)))
    return 0


def summarize(out: Path, attached: bool) -> dict[str, object]:
    capture = json.loads((out / debug_config.CAPTURE_FILE).read_text()) if (out / debug_config.CAPTURE_FILE).exists() else {}
    if not attached:
        return {"attached": False, "capture": capture, "folder": sorted(p.name for p in out.iterdir()) if out.exists() else []}
    from smdebug.core.modes import ModeKeys
    from smdebug.trials import create_trial

    trial = create_trial(str(out))
    collections = {c: trial.tensor_names(collection=c) for c in trial.collections()
                   if c in debug_config.COLLECTIONS + debug_config.ACTIVATION_COLLECTIONS}
    grad = "gradient/TinyNet_fc.weight"
    weight = "TinyNet_fc.weight"
    loss = trial.tensor_names(collection="losses")[0]
    saved = trial.tensor(grad).steps(mode=ModeKeys.TRAIN)
    has_labels = bool(collections.get("labels"))
    labels_steps = trial.tensor("CrossEntropyLoss_input_1").steps(mode=ModeKeys.TRAIN) if has_labels else []
    reductions = trial.tensor(grad).reduction_values(saved[0], mode=ModeKeys.TRAIN)
    weight_reductions = trial.tensor(weight).reduction_values(saved[-1], mode=ModeKeys.TRAIN)
    relu = list(collections.get("relu_output", []))
    return {
        "attached": True,
        "capture": capture,
        "collections": collections,
        "modes": {m.name: len(trial.steps(mode=m)) for m in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)},
        "loss_steps": {m.name: len(trial.tensor(loss).steps(mode=m)) for m in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)},
        "gradient_steps": saved,
        "label_steps": len(labels_steps),
        "gradient_reductions": sorted(("abs_" if a else "") + r for r, a in reductions),
        "gradient_l2": float(reductions[("l2", False)]),
        "weight_reductions": sorted(("abs_" if a else "") + r for r, a in weight_reductions),
        "labels_shape": list(np.asarray(trial.tensor("CrossEntropyLoss_input_1").value(0, mode=ModeKeys.TRAIN)).shape)
        if has_labels else None,
        "predictions_shape": list(np.asarray(trial.tensor("CrossEntropyLoss_input_0").value(0, mode=ModeKeys.TRAIN)).shape)
        if has_labels else None,
        "relu_has_full_value": bool(relu) and trial.tensor(relu[0]).value(0, mode=ModeKeys.TRAIN) is not None,
        "weight_full_value": _has_value(trial, weight, saved[0]),
        "ended": (out / "training_job_end.ts").exists(),
    }


def _has_value(trial: object, name: str, step: int) -> bool:
    from smdebug.core.modes import ModeKeys
    from smdebug.exceptions import TensorUnavailableForStep

    try:
        trial.tensor(name).value(step, mode=ModeKeys.TRAIN)  # type: ignore[attr-defined]
        return True
    except TensorUnavailableForStep:
        return False


if __name__ == "__main__":
    sys.exit(main())
