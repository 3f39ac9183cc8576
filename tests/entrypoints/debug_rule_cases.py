"""Runs every Debugger rule on synthetic smdebug trials (job environment); prints JSON results.

    .venv-job/bin/python tests/entrypoints/debug_rule_cases.py OUT_DIR

Each case writes a trial with smdebug, runs one rule over every step as the evaluator does
(``invoke_at_step`` in step order, then ``finalize``) and reports whether it fired. One case
per rule runs through smdebug's own ``invoke_rule`` instead, to show they are plain rules.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import synthetic_trials as st  # noqa: E402
from smdebug.analysis.utils import no_refresh  # noqa: E402
from smdebug.exceptions import RuleEvaluationConditionMet, SMDebugError  # noqa: E402
from smdebug.rules.rule_invoker import invoke_rule  # noqa: E402
from smdebug.trials import create_trial  # noqa: E402

from entrypoints.debug_rules import RULES  # noqa: E402

Case = tuple[str, dict[str, Any], Callable[[], tuple[list[st.Step], dict[str, list[str]]]]]
RNG = np.random.default_rng(7)


def decreasing(n: int, start: float = 2.3, end: float = 0.3, noise: float = 0.02) -> list[float]:
    return list(start * (end / start) ** (np.arange(n) / max(n - 1, 1)) + RNG.normal(0, noise, n))


def flat(n: int, level: float = 2.3, noise: float = 0.05) -> list[float]:
    return list(level + RNG.normal(0, noise, n))


def labelled(n_train: int, n_eval_batches: int, classes: int, weights: list[float], accuracy: float,
             eval_accuracy: dict[int, float] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Labels and logits per train step (n_train) then per eval batch; batch 32."""
    labels, logits = [], []
    for i in range(n_train + n_eval_batches):
        y = RNG.choice(classes, size=32, p=np.asarray(weights) / sum(weights))
        scores = RNG.normal(0, 1, (32, classes)).astype(np.float32)
        for row, cls in enumerate(y):
            rate = (eval_accuracy or {}).get(int(cls), accuracy) if i >= n_train else accuracy
            if RNG.random() < rate:
                scores[row, cls] += 10
            else:
                scores[row, cls] -= 10
        labels.append(y.astype(np.int64))
        logits.append(scores)
    return labels, logits


def run(losses: list[float], **kwargs: Any) -> Callable[[], tuple[list[st.Step], dict[str, list[str]]]]:
    return lambda: st.training_run(losses, **kwargs)


def activations(kind: str, values: Callable[[], np.ndarray]) -> Callable[[], tuple[list[st.Step], dict[str, list[str]]]]:
    """A run whose train steps 0, 5, 10 also save two layers' activations in full."""
    def build() -> tuple[list[st.Step], dict[str, list[str]]]:
        steps, collections = st.training_run(decreasing(20), save_interval=5)
        names = [f"layer{i}.act_{'output' if kind == 'relu_output' else 'input'}_0" for i in range(2)]
        for index in (0, 5, 10):
            mode, tensors = steps[index]
            extra = {}
            for i, name in enumerate(names):
                value = values() if i == 0 else RNG.normal(0, 1, (16, 8, 4)).astype(np.float32)
                extra[name] = np.maximum(value, 0) if kind == "relu_output" else value
            steps[index] = (mode, {**tensors, **extra})
        collections[kind] = names
        return steps, collections

    return build


def poor_init(stds: tuple[float, ...]) -> Callable[[], tuple[list[st.Step], dict[str, list[str]]]]:
    def build() -> tuple[list[st.Step], dict[str, list[str]]]:
        steps, collections = st.training_run(decreasing(20), save_interval=5)
        names = [f"layer{i}.relu_input_0" for i in range(len(stds))]
        for index in (0, 5):
            mode, tensors = steps[index]
            steps[index] = (mode, {**tensors, **{n: RNG.normal(0, s, (16, 32)).astype(np.float32)
                                                for n, s in zip(names, stds)}})
        collections["relu_input"] = names
        return steps, collections

    return build


def dead_units(dead_share: float) -> np.ndarray:
    value = RNG.normal(0, 1, (16, 8, 4)).astype(np.float32)
    dead = RNG.random((8, 4)) < dead_share
    value[:, dead] = -1.0
    return value


NAN_GRADIENT = {"gradient/Net_layer1.weight": {"l2": float("nan"), "mean": float("nan"), "abs_mean": float("nan")}}
ZERO_GRADIENT = {"gradient/Net_layer2.weight": {"l2": 0.0, "mean": 0.0, "abs_mean": 0.0, "zero_fraction": 1.0}}
PART_ZERO = {"gradient/Net_layer2.weight": {"l2": 0.1, "mean": 0.0, "abs_mean": 0.01, "zero_fraction": 0.3}}
TINY_BIAS = {"gradient/Net_layer0.weight": {"abs_mean": 1e-10, "mean": 0.0}}

CASES: dict[str, Case] = {
    "VanishingGradient/fires": ("VanishingGradient", {}, run(decreasing(30), gradient_scale=1e-9)),
    "VanishingGradient/quiet": ("VanishingGradient", {}, run(decreasing(30), extra={10: TINY_BIAS})),
    "ExplodingTensor/fires": ("ExplodingTensor", {}, run(decreasing(30), extra={10: NAN_GRADIENT})),
    "ExplodingTensor/fires-on-loss": ("ExplodingTensor", {}, run(decreasing(30), extra={7: {st.LOSS: np.float32("inf")}})),
    "ExplodingTensor/quiet": ("ExplodingTensor", {}, run(decreasing(30))),
    "Overfit/fires": ("Overfit", {}, run(decreasing(40, end=0.1), steps_per_epoch=10,
                                       eval_losses=[flat(5, 0.9, 0.01) for _ in range(4)])),
    "Overfit/quiet": ("Overfit", {}, run(decreasing(40, end=0.5), steps_per_epoch=10,
                                       eval_losses=[flat(5, lvl, 0.01) for lvl in (1.0, 0.7, 0.55, 0.45)])),
    "Overtraining/fires": ("Overtraining", {"patience_validation": 3}, run(
        flat(120, 0.5, 0.01), steps_per_epoch=10, eval_losses=[flat(5, 0.6, 0.01) for _ in range(12)])),
    "Overtraining/quiet": ("Overtraining", {"patience_validation": 3}, run(
        decreasing(120, 2.3, 0.05), steps_per_epoch=10,
        eval_losses=[flat(5, 2.3 - 0.2 * k, 0.01) for k in range(12)])),
    "LossNotDecreasing/fires-flat": ("LossNotDecreasing", {}, run(flat(40, 2.3, 0.05))),
    "LossNotDecreasing/fires-diverging": ("LossNotDecreasing", {}, run([2.3] + [1e4] * 29)),
    "LossNotDecreasing/fires-validation": ("LossNotDecreasing", {}, run(
        decreasing(40), steps_per_epoch=10, eval_losses=[flat(5, lvl, 0.01) for lvl in (1.0, 1.1, 1.2, 1.3)])),
    "LossNotDecreasing/quiet": ("LossNotDecreasing", {}, run(
        decreasing(40), steps_per_epoch=10, eval_losses=[flat(5, lvl, 0.01) for lvl in (1.0, 0.8, 0.6, 0.5)])),
    "WeightUpdateRatio/fires-large": ("WeightUpdateRatio", {}, run(decreasing(30), update_ratio=50.0)),
    "WeightUpdateRatio/fires-small": ("WeightUpdateRatio", {}, run(decreasing(30), update_ratio=1e-10)),
    "WeightUpdateRatio/quiet": ("WeightUpdateRatio", {}, run(decreasing(30), update_ratio=1e-3)),
    "AllZero/fires": ("AllZero", {}, run(decreasing(30), extra={10: ZERO_GRADIENT})),
    "AllZero/quiet": ("AllZero", {}, run(decreasing(30), extra={10: PART_ZERO})),
    "ClassImbalance/fires-imbalance": ("ClassImbalance", {}, lambda: st.training_run(
        decreasing(30), labels=labelled(30, 0, 4, [40, 1, 1, 1], 0.9)[0],
        predictions=labelled(30, 0, 4, [40, 1, 1, 1], 0.9)[1])),
    "ClassImbalance/fires-misprediction": ("ClassImbalance", {}, lambda: _mispredicted()),  # noqa: PLW0108 (defined below)
    "ClassImbalance/quiet": ("ClassImbalance", {}, lambda: _balanced()),  # noqa: PLW0108 (defined below)
    "PoorWeightInitialization/fires": ("PoorWeightInitialization", {}, poor_init((0.01, 1.0, 10.0))),
    "PoorWeightInitialization/quiet": ("PoorWeightInitialization", {}, poor_init((1.0, 1.3, 0.8))),
    "DeadRelu/fires": ("DeadRelu", {}, activations("relu_output", lambda: dead_units(0.8))),
    "DeadRelu/quiet": ("DeadRelu", {}, activations("relu_output", lambda: dead_units(0.1))),
    "SaturatedActivation/fires": ("SaturatedActivation", {}, activations(
        "tanh_input", lambda: RNG.choice([-20.0, 20.0], (16, 8, 4)).astype(np.float32))),
    "SaturatedActivation/quiet": ("SaturatedActivation", {}, activations(
        "tanh_input", lambda: RNG.normal(0, 1, (16, 8, 4)).astype(np.float32))),
}
VIA_INVOKE_RULE = {"LossNotDecreasing/fires-diverging", "ExplodingTensor/quiet"}


def _mispredicted() -> tuple[list[st.Step], dict[str, list[str]]]:
    labels, logits = labelled(30, 9, 4, [3, 3, 1, 3], 0.9, eval_accuracy={2: 0.1})
    return st.training_run(decreasing(30), steps_per_epoch=30, eval_losses=[flat(9, 0.5)], labels=labels,
                           predictions=logits)


def _balanced() -> tuple[list[st.Step], dict[str, list[str]]]:
    labels, logits = labelled(30, 9, 4, [1, 1, 1, 1], 0.9, eval_accuracy={2: 0.1})
    return st.training_run(decreasing(30), steps_per_epoch=30, eval_losses=[flat(9, 0.5)], labels=labels,
                           predictions=logits)


def evaluate(case: str, out: Path) -> dict[str, Any]:
    rule_name, params, build = CASES[case]
    steps, collections = build()
    path = out / case.replace("/", "-")
    st.write_trial(path, steps, collections)
    trial = create_trial(str(path))
    rule = RULES[rule_name](trial, **params)
    if case in VIA_INVOKE_RULE:
        try:
            invoke_rule(rule, start_step=0, end_step=len(steps), raise_eval_cond=True)
        except RuleEvaluationConditionMet:
            pass
    else:
        trial.maybe_refresh()
        with no_refresh(trial):
            for step in trial.steps():
                try:
                    if rule.invoke_at_step(step):
                        break
                except SMDebugError:
                    continue
            else:
                rule.finalize()
    finding = rule.finding
    return {"fired": finding is not None, "checks": rule.checks, "step": finding.step if finding else None,
            "tensor": finding.tensor if finding else None, "message": finding.message if finding else None}


def main() -> int:
    out = Path(sys.argv[1])
    results = {case: evaluate(case, out) for case in CASES}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
