"""Plotly figures of the Debugger page, built from the frames of ``core.debugger.views``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def loss_figure(curves: pd.DataFrame) -> go.Figure:
    """Training loss (batches faint, moving mean bold) and validation pass means, by step."""
    figure = go.Figure()
    styles: dict[str, dict[str, object]] = {"train (batch)": {"opacity": 0.3, "line": {"width": 1}},
                                            "validation (pass mean)": {"mode": "lines+markers"}}
    for series, part in curves.groupby("series", sort=False):
        style = {"mode": "lines", **styles.get(str(series), {})}
        figure.add_trace(go.Scatter(x=part["step"], y=part["loss"], name=str(series), **style))
    figure.update_layout(title="Loss: train vs validation", xaxis_title="global step", yaxis_title="loss",
                         legend_title=None, margin={"t": 50})
    if not curves.empty and curves["loss"].max() > 0 and curves["loss"].max() / max(curves["loss"].min(), 1e-12) > 100:
        figure.update_yaxes(type="log")
    return figure


def heatmap_figure(matrix: pd.DataFrame, *, title: str, log: bool = True) -> go.Figure:
    """A layers x steps heatmap; values shown as log10 when ``log`` (norms span decades)."""
    values = matrix.to_numpy(dtype=float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(values > 0, np.log10(values), np.nan)
    figure = go.Figure(go.Heatmap(z=values, x=[str(c) for c in matrix.columns], y=list(matrix.index),
                                  colorscale="Viridis", colorbar={"title": "log10" if log else ""},
                                  hovertemplate="step %{x}<br>%{y}<br>value %{customdata:.3g}<extra></extra>",
                                  customdata=matrix.to_numpy(dtype=float)))
    figure.update_layout(title=title, xaxis_title="global step", height=max(350, 12 * len(matrix) + 120),
                         yaxis={"autorange": "reversed", "tickfont": {"size": 9}}, margin={"t": 50})
    return figure


def stats_figure(stats: pd.DataFrame, *, title: str) -> go.Figure:
    """A tensor over steps: the min-max band, mean ± std, and the mean."""
    figure = go.Figure()
    if {"min", "max"} <= set(stats.columns):
        figure.add_trace(go.Scatter(x=stats["step"], y=stats["max"], name="max", line={"width": 0.5, "color": "gray"}))
        figure.add_trace(go.Scatter(x=stats["step"], y=stats["min"], name="min", fill="tonexty",
                                    fillcolor="rgba(128,128,128,0.15)", line={"width": 0.5, "color": "gray"}))
    if {"mean", "std"} <= set(stats.columns):
        figure.add_trace(go.Scatter(x=stats["step"], y=stats["mean"] + stats["std"], name="mean + std",
                                    line={"dash": "dot", "color": "#1f77b4"}))
        figure.add_trace(go.Scatter(x=stats["step"], y=stats["mean"] - stats["std"], name="mean - std",
                                    line={"dash": "dot", "color": "#1f77b4"}, fill="tonexty",
                                    fillcolor="rgba(31,119,180,0.15)"))
    if "mean" in stats.columns:
        figure.add_trace(go.Scatter(x=stats["step"], y=stats["mean"], name="mean", line={"color": "#1f77b4"}))
    figure.update_layout(title=title, xaxis_title="global step", margin={"t": 50})
    return figure


def line_figure(stats: pd.DataFrame, columns: list[str], *, title: str, log: bool = False) -> go.Figure:
    """Some reduction columns of a tensor over steps."""
    present = [c for c in columns if c in stats.columns]
    long = stats.melt(id_vars="step", value_vars=present, var_name="reduction", value_name="value")
    figure = px.line(long, x="step", y="value", color="reduction", title=title, log_y=log, markers=True)
    figure.update_layout(xaxis_title="global step", margin={"t": 50})
    return figure


def profile_figure(profile: pd.DataFrame, *, title: str) -> go.Figure:
    """Each layer's distribution at one step: a min-max bar with mean ± std."""
    figure = go.Figure()
    figure.add_trace(go.Bar(x=profile["layer"], y=profile["max"] - profile["min"], base=profile["min"],
                            name="min to max", marker_color="rgba(128,128,128,0.35)"))
    figure.add_trace(go.Scatter(x=profile["layer"], y=profile["mean"], mode="markers", name="mean ± std",
                                error_y={"type": "data", "array": profile["std"]}, marker={"color": "#1f77b4"}))
    figure.update_layout(title=title, xaxis={"tickangle": -60, "tickfont": {"size": 8}}, margin={"t": 50}, height=450)
    return figure
