"""What the Tuning page tabulates: the leaderboard, the best trial and the learning curves.

Pure functions over :class:`Trial` records and their :class:`TuningJobSpec`, returning pandas
frames (the figures of ``core.tuning.charts`` are drawn from them). Trials are shown 1-based
(trial 1 is training job ``<name>-001``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from core.entities import MetricPoint
from core.errors import NotFoundError
from core.tuning.entities import Trial, TrialStatus
from core.tuning.spec import CategoricalRange, IntegerRange, ObjectiveType, ParameterRange, TuningJobSpec


def typed_value(r: ParameterRange, raw: object) -> float | int | str | None:
    """A trial's hyperparameter string as the range's type; None if it does not parse."""
    if raw is None:
        return None
    if isinstance(r, CategoricalRange):
        return str(raw)
    try:
        number = float(str(raw))
    except ValueError:
        return None
    if isinstance(r, IntegerRange):
        return int(number) if number.is_integer() else None
    return number


def has_objective(t: Trial) -> bool:
    """Whether the trial reported a finite objective (it can be ranked and charted)."""
    return t.objective is not None and math.isfinite(t.objective)


def best_of(trials: Iterable[Trial], spec: TuningJobSpec) -> Trial | None:
    """The best completed trial (the rule of :meth:`Tuner.best_trial`); None if none completed."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED and has_objective(t)]
    if not done:
        return None
    pick = max if spec.objective_type is ObjectiveType.MAXIMIZE else min
    return pick(done, key=lambda t: t.objective)  # type: ignore[arg-type, return-value]


def leaderboard(trials: Sequence[Trial], spec: TuningJobSpec) -> pd.DataFrame:
    """One row per trial, best objective first; trials without an objective last.

    Columns: trial, job name, status, one per tuned hyperparameter (typed), objective,
    epochs run, duration (s), pruned, best (the best completed trial).
    """
    sign = -1.0 if spec.objective_type is ObjectiveType.MAXIMIZE else 1.0
    best = best_of(trials, spec)

    def order(t: Trial) -> tuple[int, float, int]:
        return (0, sign * t.objective, t.number) if has_objective(t) else (1, 0.0, t.number)  # type: ignore[operator]

    rows = []
    for t in sorted(trials, key=order):
        duration = t.duration_s
        rows.append({
            "trial": t.number + 1,
            "job name": t.job_name,
            "status": t.status.value,
            **{r.name: typed_value(r, t.hyperparameters.get(r.name)) for r in spec.ranges},
            "objective": t.objective,
            "epochs run": t.epochs_run,
            "duration (s)": round(duration, 1) if duration is not None else None,
            "pruned": t.status is TrialStatus.PRUNED,
            "best": best is not None and t.number == best.number,
        })
    columns = ["trial", "job name", "status", *(r.name for r in spec.ranges), "objective", "epochs run",
               "duration (s)", "pruned", "best"]
    return pd.DataFrame(rows, columns=columns)


def learning_curves(
    metrics_of: Callable[[str], Sequence[MetricPoint]], trials: Sequence[Trial], metric: str
) -> pd.DataFrame:
    """Per-epoch values of ``metric`` for every trial (columns trial, epoch, value).

    Args:
        metrics_of: a trial's training job name -> its metric points (``runner.metrics``, or
            ``JobStore.get_metrics`` locally). A job not found yet is skipped.
        trials: the trials to read.
        metric: the metric name, such as ``validation:accuracy``.

    Metric step 0 is epoch 1; when a step was reported twice (a resumed job) the last wins.
    """
    rows: list[dict[str, float | int]] = []
    for t in sorted(trials, key=lambda t: t.number):
        try:
            points = metrics_of(t.job_name)
        except NotFoundError:
            continue
        by_step = {p.step: p.value for p in sorted(points, key=lambda p: p.timestamp) if p.name == metric}
        rows += [{"trial": t.number + 1, "epoch": step + 1, "value": value} for step, value in sorted(by_step.items())]
    return pd.DataFrame(rows, columns=["trial", "epoch", "value"])
