"""Synthetic smdebug trials for the Debugger's tests and benchmark (job environment only).

A trial is written with smdebug's own ``FileWriter`` and ``CollectionManager``, exactly as
the hook lays it out: one event file and index file per global step, reductions as
``smdebug/reductions/<name>/<tensor>`` tensors, and a collections file. A step is
``(mode, tensors)``: a tensor maps to a full value (array or number) or to a dict of
reductions (``l2``, ``mean``, ``abs_mean``, ``zero_fraction``, ``update_ratio``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("SMDEBUG_LOG_LEVEL", "error")
os.environ.setdefault("SMDEBUG_TRAINING_END_DELAY_REFRESH", "0")

import numpy as np
from smdebug.core.access_layer.utils import training_has_ended
from smdebug.core.collection_manager import CollectionManager
from smdebug.core.modes import ModeKeys
from smdebug.core.reductions import get_reduction_tensor_name
from smdebug.core.writer import FileWriter

WORKER = "worker_0"
LOSS = "CrossEntropyLoss_output_0"
LABELS = "CrossEntropyLoss_input_1"
PREDICTIONS = "CrossEntropyLoss_input_0"
MODES = {"TRAIN": ModeKeys.TRAIN, "EVAL": ModeKeys.EVAL, "PREDICT": ModeKeys.PREDICT}

Step = tuple[str, Mapping[str, Any]]


def write_trial(path: Path, steps: Sequence[Step], collections: Mapping[str, Sequence[str]], *,
                ended: bool = True) -> dict[str, int]:
    """Writes ``steps`` (global steps 0, 1, ...) and the collections file; returns the mode
    step counters for :func:`append_steps`."""
    path.mkdir(parents=True, exist_ok=True)
    mode_steps = dict.fromkeys(MODES, 0)
    _write_steps(path, steps, 0, mode_steps)
    manager = CollectionManager()
    for name, tensors in collections.items():
        manager.create_collection(name)
        for tensor in tensors:
            manager.get(name).add_tensor_name(tensor)
    manager.set_num_workers(1)
    manager.export(str(path), f"{WORKER}_collections.json")
    if ended:
        training_has_ended(str(path))
    return mode_steps


def append_steps(path: Path, steps: Sequence[Step], start: int, mode_steps: dict[str, int]) -> None:
    """Adds steps to a trial as a running job does (``mode_steps`` continues the counters)."""
    _write_steps(path, steps, start, mode_steps)


def _write_steps(path: Path, steps: Sequence[Step], start: int, mode_steps: dict[str, int]) -> None:
    for offset, (mode, tensors) in enumerate(steps):
        step = start + offset
        with FileWriter(trial_dir=str(path), step=step, worker=WORKER) as writer:
            for name, value in tensors.items():
                if isinstance(value, Mapping):
                    for red, number in value.items():
                        absolute = red.startswith("abs_")
                        tname = get_reduction_tensor_name(name, red.removeprefix("abs_"), absolute)
                        writer.write_tensor(tdata=np.asarray(number, dtype=np.float32), tname=tname,
                                            mode=MODES[mode], mode_step=mode_steps[mode])
                else:
                    writer.write_tensor(tdata=np.asarray(value), tname=name, mode=MODES[mode], mode_step=mode_steps[mode])
        mode_steps[mode] += 1


def reductions(values: np.ndarray) -> dict[str, float]:
    """The hook's reductions of an array."""
    data = np.asarray(values, dtype=np.float64)
    return {"l2": float(np.linalg.norm(data.ravel())), "mean": float(data.mean()), "abs_mean": float(np.abs(data).mean()),
            "std": float(data.std()), "min": float(data.min()), "max": float(data.max()),
            "zero_fraction": float(np.mean(data == 0))}


def training_run(losses: Sequence[float], *, eval_losses: Sequence[Sequence[float]] = (), steps_per_epoch: int = 0,
                 layers: int = 3, save_interval: int = 5, gradient_scale: float = 1e-2,
                 update_ratio: float = 1e-3, labels: Sequence[np.ndarray] | None = None,
                 predictions: Sequence[np.ndarray] | None = None, extra: Mapping[int, Mapping[str, Any]] | None = None,
                 seed: int = 0) -> tuple[list[Step], dict[str, list[str]]]:
    """Steps of a plausible run: a train loss per step, eval passes after each epoch, layers'
    weights and gradients as reductions every ``save_interval`` train steps.

    ``eval_losses[k]`` are the batch losses of the validation pass after epoch ``k + 1``;
    ``labels``/``predictions`` (per train step, then per eval batch) add those collections;
    ``extra[global step]`` adds or replaces tensors of a step.
    """
    rng = np.random.default_rng(seed)
    weights = [f"Net_layer{i}.weight" for i in range(layers)]
    grads = [f"gradient/{w}" for w in weights]
    steps: list[Step] = []
    label_iter = iter(labels or [])
    prediction_iter = iter(predictions or [])
    epoch = 0
    for index, loss in enumerate(losses):
        tensors: dict[str, Any] = {LOSS: np.float32(loss)}
        if index % save_interval == 0:
            for w, g in zip(weights, grads):
                tensors[w] = {**reductions(rng.normal(0, 0.1, 64)), "update_ratio": update_ratio}
                tensors[g] = reductions(rng.normal(0, gradient_scale, 64))
        if labels is not None:
            tensors[LABELS] = next(label_iter)
            tensors[PREDICTIONS] = next(prediction_iter)
        steps.append(("TRAIN", tensors))
        if steps_per_epoch and (index + 1) % steps_per_epoch == 0 and epoch < len(eval_losses):
            for batch_loss in eval_losses[epoch]:
                evaluation: dict[str, Any] = {LOSS: np.float32(batch_loss)}
                if labels is not None:
                    evaluation[LABELS] = next(label_iter)
                    evaluation[PREDICTIONS] = next(prediction_iter)
                steps.append(("EVAL", evaluation))
            epoch += 1
    for step, tensors in (extra or {}).items():
        mode, existing = steps[step]
        steps[step] = (mode, {**existing, **tensors})
    collections = {"losses": [LOSS], "weights": weights, "gradients": grads}
    if labels is not None:
        collections.update(labels=[LABELS], predictions=[PREDICTIONS])
    return steps, collections
