"""The timeline figure: system-metric lines above, then the step and phase bands, then one lane per
CPU thread and GPU stream, all on one time axis (milliseconds from the trace window's start)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.profiler.timeline import Boxes, TimelineView

KIND_COLOURS = {"cpu": "#4c78a8", "launch": "#f58518", "kernel": "#54a24b", "memcpy": "#e45756",
                "memset": "#b279a2", "annotation": "#9d755d", "other": "#bab0ac"}
PHASE_COLOURS = {"dataloader": "#e45756", "forward": "#4c78a8", "backward": "#72b7b2", "optimizer": "#f58518"}
STEP_LANE, PHASE_LANE = "steps", "phases"
_MS = 1e-3  # µs to ms


def _bars(boxes: Boxes, kind: str, *, folded: bool) -> go.Bar:
    rows = [i for i, k in enumerate(boxes.kind) if k == kind]
    return go.Bar(
        y=[boxes.lane[i] for i in rows], x=[boxes.dur[i] * _MS for i in rows],
        base=[boxes.start[i] * _MS for i in rows], orientation="h", name=f"{kind} (folded)" if folded else kind,
        legendgroup=kind, marker={"color": KIND_COLOURS[kind], "opacity": 0.45 if folded else 0.9},
        customdata=[boxes.label[i] for i in rows],
        hovertemplate="%{customdata}<br>%{base:.3f} ms, %{x:.3f} ms<extra>%{y}</extra>",
    )


def _band(lane: str, rows: list[tuple[str, float, float]], colours: Mapping[str, str]) -> list[go.Bar]:
    by_label: dict[str, list[tuple[float, float]]] = {}
    for label, start, end in rows:
        by_label.setdefault(label, []).append((start, end))
    return [go.Bar(y=[lane] * len(spans), x=[(e - s) * _MS for s, e in spans], base=[s * _MS for s, _ in spans],
                   orientation="h", name=label, marker={"color": colours.get(label, "#bab0ac")},
                   hovertemplate=f"{label}<br>%{{base:.3f}} ms, %{{x:.3f}} ms<extra></extra>")
            for label, spans in by_label.items()]


def _steps(view: TimelineView) -> go.Bar:
    """The step band: one bar per step, named on it, in alternating greys."""
    return go.Bar(y=[STEP_LANE] * len(view.steps), x=[(e - s) * _MS for _, s, e in view.steps],
                  base=[s * _MS for _, s, e in view.steps], orientation="h", showlegend=False,
                  text=[f"step {n}" for n, _, _ in view.steps], textposition="inside", insidetextanchor="middle",
                  marker={"color": ["#d9d9d9" if n % 2 else "#bdbdbd" for n, _, _ in view.steps]},
                  hovertemplate="%{text}<br>%{base:.3f} ms, %{x:.3f} ms<extra></extra>")


def _system_lines(system: Mapping[str, Any], origin_s: float, view: TimelineView) -> list[go.Scatter]:
    """CPU and GPU utilisation (%) at the samples inside the view, as ms from the window's start."""
    times = system.get("times") or []
    lo, hi = view.t0 * _MS - 1000, view.t1 * _MS + 1000  # one sample either side at 1 s sampling
    keep = [i for i, t in enumerate(times) if lo <= (t - origin_s) * 1000 <= hi]
    series = [("CPU %", system.get("cpu") or [])]
    series += [(f"{gpu} %", values) for gpu, values in sorted((system.get("gpu") or {}).items())]
    return [go.Scatter(x=[(times[i] - origin_s) * 1000 for i in keep], y=[values[i] for i in keep], name=name,
                       mode="lines+markers", line_shape="hv")
            for name, values in series if values]


def timeline_figure(view: TimelineView, system: Mapping[str, Any], origin_s: float) -> go.Figure:
    """The view as a figure; ``system``: the profile's timeline document (utilisation series)."""
    lanes = [STEP_LANE, PHASE_LANE, *view.lanes]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.2, 0.8], vertical_spacing=0.03)
    for line in _system_lines(system, origin_s, view):
        figure.add_trace(line, row=1, col=1)
    figure.add_trace(_steps(view), row=2, col=1)
    for bar in _band(PHASE_LANE, list(view.phases), PHASE_COLOURS):
        figure.add_trace(bar, row=2, col=1)
    for kind in KIND_COLOURS:
        for boxes, folded in ((view.events, False), (view.folded, True)):
            if kind in boxes.kind:
                figure.add_trace(_bars(boxes, kind, folded=folded), row=2, col=1)
    figure.update_layout(barmode="overlay", height=280 + 28 * len(lanes), margin={"t": 40, "b": 10},
                         legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"})
    figure.update_yaxes(title_text="%", range=[0, 105], row=1, col=1)
    figure.update_yaxes(categoryorder="array", categoryarray=lanes[::-1], row=2, col=1)
    figure.update_xaxes(title_text="ms from the window's start", range=[view.t0 * _MS, view.t1 * _MS], row=2, col=1)
    return figure
