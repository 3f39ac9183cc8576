"""Plotly figures of a :class:`ProfileView` for the Profiler page (app environment only).

Times are epoch milliseconds on date axes; phases and epochs are background bands drawn as
layout shapes (one list, not one ``add_vrect`` call per band, which is slow for long jobs).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from core.profiler.data import PHASES
from core.profiler.views import ProfileView

BAND_COLOURS = {"initialization": "rgba(255,160,60,0.15)", "training": "rgba(31,119,180,0.07)",
                "evaluation": "rgba(44,160,44,0.15)", "finalization": "rgba(127,127,127,0.15)",
                "profiler window": "rgba(214,39,40,0.18)"}
PHASE_COLOURS = {"dataloader": "#ff7f0e", "forward": "#1f77b4", "backward": "#9467bd", "optimizer": "#2ca02c",
                 "other": "#7f7f7f"}
MB = 1024 * 1024


def _ms(times: Sequence[float]) -> list[float]:
    return [1000 * t for t in times]


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 320,
            "legend": {"orientation": "h", "y": -0.2}, "hovermode": "x unified", **extra}


def _bands(phases: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Background shapes for phases and annotations naming the epochs and the profiler window."""
    shapes, notes = [], []
    for phase in phases:
        x0, x1 = 1000 * phase["start"], 1000 * phase["end"]
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                       "fillcolor": BAND_COLOURS.get(phase["name"], "rgba(0,0,0,0.05)"), "line": {"width": 0},
                       "layer": "below"})
        if phase["name"] == "training" and phase.get("epoch") is not None:
            label = f"epoch {phase['epoch']}"
        elif phase["name"] in ("initialization", "profiler window", "evaluation"):
            label = phase["name"] if phase["name"] != "evaluation" else "eval"
        else:
            continue
        inside = phase["name"] == "profiler window"  # below the top edge, clear of the epoch label
        notes.append({"x": (x0 + x1) / 2, "y": 0.98 if inside else 1.0, "xref": "x", "yref": "paper", "text": label,
                      "showarrow": False, "font": {"size": 10}, "yanchor": "top" if inside else "bottom"})
    return shapes, notes


def utilisation_figure(view: ProfileView) -> go.Figure:
    """CPU, GPU, GPU memory and memory (percent) over time, with phases and epochs as bands."""
    timeline = view.timeline
    x = _ms(timeline.get("times", []))
    traces = [{"type": "scatter", "x": x, "y": timeline.get("cpu", []), "name": "CPU (mean of cores)"},
              {"type": "scatter", "x": x, "y": timeline.get("memory", []), "name": "memory"}]
    traces += [{"type": "scatter", "x": x, "y": v, "name": f"{k} utilisation"} for k, v in timeline.get("gpu", {}).items()]
    traces += [{"type": "scatter", "x": x, "y": v, "name": f"{k} memory", "line": {"dash": "dot"}}
               for k, v in timeline.get("gpu_memory", {}).items()]
    shapes, notes = _bands(view.phases)
    title = "Utilisation (%)" + ("" if view.has_gpu else " · no GPU in this job")
    return go.Figure(data=traces, layout=_layout(title, xaxis={"type": "date"}, yaxis={"range": [0, 105]},
                                                  shapes=shapes, annotations=notes))


def cores_heatmap(view: ProfileView) -> go.Figure:
    """Every core's utilisation over time."""
    cores = view.timeline.get("cores", [])
    return go.Figure(
        data=[{"type": "heatmap", "x": _ms(view.timeline.get("times", [])), "y": [f"cpu{i}" for i in range(len(cores))],
               "z": cores, "zmin": 0, "zmax": 100, "colorscale": "Viridis", "colorbar": {"title": {"text": "%"}}}],
        layout=_layout("CPU utilisation per core (%)", xaxis={"type": "date"}, hovermode="closest",
                       height=max(220, 60 + 18 * len(cores))),
    )


def io_figure(view: ProfileView) -> go.Figure:
    """Disk and network throughput (MB/s) and I/O wait (%, right axis)."""
    timeline = view.timeline
    x = _ms(timeline.get("times", []))
    traces: list[dict[str, Any]] = []
    for group, label in (("io", "disk"), ("network", "network")):
        for key, values in sorted(timeline.get(group, {}).items()):
            if key == "IOPS":
                continue
            name = key.replace("ThroughputInBytesPerSecond", "").replace("BytesPerSecond", "")
            traces.append({"type": "scatter", "x": x, "y": [None if v is None else v / MB for v in values],
                           "name": f"{label} {name.lower()} MB/s"})
    traces.append({"type": "scatter", "x": x, "y": timeline.get("iowait", []), "name": "I/O wait %", "yaxis": "y2",
                   "line": {"dash": "dot", "color": "#d62728"}})
    return go.Figure(data=traces, layout=_layout(
        "Disk and network I/O", xaxis={"type": "date"}, yaxis={"title": {"text": "MB/s"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "I/O wait %"}, "overlaying": "y", "side": "right", "range": [0, 100]}))


def step_histogram(view: ProfileView) -> go.Figure:
    """Step durations (ms); outliers (over mean + 3σ) in red, with the threshold marked."""
    steps = view.steps
    hist = steps.get("histogram", {"edges": [], "normal": [], "outlier": []})
    edges = hist["edges"]
    centres = [500 * (a + b) for a, b in itertools.pairwise(edges)]
    width = 1000 * (edges[1] - edges[0]) if len(edges) > 1 else 1
    threshold = 1000 * steps.get("threshold_s", 0)
    return go.Figure(
        data=[{"type": "bar", "x": centres, "y": hist["normal"], "name": "steps", "width": width,
               "marker": {"color": "#1f77b4"}},
              {"type": "bar", "x": centres, "y": hist["outlier"], "name": "outliers", "width": width,
               "marker": {"color": "#d62728"}}],
        layout=_layout(f"Step durations: {steps.get('outliers', 0)} outlier(s) above {threshold:.0f} ms",
                       barmode="stack", xaxis={"title": {"text": "ms"}}, yaxis={"title": {"text": "steps"}},
                       hovermode="closest",
                       shapes=[{"type": "line", "x0": threshold, "x1": threshold, "y0": 0, "y1": 1, "yref": "paper",
                                "line": {"color": "#d62728", "dash": "dash"}}]),
    )


def step_timeline(view: ProfileView) -> go.Figure:
    """Mean step duration over time, split into its phases (stacked, ms)."""
    timeline = view.steps.get("timeline", {})
    x = _ms(timeline.get("times", []))
    traces = [{"type": "scatter", "x": x, "y": [None if v is None else 1000 * v for v in timeline.get(p, [])],
               "name": p, "stackgroup": "phases", "line": {"color": PHASE_COLOURS[p], "width": 0.5}} for p in PHASES]
    shapes, notes = _bands(view.phases)
    return go.Figure(data=traces, layout=_layout(f"Step time by phase ({timeline.get('bucket_s', 0):g} s buckets, ms)",
                                                  xaxis={"type": "date"}, shapes=shapes, annotations=notes))


def phase_split_figure(view: ProfileView) -> go.Figure:
    """Data loading against compute: mean ms per phase of a training step, per epoch."""
    epochs = view.steps.get("per_epoch", [])
    x = [f"epoch {e['epoch']}" for e in epochs]
    traces = [{"type": "bar", "x": x, "y": [1000 * e[p] for e in epochs], "name": p,
               "marker": {"color": PHASE_COLOURS[p]}} for p in PHASES]
    return go.Figure(data=traces, layout=_layout("Data loading vs compute (mean ms per step)", barmode="stack",
                                                  hovermode="closest"))


def time_split_figure(view: ProfileView) -> go.Figure:
    """Where the job's time went: initialization, training, evaluation, finalization."""
    split = view.summary.get("time_split", {})
    return go.Figure(data=[{"type": "pie", "labels": list(split), "values": [round(v, 1) for v in split.values()],
                            "hole": 0.45, "sort": False}],
                     layout=_layout("Time by phase (s)", height=300, hovermode="closest"))


def build_figures(view: ProfileView) -> dict[str, go.Figure]:
    """Every figure of the page, by name (what the page's data preparation costs)."""
    return {"utilisation": utilisation_figure(view), "cores": cores_heatmap(view), "io": io_figure(view),
            "histogram": step_histogram(view), "step_timeline": step_timeline(view),
            "phase_split": phase_split_figure(view), "time_split": time_split_figure(view)}
