"""What the Tuning page shows: the leaderboard, parameter importance, charts, and form parsing.

Pure functions over :class:`Trial` records and their :class:`TuningJobSpec`; no Streamlit.
Trials are shown 1-based (trial 1 is training job ``<name>-001``).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.entities import MetricPoint
from core.errors import InvalidInputError, NotFoundError
from core.tuning.entities import Trial, TrialStatus
from core.tuning.search import direction as study_direction
from core.tuning.search import search_space, typed_params
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    ObjectiveType,
    ParameterRange,
    Scaling,
    TuningJobSpec,
    check_range,
    is_log_scale,
)

RANGE_TYPES = ("Continuous", "Integer", "Categorical")
"""The range types the form offers (SageMaker's ContinuousParameterRanges and so on)."""

DEFAULT_RANGE_ROWS: tuple[Mapping[str, str], ...] = (
    {"name": "lr", "type": "Continuous", "min": "0.0001", "max": "0.01", "values": "", "scaling": "Logarithmic"},
    {"name": "batch-size", "type": "Categorical", "min": "", "max": "", "values": "16, 32, 64", "scaling": "Auto"},
    {"name": "epochs", "type": "Integer", "min": "1", "max": "3", "values": "", "scaling": "Linear"},
)
"""The form's starting ranges: learning rate on a log scale, batch size categorical, epochs."""

FULL_TRAINING_DROPS = ("max-steps-per-epoch",)
"""Budget caps of the trials that a full training run leaves out."""


# --- the leaderboard -----------------------------------------------------------------------


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


def _has_objective(t: Trial) -> bool:
    return t.objective is not None and math.isfinite(t.objective)


def best_of(trials: Iterable[Trial], spec: TuningJobSpec) -> Trial | None:
    """The best completed trial (the rule of :meth:`Tuner.best_trial`); None if none completed."""
    done = [t for t in trials if t.status is TrialStatus.COMPLETED and _has_objective(t)]
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
        return (0, sign * t.objective, t.number) if _has_objective(t) else (1, 0.0, t.number)  # type: ignore[operator]

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


# --- parameter importance ------------------------------------------------------------------


def parameter_importance(spec: TuningJobSpec, trials: Sequence[Trial], *, seed: int = 0) -> dict[str, float]:
    """fANOVA importance of each tuned hyperparameter over the completed trials, summing to 1.

    Returns ``{}`` while fewer than two completed trials have different objectives, or when
    optuna cannot evaluate them (it never raises). Trials whose values fall outside the
    spec's ranges (warm-start trials of other ranges) are left out, and so are ranges with a
    single value (they explain nothing).
    """
    space = search_space(spec)
    frozen = []
    for t in trials:
        params = typed_params(spec, dict(t.hyperparameters))
        if t.status is not TrialStatus.COMPLETED or not _has_objective(t) or params is None:
            continue
        try:
            frozen.append(optuna.trial.create_trial(params=params, distributions=space, value=t.objective))
        except ValueError:  # a value outside a log range's domain, for instance
            continue
    varying = [name for name, dist in space.items() if not dist.single()]
    if len({t.value for t in frozen}) < 2 or not varying:
        return {}
    try:
        study = optuna.create_study(direction=study_direction(spec))  # in memory
        study.add_trials(frozen)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying)
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
        return {}
    result = {name: float(value) for name, value in importances.items()}
    return result if all(math.isfinite(v) for v in result.values()) else {}


# --- charts --------------------------------------------------------------------------------


def _empty_figure(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return figure


def objective_over_time(trials: Sequence[Trial], spec: TuningJobSpec) -> go.Figure:
    """Each finished trial's objective at its end time, by status, with the best-so-far line."""
    title = f"{spec.objective_metric} by trial over time"
    finished = [t for t in trials if _has_objective(t) and t.ended_at is not None]
    done = sorted(finished, key=lambda t: t.ended_at)  # type: ignore[arg-type, return-value]
    if not done:
        return _empty_figure(title, "No trial has finished with an objective yet")
    frame = pd.DataFrame([{"ended": pd.Timestamp(t.ended_at, unit="s"), "objective": t.objective,
                           "status": t.status.value, "trial": t.number + 1, "job name": t.job_name} for t in done])
    figure = px.scatter(frame, x="ended", y="objective", color="status", hover_data=["trial", "job name"], title=title)
    pick = max if spec.objective_type is ObjectiveType.MAXIMIZE else min
    best_x, best_y, best = [], [], None
    for t in done:
        if t.status is TrialStatus.COMPLETED:
            best = t.objective if best is None else pick(best, t.objective)  # type: ignore[type-var]
            best_x.append(pd.Timestamp(t.ended_at, unit="s"))
            best_y.append(best)
    if best_x:
        figure.add_trace(go.Scatter(x=best_x, y=best_y, mode="lines", line_shape="hv", name="best so far"))
    figure.update_layout(xaxis_title="trial ended", yaxis_title=spec.objective_metric)
    return figure


def _log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    powers = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks = [float(p) for p in powers if math.log10(low) <= p <= math.log10(high)]
    return ticks, [f"1e{int(p)}" for p in ticks]


def _dimension(r: ParameterRange, values: list[float | int | str]) -> dict[str, object]:
    if isinstance(r, CategoricalRange):
        return {"label": r.name, "values": [r.values.index(str(v)) for v in values],
                "tickvals": list(range(len(r.values))), "ticktext": list(r.values), "range": [0, len(r.values) - 1]}
    if is_log_scale(r):
        tickvals, ticktext = _log_ticks(r.min_value, r.max_value)
        return {"label": f"{r.name} (log10)", "values": [math.log10(float(v)) for v in values],
                "range": [math.log10(r.min_value), math.log10(r.max_value)], "tickvals": tickvals, "ticktext": ticktext}
    return {"label": r.name, "values": values, "range": [r.min_value, r.max_value]}


def _in_range(r: ParameterRange, value: float | int | str | None) -> bool:
    if value is None:
        return False
    if isinstance(r, CategoricalRange):
        return value in r.values
    return r.min_value <= float(value) <= r.max_value and (not is_log_scale(r) or float(value) > 0)


def parallel_coordinates(trials: Sequence[Trial], spec: TuningJobSpec) -> go.Figure:
    """One line per trial with an objective across every tuned hyperparameter, coloured by objective.

    Log-scaled ranges are drawn as log10 with power-of-ten ticks; categorical values are
    encoded by their position in the range, labelled with the value.
    """
    title = "Hyperparameters and objective"
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        values = [typed_value(r, t.hyperparameters.get(r.name)) for r in spec.ranges]
        if _has_objective(t) and all(_in_range(r, v) for r, v in zip(spec.ranges, values)):
            rows.append((values, t.objective))
    if not rows:
        return _empty_figure(title, "No trial has an objective yet")
    dimensions = [_dimension(r, [values[i] for values, _ in rows]) for i, r in enumerate(spec.ranges)]
    objectives = [objective for _, objective in rows]
    dimensions.append({"label": spec.objective_metric, "values": objectives})
    line = {"color": objectives, "colorscale": "Viridis", "showscale": True,
            "reversescale": spec.objective_type is ObjectiveType.MINIMIZE}
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line=line))
    figure.update_layout(title=title, margin={"l": 80, "r": 60, "t": 100})  # room for the outer axis labels
    return figure


def importance_bar(importances: Mapping[str, float]) -> go.Figure:
    """Horizontal bars of :func:`parameter_importance`, the most important on top."""
    title = "Parameter importance (fANOVA)"
    if not importances:
        return _empty_figure(title, "Needs two completed trials with different objectives")
    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h"))
    figure.update_layout(title=title, xaxis_title="share of the objective's variance")
    return figure


def learning_curves_figure(curves: pd.DataFrame, log_y: bool = False, *, metric: str = "value") -> go.Figure:
    """Lines of :func:`learning_curves`, one per trial, optionally with a log-scale y axis."""
    title = f"Learning curves: {metric}"
    if curves.empty:
        return _empty_figure(title, "No trial has reported a value yet")
    frame = curves.assign(trial=curves["trial"].astype(str))
    figure = px.line(frame, x="epoch", y="value", color="trial", markers=True, log_y=log_y, title=title)
    figure.update_layout(yaxis_title=metric, xaxis={"dtick": 1})
    return figure


# --- the launch form -----------------------------------------------------------------------


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw).strip() == ""


def _number(raw: object, name: str, which: str, *, integer: bool) -> float | int:
    if _blank(raw):
        raise InvalidInputError(f"parameter {name}: give a {which} value")
    try:
        number = float(str(raw).strip())
    except ValueError:
        raise InvalidInputError(f"parameter {name}: {which} {str(raw).strip()!r} is not a number") from None
    if not integer:
        return number
    if not number.is_integer():
        raise InvalidInputError(f"parameter {name}: {which} {str(raw).strip()!r} is not a whole number")
    return int(number)


def _values(raw: object) -> tuple[str, ...]:
    if _blank(raw):
        return ()
    items = str(raw).split(",") if isinstance(raw, str) else [str(v) for v in raw]  # type: ignore[attr-defined]
    return tuple(v.strip() for v in items if v.strip())


def build_ranges(rows: Iterable[Mapping[str, object]]) -> list[ParameterRange]:
    """Ranges from the form's rows; a row with no name is unused and skipped.

    Each row has ``name``, ``type`` (one of :data:`RANGE_TYPES`), ``min`` and ``max`` (numeric
    types; strings or numbers), ``values`` (categorical; comma-separated or a list) and
    ``scaling`` (Auto, Linear or Logarithmic; empty means Auto).

    Raises:
        InvalidInputError: a row that does not make a valid range; the message names it.
    """
    ranges: list[ParameterRange] = []
    for row in rows:
        if _blank(row.get("name")):
            continue
        name = str(row["name"]).strip()
        kind = "" if _blank(row.get("type")) else str(row["type"]).strip().capitalize()
        if kind not in RANGE_TYPES:
            choices = ", ".join(RANGE_TYPES)
            raise InvalidInputError(f"parameter {name}: type {kind or 'missing'}, choose one of {choices}")
        r: ParameterRange
        if kind == "Categorical":
            r = CategoricalRange(name, _values(row.get("values")))
        else:
            scaling_text = "Auto" if _blank(row.get("scaling")) else str(row["scaling"]).strip()
            try:
                scaling = Scaling(scaling_text)
            except ValueError:
                valid = ", ".join(s.value for s in Scaling)
                raise InvalidInputError(f"parameter {name}: scaling {scaling_text!r} is not one of {valid}") from None
            integer = kind == "Integer"
            low = _number(row.get("min"), name, "min", integer=integer)
            high = _number(row.get("max"), name, "max", integer=integer)
            r = (IntegerRange(name, int(low), int(high), scaling) if integer
                 else ContinuousRange(name, float(low), float(high), scaling))
        check_range(r)
        ranges.append(r)
    return ranges


def fixed_hyperparameters(
    ranges: Sequence[ParameterRange], values: Mapping[str, str | int | float | None]
) -> dict[str, str | int | float]:
    """The static hyperparameters of the form: those given, less any that are tuned."""
    tuned = {r.name for r in ranges}
    return {k: v for k, v in values.items() if k not in tuned and not _blank(v)}  # type: ignore[misc]


def full_training_hyperparameters(best: Mapping[str, str], epochs: int) -> dict[str, str | int | float]:
    """The best trial's hyperparameters for a full run: ``epochs`` epochs, no trial budget caps.

    Raises:
        InvalidInputError: epochs below 1.
    """
    if epochs < 1:
        raise InvalidInputError("epochs: at least 1")
    hyperparameters: dict[str, str | int | float] = {k: v for k, v in best.items() if k not in FULL_TRAINING_DROPS}
    hyperparameters["epochs"] = epochs
    return hyperparameters
