"""Plotly figures of the Tuning page: objective over time, parallel coordinates, importance, curves.

Each figure says so in an annotation when it has nothing to draw yet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeGuard

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from core.tuning.entities import Trial, TrialStatus
from core.tuning.spec import CategoricalRange, ObjectiveType, ParameterRange, TuningJobSpec, is_log_scale
from core.tuning.views import has_objective, typed_value


def _empty_figure(title: str, message: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return figure


def objective_over_time(trials: Sequence[Trial], spec: TuningJobSpec) -> go.Figure:
    """Each finished trial's objective at its end time, by status, with the best-so-far line."""
    title = f"{spec.objective_metric} by trial over time"
    finished = [t for t in trials if has_objective(t) and t.ended_at is not None]
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


def _all_in_range(values: list[float | int | str | None],
                  ranges: Sequence[ParameterRange]) -> TypeGuard[list[float | int | str]]:
    """Whether every value lies in its range (so none is missing)."""
    return all(_in_range(r, v) for r, v in zip(ranges, values))


def parallel_coordinates(trials: Sequence[Trial], spec: TuningJobSpec) -> go.Figure:
    """One line per trial with an objective across every tuned hyperparameter, coloured by objective.

    Log-scaled ranges are drawn as log10 with power-of-ten ticks; categorical values are
    encoded by their position in the range, labelled with the value.
    """
    title = "Hyperparameters and objective"
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        values = [typed_value(r, t.hyperparameters.get(r.name)) for r in spec.ranges]
        if has_objective(t) and _all_in_range(values, spec.ranges):
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
    """Horizontal bars of :func:`core.tuning.importance.parameter_importance`, the most important on top."""
    title = "Parameter importance (fANOVA)"
    if not importances:
        return _empty_figure(title, "Needs two completed trials with different objectives")
    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h"))
    figure.update_layout(title=title, xaxis_title="share of the objective's variance")
    return figure


def learning_curves_figure(curves: pd.DataFrame, log_y: bool = False, *, metric: str = "value") -> go.Figure:
    """Lines of :func:`core.tuning.views.learning_curves`, one per trial, optionally with a log-scale y axis."""
    title = f"Learning curves: {metric}"
    if curves.empty:
        return _empty_figure(title, "No trial has reported a value yet")
    frame = curves.assign(trial=curves["trial"].astype(str))
    figure = px.line(frame, x="epoch", y="value", color="trial", markers=True, log_y=log_y, title=title)
    figure.update_layout(yaxis_title=metric, xaxis={"dtick": 1})
    return figure
