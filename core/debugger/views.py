"""What the Debugger page shows, shaped from the store: curves, heatmaps, tables, messages.

Everything here reads :class:`DebugStore` rows (never smdebug files) and returns pandas
frames, so a page render stays fast while the job writes.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from core.debugger.entities import DebugTrial, RuleResult, RuleStatus, TrialState
from core.debugger.store import DebugStore

SMOOTHING = 10
STAT_REDUCTIONS = ("l2", "mean", "abs_mean", "std", "min", "max", "zero_fraction", "update_ratio")
_MODEL_PREFIX = re.compile(r"^(gradient/)?[A-Z][A-Za-z0-9]*_(?=.*\.)")
_STATUS_ORDER = {RuleStatus.ISSUES_FOUND: 0, RuleStatus.ERROR: 1, RuleStatus.IN_PROGRESS: 2,
                 RuleStatus.NO_ISSUES_FOUND: 3, RuleStatus.STOPPING: 4, RuleStatus.STOPPED: 5}


@dataclass(frozen=True)
class Banner:
    """A message the page shows above the charts: level is info, warning or error."""

    level: str
    text: str


def banner(trial: DebugTrial | None, *, job_running: bool, reading: bool = False) -> Banner | None:
    """Why there is nothing (or not yet anything) to show, in plain words; None when data exist.

    reading: an evaluator follows the job from this machine and has not concluded yet.
    """
    if trial is None:
        if reading and not job_running:
            return Banner("info", "The rule evaluator is reading the job's trial.")
        if job_running:
            return Banner("info", "Waiting for the rule evaluator to start.")
        return Banner("info", "No debugger data for this job: it ran before the Debugger existed, or where no rule "
                              "evaluator ran beside it.")
    if trial.state is TrialState.WAITING and not job_running:
        return Banner("info", f"The job has ended; the rule evaluator is checking whether it wrote a trial to "
                              f"{trial.path}.")
    if trial.state is TrialState.WAITING:
        return Banner("info", f"Waiting for the job's first saved step (the hook writes to {trial.path}).")
    if trial.state is TrialState.MISSING:
        return Banner("warning", trial.message or "The job's debug folder is missing or empty.")
    if trial.state is TrialState.DISABLED:
        return Banner("info", trial.message or "The job ran with --debug false.")
    if trial.state is TrialState.FAILED:
        return Banner("error", trial.message or "The debugger failed.")
    if trial.steps == 0:
        return Banner("info", "The trial has no step yet.")
    return None


def layer_name(tensor: str) -> str:
    """A short layer name: ``gradient/EfficientNet__blocks.0._bn1.weight`` -> ``_blocks.0._bn1.weight``."""
    return _MODEL_PREFIX.sub("", tensor)


def loss_curves(store: DebugStore, job_name: str, *, smoothing: int = SMOOTHING) -> pd.DataFrame:
    """Loss by global step: training batches, their moving mean, and one mean per validation pass.

    Columns: ``step``, ``loss``, ``series`` (``train (batch)``, ``train (mean of N)``,
    ``validation (pass mean)``).
    """
    rows = store.series(job_name, "losses", ["value"], modes=["TRAIN", "EVAL"])
    frame = pd.DataFrame(rows, columns=["tensor", "mode", "step", "mode_step", "value"]).dropna(subset=["value"])
    if frame.empty:
        return pd.DataFrame(columns=["step", "loss", "series"])
    frame = frame[frame["tensor"] == frame["tensor"].iloc[0]]
    train = frame[frame["mode"] == "TRAIN"][["step", "value"]].rename(columns={"value": "loss"})
    parts = [train.assign(series="train (batch)")]
    if len(train) >= 2:
        smooth = train.assign(loss=train["loss"].rolling(smoothing, min_periods=1).mean())
        parts.append(smooth.assign(series=f"train (mean of {smoothing})"))
    evaluation = frame[frame["mode"] == "EVAL"]
    if not evaluation.empty:
        passes = (evaluation["step"].diff() != 1).cumsum()
        grouped = evaluation.groupby(passes).agg(step=("step", "max"), loss=("value", "mean"))
        parts.append(grouped.assign(series="validation (pass mean)"))
    return pd.concat(parts, ignore_index=True)


def heatmap(store: DebugStore, job_name: str, *, collection: str = "gradients", reduction: str = "l2") -> pd.DataFrame:
    """A layers x steps matrix of one reduction (rows in model order, columns global steps)."""
    rows = store.series(job_name, collection, [reduction], modes=["TRAIN"])
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows, columns=["tensor", "mode", "step", "mode_step", "value"])
    matrix = frame.pivot(index="tensor", columns="step", values="value")
    order = [name for name, _ in store.tensors(job_name, collection) if name in matrix.index]
    order += sorted(set(matrix.index) - set(order))
    matrix = matrix.reindex(order)
    matrix.index = [layer_name(name) for name in matrix.index]
    return matrix


def tensor_stats(store: DebugStore, job_name: str, collection: str, tensor: str) -> pd.DataFrame:
    """One tensor's reductions by global step (train mode): a column per reduction."""
    rows = store.series(job_name, collection, STAT_REDUCTIONS, modes=["TRAIN"], tensors=[tensor])
    if not rows:
        return pd.DataFrame(columns=["step"])
    frame = pd.DataFrame(rows, columns=["tensor", "mode", "step", "mode_step", *STAT_REDUCTIONS])
    return frame.drop(columns=["tensor", "mode", "mode_step"]).dropna(axis="columns", how="all")


def layer_profile(store: DebugStore, job_name: str, collection: str, *, step: int | None = None) -> pd.DataFrame:
    """Every layer's distribution summary (min, mean ± std, max) at one step (default: the last)."""
    empty = pd.DataFrame(columns=["layer", "min", "max", "mean", "std", "step"])
    if step is None:
        steps = saved_steps(store, job_name, collection)
        if not steps:
            return empty
        step = steps[-1]
    rows = store.series(job_name, collection, ["min", "max", "mean", "std"], modes=["TRAIN"], steps=[step])
    if not rows:
        return empty
    at = pd.DataFrame(rows, columns=["tensor", "mode", "step", "mode_step", "min", "max", "mean", "std"])
    at = at.set_index("tensor")[["min", "max", "mean", "std"]]
    chosen = step
    order = [name for name, _ in store.tensors(job_name, collection) if name in at.index]
    at = at.reindex(order + sorted(set(at.index) - set(order)))
    at.insert(0, "layer", [layer_name(n) for n in at.index])
    return at.reset_index(drop=True).assign(step=chosen)


def saved_steps(store: DebugStore, job_name: str, collection: str) -> list[int]:
    """The global steps at which a collection's reductions were kept."""
    first = store.tensors(job_name, collection)
    if not first:
        return []
    rows = store.series(job_name, collection, ["l2"], modes=["TRAIN"], tensors=[first[0][0]])
    return sorted({row[2] for row in rows})


def rules_summary(rules: list[RuleResult]) -> str:
    """How many rules stand in each status, e.g. ``8 rules: 7 NoIssuesFound, 1 IssuesFound``."""
    counts = Counter(rule.status.value for rule in rules)
    return f"{len(rules)} rules: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def rules_table(rules: list[RuleResult]) -> pd.DataFrame:
    """The rule table: issues first, then errors, running rules and clean ones."""
    ordered = sorted(rules, key=lambda r: _STATUS_ORDER.get(r.status, 9))
    return pd.DataFrame(
        [
            {
                "rule": r.rule,
                "status": r.status.value,
                "step": r.step,
                "tensor": layer_name(r.tensor) if r.tensor else None,
                "finding": r.message,
                "action": "StopTraining" if r.stop_training else "Notification",
                "evaluated up to step": r.evaluated_step,
            }
            for r in ordered
        ],
        columns=["rule", "status", "step", "tensor", "finding", "action", "evaluated up to step"],
    )
