"""The Debugger's built-in rules as smdebug ``Rule`` subclasses (same names and parameters).

SageMaker's rule containers are closed to new customers, so these rules re-implement the
built-in rules on a trial written by ``entrypoints/debug_hook.py``. Each is an ordinary smdebug rule
(``invoke(step)`` raises ``RuleEvaluationConditionMet``, so ``smdebug.rules.invoke_rule``
runs it), with what the console needs on top: ``finding`` (step, tensor, message) once it
fired, ``checks`` (how many evaluations found data), ``finalize()`` for the last look once
training ended, and class texts saying what the rule means and what to try.

Where our data differ from what the built-in rules saw, the rules say so:

- Losses are saved at every step, so single-batch values are noisy. Loss rules compare
  *evaluation passes* (the mean loss of one validation pass; smdebug counts each eval batch
  as a step) and *windows* of training steps (the mean over ``num_steps`` steps).
- Weights and gradients are saved as reductions; VanishingGradient and PoorWeightInitialization
  look at the share of gradient tensors (``layer_fraction``), because a bias followed by
  batch norm has a structurally zero gradient in every healthy network.
- WeightUpdateRatio reads the hook's ``update_ratio`` (change since the previous saved step),
  or computes it from full weights when a trial has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.exceptions import SMDebugError
from smdebug.rules.rule import Rule


@dataclass(frozen=True)
class Finding:
    """Why a rule fired: the global step, the tensor (if one) and a plain-language message."""

    step: int
    tensor: str | None
    message: str


@dataclass
class EvalPass:
    """One validation pass: its last global step and the mean loss over its batches."""

    end_step: int
    loss: float
    batches: int


# --- reading the trial --------------------------------------------------------------------


def mode_of(trial: Any, step: int) -> tuple[Any, int | None]:
    """(ModeKeys, mode step) of a global step."""
    mode, mode_step = trial.mode_modestep(step)
    return mode, mode_step


def names_at(trial: Any, step: int, collection: str | None = None, regex: str | None = None) -> list[str]:
    """Tensors saved at a global step, optionally only those of a collection or regex."""
    names = trial.tensor_names(step=step)
    if collection is not None:
        members = set(trial.tensor_names(collection=collection)) if collection in trial.collections() else set()
        names = [n for n in names if n in members]
    if regex is not None:
        pattern = re.compile(regex)
        names = [n for n in names if pattern.match(n)]
    return names


def full_value(trial: Any, name: str, step: int) -> np.ndarray | None:
    """The saved value of a tensor at a global step, or None when only reductions exist."""
    mode, mode_step = mode_of(trial, step)
    try:
        return np.asarray(trial.tensor(name).value(mode_step, mode=mode))
    except SMDebugError:
        return None


def reduction(trial: Any, name: str, step: int, red: str, *, absolute: bool = False) -> float | None:
    """A reduction of a tensor at a global step: saved by the hook, or computed from the value."""
    mode, mode_step = mode_of(trial, step)
    try:
        saved = trial.tensor(name).reduction_value(mode_step, red, mode=mode, abs=absolute)
        if saved is not None:
            return float(np.asarray(saved))
    except SMDebugError:
        pass
    value = full_value(trial, name, step)
    return None if value is None else compute_reduction(value, red, absolute=absolute)


def compute_reduction(value: np.ndarray, red: str, *, absolute: bool = False) -> float:
    """The hook's reductions on a numpy value (``l2``, ``zero_fraction``, ``mean``, ...)."""
    data = np.abs(value) if absolute else np.asarray(value, dtype=np.float64)
    if red == "zero_fraction":
        return float(np.mean(data == 0)) if data.size else 0.0
    if red in ("l1", "l2"):
        return float(np.linalg.norm(data.ravel(), ord=int(red[1])))
    if red == "variance":
        return float(np.var(data))
    return float(getattr(np, red)(data))


class LossTracker:
    """Training losses by train step and completed validation passes, fed step by step."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.train: list[tuple[int, float]] = []  # (global step, loss)
        self.passes: list[EvalPass] = []
        self._pending: list[float] = []
        self._pending_end = -1

    def loss_name(self) -> str | None:
        names = self.trial.tensor_names(collection="losses") if "losses" in self.trial.collections() else []
        return names[0] if names else None

    def observe(self, step: int) -> list[EvalPass]:
        """Records the loss of ``step``; returns the validation pass this step closed, if any."""
        mode, _ = mode_of(self.trial, step)
        name = self.loss_name()
        loss = None
        if name is not None and name in self.trial.tensor_names(step=step):
            value = full_value(self.trial, name, step)
            loss = None if value is None else float(np.mean(value))
        if mode == ModeKeys.EVAL:
            if loss is not None:
                self._pending.append(loss)
                self._pending_end = step
            return []
        closed = self.close()
        if mode == ModeKeys.TRAIN and loss is not None:
            self.train.append((step, loss))
        return closed

    def close(self) -> list[EvalPass]:
        """Ends the open validation pass (at a later step, or when training ended)."""
        if not self._pending:
            return []
        done = EvalPass(self._pending_end, float(np.mean(self._pending)), len(self._pending))
        self.passes.append(done)
        self._pending = []
        return [done]


# --- the base rule ------------------------------------------------------------------------


class RuleFailure(Exception):
    """A rule raised at a step for another reason than missing data: it is in Error from then on."""


class ConsoleRule(Rule):
    """An smdebug rule with parameters, a finding and the texts the console shows.

    Subclasses implement ``check(step)`` (True when the condition is met, after ``fire``) and
    may override ``finalize()``. Unknown parameters raise ``ValueError``.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    needs: ClassVar[tuple[str, ...]] = ()
    meaning: ClassVar[str] = ""
    advice: ClassVar[str] = ""

    def __init__(self, base_trial: Any, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}")
        super().__init__(base_trial, action_str="")
        self.params = {**self.defaults, **params}
        self.report["RuleParameters"] = ", ".join(f"{k}={v}" for k, v in self.params.items())
        self.finding: Finding | None = None
        self.checks = 0

    def invoke_at_step(self, step: int) -> bool:
        if self.finding is not None:
            return True
        return self.check(step)

    def check(self, step: int) -> bool:
        raise NotImplementedError

    def finalize(self) -> bool:
        """A last evaluation once training has ended; True when the condition is met."""
        return False

    def fire(self, step: int, tensor: str | None, message: str) -> bool:
        self.finding = Finding(int(step), tensor, message)
        self.report["RuleTriggered"] = 1
        self.report["Violations"] += 1
        return True

    def tensors(self, step: int, default_collections: Iterable[str]) -> list[str]:
        """Tensors at ``step`` chosen by ``collection_names``/``tensor_regex`` or the defaults."""
        collections = _as_list(self.params.get("collection_names")) or list(default_collections)
        regexes = _as_list(self.params.get("tensor_regex"))
        names: set[str] = set()
        if regexes:
            for regex in regexes:
                names.update(names_at(self.base_trial, step, regex=regex))
        if collections or not regexes:
            if collections:
                for collection in collections:
                    names.update(names_at(self.base_trial, step, collection=collection))
            else:
                names.update(names_at(self.base_trial, step))
        return sorted(names)


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(";", ",").split(",") if v.strip()]
    return list(value)


def _pct(value: float) -> str:
    return f"{value:.3g}%"


# --- gradients and weights ----------------------------------------------------------------


class VanishingGradient(ConsoleRule):
    """Fires when gradients become extremely small: at a saved step, at least
    ``layer_fraction`` of the gradient tensors have a mean absolute value below ``threshold``."""

    defaults = {"threshold": 1e-7, "layer_fraction": 0.5}
    needs = ("gradients",)
    meaning = ("The gradients have become so small that most layers barely learn any more: the updates "
               "vanish before they reach the early layers.")
    advice = ("Use ReLU-family activations instead of sigmoid/tanh, add batch normalisation or residual "
              "connections, check the weight initialisation, or raise the learning rate.")

    def check(self, step: int) -> bool:
        grads = names_at(self.base_trial, step, collection="gradients")
        values = {n: reduction(self.base_trial, n, step, "mean", absolute=True) for n in grads}
        values = {n: v for n, v in values.items() if v is not None}
        if not values:
            return False
        self.checks += 1
        below = sorted((v, n) for n, v in values.items() if v < self.params["threshold"])
        if below and len(below) >= self.params["layer_fraction"] * len(values):
            value, name = below[0]
            return self.fire(step, name, f"{len(below)} of {len(values)} gradient tensors have a mean absolute value "
                             f"below {self.params['threshold']:g} (smallest: {value:.3g})")
        return False


class ExplodingTensor(ConsoleRule):
    """Fires when a saved tensor (or one of its reductions) holds NaN or, unless ``only_nan``,
    an infinite value."""

    defaults = {"collection_names": None, "tensor_regex": None, "only_nan": False}
    needs = ()
    meaning = "A tensor holds NaN or infinite values: the training has diverged numerically."
    advice = ("Lower the learning rate, clip gradients (torch.nn.utils.clip_grad_norm_), check the input "
              "data for NaN, and avoid log/division of values that can reach zero.")

    def check(self, step: int) -> bool:
        names = [n for n in self.tensors(step, ()) if n not in self._skip()]
        if not names:
            return False
        self.checks += 1
        mode, mode_step = mode_of(self.base_trial, step)
        for name in names:
            tensor = self.base_trial.tensor(name)
            values = []
            try:
                values = [np.asarray(v) for v in tensor.reduction_values(mode_step, mode=mode).values()]
            except SMDebugError:
                pass
            full = full_value(self.base_trial, name, step)
            if full is not None:
                values.append(full)
            for value in values:
                bad = np.isnan(value) if self.params["only_nan"] else ~np.isfinite(value)
                if np.any(bad):
                    kind = "NaN" if np.any(np.isnan(value)) else "infinite values"
                    return self.fire(step, name, f"{name} holds {kind} at step {step}")
        return False

    def _skip(self) -> set[str]:
        return set(self.base_trial.tensor_names(collection="labels")) if "labels" in self.base_trial.collections() else set()


class WeightUpdateRatio(ConsoleRule):
    """Fires when the change of a weight tensor since the previous saved step, relative to
    the weights, is above ``large_threshold`` or below ``small_threshold``."""

    defaults = {"large_threshold": 10.0, "small_threshold": 1e-8, "epsilon": 1e-12}
    needs = ("weights",)
    meaning = ("The updates are out of proportion to the weights: far too large (the training jumps "
               "around and may diverge) or so small that the weights stand still.")
    advice = ("Too large: lower the learning rate or clip gradients. Too small: raise the learning rate, "
              "check that the optimizer holds these parameters and that they are not frozen by mistake.")

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self._previous: dict[str, np.ndarray] = {}

    def check(self, step: int) -> bool:
        if mode_of(self.base_trial, step)[0] != ModeKeys.TRAIN:
            return False
        found = False
        for name in names_at(self.base_trial, step, collection="weights"):
            ratio = self._ratio(name, step)
            if ratio is None:
                continue
            found = True
            if ratio > self.params["large_threshold"]:
                return self.fire(step, name, f"the update of {name} is {ratio:.3g} times its size "
                                 f"(limit {self.params['large_threshold']:g})")
            if ratio < self.params["small_threshold"]:
                return self.fire(step, name, f"{name} changed by only {ratio:.3g} of its size since the previous "
                                 f"saved step (limit {self.params['small_threshold']:g})")
        self.checks += found
        return False

    def _ratio(self, name: str, step: int) -> float | None:
        mode, mode_step = mode_of(self.base_trial, step)
        try:
            saved = self.base_trial.tensor(name).reduction_value(mode_step, "update_ratio", mode=mode)
            if saved is not None:
                return float(np.asarray(saved))
        except SMDebugError:
            pass
        value = full_value(self.base_trial, name, step)
        if value is None:
            return None
        before, self._previous[name] = self._previous.get(name), value
        if before is None or before.shape != value.shape:
            return None
        return float(np.linalg.norm(value - before) / (np.linalg.norm(before) + self.params["epsilon"]))


class AllZero(ConsoleRule):
    """Fires when ``threshold`` percent (100: all) of a tensor's values are zero."""

    defaults = {"collection_names": None, "tensor_regex": None, "threshold": 100.0}
    needs = ()
    meaning = "A tensor is entirely zero: a layer outputs or learns nothing."
    advice = ("Check the initialisation and the data pipeline (blank inputs), look for dead ReLUs, and make "
              "sure the layer is connected to the loss.")

    def check(self, step: int) -> bool:
        labels = set(self.base_trial.tensor_names(collection="labels")) if "labels" in self.base_trial.collections() else set()
        names = [n for n in self.tensors(step, ()) if n not in labels]
        found = False
        for name in names:
            fraction = reduction(self.base_trial, name, step, "zero_fraction")
            if fraction is None:
                continue
            found = True
            if fraction * 100 >= self.params["threshold"]:
                return self.fire(step, name, f"{_pct(fraction * 100)} of the values of {name} are zero")
        self.checks += found
        return False


# --- losses ---------------------------------------------------------------------------------


class LossNotDecreasing(ConsoleRule):
    """Fires when the loss falls by less than ``diff_percent`` percent over ``num_steps`` steps.

    ``mode`` None follows SageMaker's order (EVAL, then TRAIN): once a validation pass has
    completed, each pass's mean loss is compared with the previous pass at least ``num_steps``
    steps earlier; before that, the mean training loss of the last ``num_steps`` train steps
    is compared with the same mean ``num_steps`` train steps earlier (the first check compares
    with the first step's loss). ``mode`` "TRAIN" or "EVAL" keeps to one of them.
    """

    defaults = {"num_steps": 10, "diff_percent": 0.1, "mode": None}
    needs = ("losses",)
    meaning = "The loss is not going down (or goes up): the model is not learning from the data."
    advice = ("Check the learning rate (too high: the loss jumps or climbs; too low: it stays flat), that the "
              "labels match the images, that gradients reach the layers, and that the data are shuffled.")

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self.losses = LossTracker(base_trial)
        self._train_ref: tuple[int, float] | None = None  # (train index, mean) of the last check
        self._pass_ref: EvalPass | None = None
        mode = (self.params["mode"] or "").upper()
        if mode not in ("", "TRAIN", "EVAL"):
            raise ValueError(f"LossNotDecreasing: mode must be TRAIN or EVAL, not {self.params['mode']!r}")
        self.mode = mode

    def check(self, step: int) -> bool:
        for done in self.losses.observe(step):
            if self._judge_pass(done):
                return True
        return self._judge_train()

    def finalize(self) -> bool:
        return any(self._judge_pass(done) for done in self.losses.close())

    def _judge_pass(self, done: EvalPass) -> bool:
        if self.mode == "TRAIN":
            return False
        ref, self.checks = self._pass_ref, self.checks + 1
        if ref is None or done.end_step - ref.end_step < self.params["num_steps"]:
            self._pass_ref = ref or done
            return False
        self._pass_ref = done
        return self._compare(ref.loss, done.loss, done.end_step, "validation pass")

    def _judge_train(self) -> bool:
        if self.mode == "EVAL" or (not self.mode and self.losses.passes):
            return False
        train, n = self.losses.train, self.params["num_steps"]
        if not train:
            return False
        if self._train_ref is None:
            self._train_ref = (0, train[0][1])
            return False
        index = len(train) - 1
        if index - self._train_ref[0] < n:
            return False
        current = float(np.mean([loss for _, loss in train[index - n + 1 : index + 1]]))
        previous = self._train_ref[1]
        self._train_ref = (index, current)
        self.checks += 1
        return self._compare(previous, current, train[index][0], f"mean training loss over {n} steps")

    def _compare(self, previous: float, current: float, step: int, what: str) -> bool:
        if not np.isfinite(current):
            return self.fire(step, self.losses.loss_name(), f"the {what} is {current} at step {step}")
        decrease = (previous - current) / max(abs(previous), 1e-12) * 100
        if decrease < self.params["diff_percent"]:
            change = f"rose by {_pct(-decrease)}" if decrease < 0 else f"fell by only {_pct(decrease)}"
            return self.fire(step, self.losses.loss_name(), f"the {what} {change} ({previous:.4g} → {current:.4g}); "
                             f"it must fall by at least {self.params['diff_percent']:g}%")
        return False


class Overfit(ConsoleRule):
    """Fires when, for ``patience`` validation passes in a row from ``start_step`` on, the
    validation loss exceeds the training loss since the previous pass by more than
    ``ratio_threshold`` of it."""

    defaults = {"start_step": 0, "patience": 1, "ratio_threshold": 0.1}
    needs = ("losses",)
    meaning = ("The validation loss pulls away from the training loss: the model memorises the training "
               "images instead of learning what generalises.")
    advice = ("Add data or augmentation (--augment heavy), regularise (weight decay, dropout), use a smaller "
              "model, or stop earlier (fewer epochs, the best checkpoint).")

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self.losses = LossTracker(base_trial)
        self._train_seen = 0
        self._streak = 0

    def check(self, step: int) -> bool:
        return any(self._judge(done) for done in self.losses.observe(step))

    def finalize(self) -> bool:
        return any(self._judge(done) for done in self.losses.close())

    def _judge(self, done: EvalPass) -> bool:
        since = self.losses.train[self._train_seen :]
        self._train_seen = len(self.losses.train)
        if not since or done.end_step < self.params["start_step"]:
            return False
        self.checks += 1
        train = float(np.mean([loss for _, loss in since]))
        ratio = (done.loss - train) / max(abs(train), 1e-12)
        self._streak = self._streak + 1 if ratio > self.params["ratio_threshold"] else 0
        if self._streak >= self.params["patience"]:
            return self.fire(done.end_step, self.losses.loss_name(),
                             f"validation loss {done.loss:.4g} is {ratio:.0%} above the training loss {train:.4g} "
                             f"(limit {self.params['ratio_threshold']:.0%})")
        return False


class Overtraining(ConsoleRule):
    """Fires when neither loss improves any more: the training loss (mean over windows of
    ``window`` train steps) has not improved by ``delta`` for ``patience_train`` windows and
    the validation loss (per pass) not for ``patience_validation`` passes."""

    defaults = {"patience_train": 5, "patience_validation": 10, "delta": 0.1, "window": 10}
    needs = ("losses",)
    meaning = "Neither the training nor the validation loss improves any more: more epochs only cost time."
    advice = "Stop training earlier (fewer epochs or early stopping), or lower the learning rate for a last gain."

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self.losses = LossTracker(base_trial)
        self._train_best, self._train_stale, self._windows = float("inf"), 0, 0
        self._valid_best, self._valid_stale = float("inf"), 0

    def check(self, step: int) -> bool:
        closed = self.losses.observe(step)
        self._update_train()
        return any(self._judge(done) for done in closed)

    def finalize(self) -> bool:
        return any(self._judge(done) for done in self.losses.close())

    def _update_train(self) -> None:
        window = self.params["window"]
        while (self._windows + 1) * window <= len(self.losses.train):
            chunk = self.losses.train[self._windows * window : (self._windows + 1) * window]
            self._windows += 1
            mean = float(np.mean([loss for _, loss in chunk]))
            if mean < self._train_best - self.params["delta"]:
                self._train_best, self._train_stale = mean, 0
            else:
                self._train_stale += 1

    def _judge(self, done: EvalPass) -> bool:
        self.checks += 1
        if done.loss < self._valid_best - self.params["delta"]:
            self._valid_best, self._valid_stale = done.loss, 0
        else:
            self._valid_stale += 1
        if self._train_stale >= self.params["patience_train"] and self._valid_stale >= self.params["patience_validation"]:
            return self.fire(done.end_step, self.losses.loss_name(),
                             f"no improvement by {self.params['delta']:g} for {self._train_stale} training windows "
                             f"and {self._valid_stale} validation passes")
        return False


# --- predictions ----------------------------------------------------------------------------


class ClassImbalance(ConsoleRule):
    """Fires when the training labels seen so far (at least ``samples``) are imbalanced by more
    than ``threshold_imbalance`` (most/least frequent class), or when a validation pass
    mispredicts an underrepresented class (at most half as many training labels as the most
    frequent one) more often than ``threshold_misprediction``."""

    defaults = {"threshold_imbalance": 10.0, "threshold_misprediction": 0.7, "samples": 500, "argmax": True,
                "labels_regex": None, "predictions_regex": None, "min_class_samples": 5}
    needs = ("labels", "predictions")
    meaning = ("Some classes are far rarer than others in the training data, or one class is mostly "
               "mispredicted: the model neglects it.")
    advice = ("Collect more images of the rare or mispredicted classes, oversample them (a weighted sampler) "
              "or weight the loss per class, and check those images' labels.")

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self.counts: np.ndarray = np.zeros(0, dtype=np.int64)
        self._pass: list[tuple[np.ndarray, np.ndarray]] = []
        self._pass_end = -1

    def check(self, step: int) -> bool:
        mode, _ = mode_of(self.base_trial, step)
        if mode != ModeKeys.EVAL and self._pass and self._judge_pass():
            return True
        pair = self._pair(step)
        if pair is None:
            return False
        labels, _ = pair
        if mode == ModeKeys.EVAL:
            self._pass.append(pair)
            self._pass_end = step
        elif mode == ModeKeys.TRAIN:
            return self._judge_counts(step, labels)
        return False

    def finalize(self) -> bool:
        return bool(self._pass) and self._judge_pass()

    def _pair(self, step: int) -> tuple[np.ndarray, np.ndarray] | None:
        labels_name = self._find(step, "labels", self.params["labels_regex"])
        predictions_name = self._find(step, "predictions", self.params["predictions_regex"])
        if labels_name is None or predictions_name is None:
            return None
        labels = full_value(self.base_trial, labels_name, step)
        scores = full_value(self.base_trial, predictions_name, step)
        if labels is None or scores is None:
            return None
        predicted = scores.argmax(axis=-1) if self.params["argmax"] and scores.ndim > 1 else scores
        classes = scores.shape[-1] if scores.ndim > 1 else int(max(labels.max(), predicted.max()) + 1)
        if self.counts.size < classes:
            self.counts = np.pad(self.counts, (0, classes - self.counts.size))
        return labels.astype(np.int64).ravel(), np.asarray(predicted).astype(np.int64).ravel()

    def _find(self, step: int, collection: str, regex: str | None) -> str | None:
        names = names_at(self.base_trial, step, regex=regex) if regex else names_at(self.base_trial, step, collection=collection)
        return names[0] if names else None

    def _judge_counts(self, step: int, labels: np.ndarray) -> bool:
        self.counts[: labels.max() + 1] += np.bincount(labels, minlength=labels.max() + 1)
        if self.counts.sum() < self.params["samples"]:
            return False
        self.checks += 1
        most, least = int(self.counts.max()), int(self.counts.min())
        if least == 0 or most / least > self.params["threshold_imbalance"]:
            rare = int(self.counts.argmin())
            return self.fire(step, None, f"class {rare} has {least} of {int(self.counts.sum())} training labels, the "
                             f"most frequent class {most} (limit: {self.params['threshold_imbalance']:g} times)")
        return False

    def _judge_pass(self) -> bool:
        labels = np.concatenate([true for true, _ in self._pass])
        predicted = np.concatenate([p for _, p in self._pass])
        self._pass, end = [], self._pass_end
        if self.counts.sum() < self.params["samples"]:
            return False
        self.checks += 1
        rare = {int(c) for c in np.flatnonzero(self.counts <= self.counts.max() / 2)}
        worst: tuple[float, int, int] | None = None
        for cls in np.unique(labels):
            mask = labels == cls
            if int(cls) not in rare or mask.sum() < self.params["min_class_samples"]:
                continue
            rate = float(np.mean(predicted[mask] != cls))
            if worst is None or rate > worst[0]:
                worst = (rate, int(cls), int(mask.sum()))
        if worst and worst[0] > self.params["threshold_misprediction"]:
            return self.fire(end, None, f"class {worst[1]}, underrepresented with {int(self.counts[worst[1]])} training "
                             f"labels, was mispredicted in {worst[0]:.0%} of its {worst[2]} validation images "
                             f"(limit {self.params['threshold_misprediction']:.0%})")
        return False


# --- activations ----------------------------------------------------------------------------


class PoorWeightInitialization(ConsoleRule):
    """Looks at the first ``steps`` train steps: fires when the variances of the ReLU inputs
    differ across layers by more than ``threshold`` times, when the gradients of more than half
    of the layers spread over less than ``distribution_range`` (max - min, an upper bound of
    the 5-95 percentile range), or when the loss of the last ``patience`` of those steps is
    no lower than that of the first ``patience``."""

    defaults = {"activation_inputs_regex": ".*relu_input", "threshold": 10.0, "distribution_range": 0.001,
                "patience": 5, "steps": 10}
    needs = ("relu_input",)
    meaning = ("The weights start badly: activation variances differ wildly between layers, gradients are "
               "uniform, or the loss does not move in the first steps.")
    advice = ("Use He (Kaiming) initialisation for ReLU networks or Xavier for tanh/sigmoid, add batch "
              "normalisation, or start from pretrained weights.")

    def __init__(self, base_trial: Any, **params: Any) -> None:
        super().__init__(base_trial, **params)
        self.losses = LossTracker(base_trial)

    def check(self, step: int) -> bool:
        mode, mode_step = mode_of(self.base_trial, step)
        if mode != ModeKeys.TRAIN or mode_step is None or mode_step >= self.params["steps"]:
            return False
        self.losses.observe(step)
        inputs = names_at(self.base_trial, step, regex=self.params["activation_inputs_regex"])
        variances = {n: v ** 2 for n in inputs if (v := reduction(self.base_trial, n, step, "std")) is not None}
        if variances:
            self.checks += 1
            positive = {n: v for n, v in variances.items() if v > 0}
            if positive and max(positive.values()) / min(positive.values()) > self.params["threshold"]:
                low, high = min(positive, key=positive.__getitem__), max(positive, key=positive.__getitem__)
                return self.fire(step, low, f"activation variances range from {positive[low]:.3g} ({low}) to "
                                 f"{positive[high]:.3g} ({high}), more than {self.params['threshold']:g} times apart")
        if self._flat_gradients(step):
            return True
        return self._loss_stuck(step, mode_step)

    def _flat_gradients(self, step: int) -> bool:
        spreads = {}
        for name in names_at(self.base_trial, step, collection="gradients"):
            low, high = reduction(self.base_trial, name, step, "min"), reduction(self.base_trial, name, step, "max")
            if low is not None and high is not None:
                spreads[name] = high - low
        flat = [n for n, s in spreads.items() if s < self.params["distribution_range"]]
        if spreads and len(flat) > len(spreads) / 2:
            return self.fire(step, flat[0], f"{len(flat)} of {len(spreads)} gradient tensors spread over less than "
                             f"{self.params['distribution_range']:g}")
        return False

    def _loss_stuck(self, step: int, mode_step: int) -> bool:
        patience, train = self.params["patience"], self.losses.train
        if mode_step != self.params["steps"] - 1 or len(train) < 2 * patience:
            return False
        first = float(np.mean([loss for _, loss in train[:patience]]))
        last = float(np.mean([loss for _, loss in train[-patience:]]))
        if last >= first:
            return self.fire(step, self.losses.loss_name(), f"the loss did not fall in the first {self.params['steps']} "
                             f"steps ({first:.4g} → {last:.4g})")
        return False


class DeadRelu(ConsoleRule):
    """Fires when more than ``threshold_layer`` percent of a ReLU layer's units are active
    (> 0) in fewer than ``threshold_inactivity`` percent of the batch's samples."""

    defaults = {"tensor_regex": ".*relu_output", "threshold_inactivity": 1.0, "threshold_layer": 50.0}
    needs = ("relu_output",)
    meaning = "Most units of a ReLU layer never activate any more: they output zero and stop learning."
    advice = ("Lower the learning rate, use LeakyReLU/ELU, check the initialisation and the bias of the "
              "preceding layer, and look at the input normalisation.")

    def check(self, step: int) -> bool:
        collection = "relu_output" if self.params["tensor_regex"] == self.defaults["tensor_regex"] else None
        names = names_at(self.base_trial, step, collection=collection) if collection else []
        names = names or names_at(self.base_trial, step, regex=self.params["tensor_regex"])
        for name in names:
            value = full_value(self.base_trial, name, step)
            if value is None or value.ndim < 2:
                continue
            self.checks += 1
            active = np.mean(value > 0, axis=0)
            dead = float(np.mean(active < self.params["threshold_inactivity"] / 100) * 100)
            if dead > self.params["threshold_layer"]:
                return self.fire(step, name, f"{_pct(dead)} of the units of {name} are dead "
                                 f"(limit {self.params['threshold_layer']:g}%)")
        return False


class SaturatedActivation(ConsoleRule):
    """Fires when more than ``threshold_layer`` percent of a tanh or sigmoid layer's inputs lie
    beyond the saturation thresholds."""

    defaults = {"threshold_tanh_min": -9.4999, "threshold_tanh_max": 9.4999, "threshold_sigmoid_min": -23.0,
                "threshold_sigmoid_max": 16.99999, "threshold_layer": 50.0}
    needs = ("tanh_input", "sigmoid_input")
    meaning = "A tanh or sigmoid layer is saturated: its inputs are so large that its gradient is almost zero."
    advice = "Normalise the inputs, add batch normalisation before the activation, lower the learning rate or use ReLU."

    def check(self, step: int) -> bool:
        for kind in ("tanh", "sigmoid"):
            low, high = self.params[f"threshold_{kind}_min"], self.params[f"threshold_{kind}_max"]
            for name in names_at(self.base_trial, step, collection=f"{kind}_input"):
                value = full_value(self.base_trial, name, step)
                if value is None:
                    continue
                self.checks += 1
                saturated = float(np.mean((value < low) | (value > high)) * 100)
                if saturated > self.params["threshold_layer"]:
                    return self.fire(step, name, f"{_pct(saturated)} of the inputs of {name} saturate the {kind} "
                                     f"(limit {self.params['threshold_layer']:g}%)")
        return False


RULES: dict[str, type[ConsoleRule]] = {
    cls.__name__: cls
    for cls in (VanishingGradient, ExplodingTensor, Overfit, Overtraining, LossNotDecreasing, PoorWeightInitialization,
                WeightUpdateRatio, AllZero, ClassImbalance, DeadRelu, SaturatedActivation)
}


def run_steps(rule: ConsoleRule, steps: Iterable[int]) -> bool:
    """Invokes ``rule`` on each step in order until it fires; whether it fired.

    A step that lacks what the rule reads (smdebug's ``SMDebugError``) is skipped: the next may have it.

    Raises:
        RuleFailure: the rule failed at a step (the message names the step and the error).
    """
    for step in steps:
        try:
            if rule.invoke_at_step(step):
                return True
        except SMDebugError:
            continue
        except Exception as exc:
            raise RuleFailure(f"the rule failed at step {step}: {type(exc).__name__}: {exc}") from exc
    return False
