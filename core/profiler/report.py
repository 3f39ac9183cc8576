"""The downloadable profiler report: one self-contained HTML file (inline CSS and SVG, no scripts).

Built from the pre-aggregated documents (:func:`core.profiler.aggregate.build_documents`), so the
sidecar writes it after every pass and it opens anywhere offline. Sections follow SageMaker's
ProfilerReport: summary, rules, system usage statistics, time split, utilisation, step
durations, data loading against compute, top operators.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from core.profiler.data import PHASES

WIDTH, HEIGHT, PAD = 860, 220, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
PHASE_FILL = {"initialization": "#fde2c4", "training": "#e3eefa", "evaluation": "#e6f4e4",
              "finalization": "#eee", "profiler window": "#f6d5e6"}
STATUS_MARK = {"IssuesFound": "⚠ issues found", "NoIssuesFound": "✓ no issues", "NotApplicable": "– not applicable",
               "InsufficientData": "… not enough data"}
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:900px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
th{background:#f5f5f5}.fired{background:#fff3e0}.num{text-align:right}.muted{color:#777;font-size:12px}
svg{background:#fff;border:1px solid #eee}
"""


def render_report(documents: Mapping[str, Mapping[str, Any]], job_name: str) -> str:
    """The report of one job as an HTML string."""
    summary = documents.get("summary", {})
    sections = [
        f"<h1>Profiler report: {_e(job_name)}</h1>",
        _summary(summary, documents.get("steps", {})),
        _rules(documents.get("findings", {}).get("findings", [])),
        _usage(summary.get("usage", {})),
        _time_split(summary.get("time_split", {})),
        _utilisation(documents.get("timeline", {}), documents.get("phases", {}).get("phases", [])),
        _steps(documents.get("steps", {})),
        _phase_split(documents.get("steps", {})),
        _operators(documents.get("operators", {})),
    ]
    body = "\n".join(s for s in sections if s)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Profiler report: {_e(job_name)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], classes: Sequence[str] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if any(header) else ""
    lines = []
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if i < len(classes) and classes[i] else ""
        cells = "".join(f"<td class='num'>{_fmt(v)}</td>" if isinstance(v, (int, float)) else f"<td>{_e(v)}</td>"
                        for v in row)
        lines.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}{''.join(lines)}</table>"


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "–"


def _summary(summary: Mapping[str, Any], steps: Mapping[str, Any]) -> str:
    job = summary.get("job", {})
    first, last = summary.get("first_sample"), summary.get("last_sample")
    rows = [
        ("state", summary.get("state", "–")),
        ("node", summary.get("node_id", "–")),
        ("generated", _when(summary.get("updated_at"))),
        ("monitored", f"{_when(first)} to {_when(last)}" if first else "no samples"),
        ("samples", f"{summary.get('samples', 0)} every {1000 * (summary.get('interval_s') or 0):.0f} ms"),
        ("cores / GPUs", f"{summary.get('cores', 0)} / {summary.get('gpus', 0)} {' '.join(job.get('gpu_names', []))}"),
        ("device, batch size, workers", f"{job.get('device', '–')}, {job.get('batch_size', '–')}, "
                                        f"{job.get('num_workers', '–')}"),
        ("training steps", f"{steps.get('count', 0)} (mean {1000 * steps.get('mean_s', 0):.0f} ms, "
                           f"{steps.get('images_per_s', 0):.1f} images/s)"),
    ]
    errors = "".join(f"<p class='muted'>⚠ {_e(e)}</p>" for e in summary.get("errors", []))
    return "<h2>Job summary</h2>" + _table(("", ""), rows) + errors


def _rules(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return ""
    ordered = sorted(findings, key=lambda f: f["status"] != "IssuesFound")
    rows = [(f["rule"], STATUS_MARK.get(f["status"], f["status"]), f["message"], f.get("recommendation", ""))
            for f in ordered]
    fired = sum(f["status"] == "IssuesFound" for f in findings)
    return (f"<h2>Rules summary</h2><p>{fired} of {len(findings)} rules found issues.</p>"
            + _table(("rule", "status", "what it saw", "recommendation"), rows,
                     ["fired" if f["status"] == "IssuesFound" else "" for f in ordered]))


def _usage(usage: Mapping[str, Mapping[str, float]]) -> str:
    if not usage:
        return ""
    rows = [(name, v["max"], v["p99"], v["p95"], v["p50"], v["min"]) for name, v in usage.items()]
    return ("<h2>System usage statistics</h2><p class='muted'>Percent, except disk and network (per second).</p>"
            + _table(("metric", "max", "p99", "p95", "p50", "min"), rows))


def _time_split(split: Mapping[str, float]) -> str:
    total = sum(split.values())
    if total <= 0:
        return ""
    x, bars, legend = 0.0, [], []
    for i, (name, seconds) in enumerate(split.items()):
        w = (WIDTH - 2) * seconds / total
        colour = PHASE_FILL.get(name, COLOURS[i % len(COLOURS)])
        bars.append(f"<rect x='{x:.1f}' y='0' width='{w:.1f}' height='24' fill='{colour}' stroke='#999'/>")
        legend.append(f"{_e(name)} {seconds:.1f} s ({100 * seconds / total:.0f}%)")
        x += w
    return (f"<h2>Time by phase</h2><svg width='{WIDTH}' height='26'>{''.join(bars)}</svg>"
            f"<p class='muted'>{' · '.join(legend)}</p>")


def _line_chart(times: Sequence[float], series: Mapping[str, Sequence[float | None]], *, y_max: float | None,
                unit: str, phases: Sequence[Mapping[str, Any]] = ()) -> str:
    """SVG lines over time; None values break a line. Phases shade the background."""
    if not times:
        return ""
    t0, t1 = times[0], times[-1] if times[-1] > times[0] else times[0] + 1
    values = [v for s in series.values() for v in s if v is not None]
    top = y_max or max([*values, 1.0]) * 1.1
    w, h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD // 2 - 20

    def x(t: float) -> float:
        return PAD + w * (t - t0) / (t1 - t0)

    def y(v: float) -> float:
        return 10 + h * (1 - min(v, top) / top)

    parts = []
    for phase in phases:
        if phase["end"] < t0 or phase["start"] > t1:
            continue
        a, b = x(max(phase["start"], t0)), x(min(phase["end"], t1))
        parts.append(f"<rect x='{a:.1f}' y='10' width='{max(b - a, 1):.1f}' height='{h}' "
                     f"fill='{PHASE_FILL.get(phase['name'], '#eee')}'><title>{_e(phase['name'])}</title></rect>")
    for i, (name, points) in enumerate(series.items()):
        segments: list[list[str]] = []
        current: list[str] = []
        for t, v in zip(times, points):
            if v is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(f"{x(t):.1f},{y(v):.1f}")
        segments.append(current)
        colour = COLOURS[i % len(COLOURS)]
        parts += [f"<polyline fill='none' stroke='{colour}' stroke-width='1.3' points='{' '.join(s)}'/>"
                  for s in segments if s]
        parts.append(f"<text x='{PAD + 120 * i}' y='{HEIGHT - 4}' font-size='11' fill='{colour}'>{_e(name)}</text>")
    parts.append(f"<text x='2' y='16' font-size='10'>{top:.0f}{_e(unit)}</text>"
                 f"<text x='2' y='{10 + h}' font-size='10'>0</text>"
                 f"<text x='{WIDTH - PAD - 60}' y='{HEIGHT - 4}' font-size='10'>{t1 - t0:.0f} s</text>")
    return f"<svg width='{WIDTH}' height='{HEIGHT}'>{''.join(parts)}</svg>"


def _utilisation(timeline: Mapping[str, Any], phases: Sequence[Mapping[str, Any]]) -> str:
    if not timeline.get("samples"):
        return ""
    series: dict[str, Sequence[float | None]] = {"CPU": timeline["cpu"], "memory": timeline["memory"]}
    series.update({f"{k} util": v for k, v in timeline.get("gpu", {}).items()})
    series.update({f"{k} memory": v for k, v in timeline.get("gpu_memory", {}).items()})
    note = "" if timeline.get("gpu") else "<p class='muted'>No GPU in this job.</p>"
    shading = " · ".join(f"<span style='background:{c}'>{_e(n)}</span>" for n, c in PHASE_FILL.items())
    return ("<h2>Utilisation</h2>" + _line_chart(timeline["times"], series, y_max=100, unit="%", phases=phases)
            + f"<p class='muted'>{timeline['bucket_s']:g} s buckets; background: {shading}</p>{note}")


def _steps(steps: Mapping[str, Any]) -> str:
    if not steps.get("count"):
        return ""
    hist = steps["histogram"]
    edges, normal, outlier = hist["edges"], hist["normal"], hist["outlier"]
    top = max(*(normal + outlier), 1)
    w = (WIDTH - 2 * PAD) / max(len(normal), 1)
    bars = []
    for i, (n, o) in enumerate(zip(normal, outlier)):
        for count, colour, offset in ((n, "#1f77b4", 0), (o, "#d62728", n)):
            if count:
                height = 150 * count / top
                base = 170 - 150 * offset / top
                bars.append(f"<rect x='{PAD + i * w:.1f}' y='{base - height:.1f}' width='{max(w - 1, 1):.1f}' "
                            f"height='{height:.1f}' fill='{colour}'><title>{edges[i]:.3f}–{edges[i + 1]:.3f} s: "
                            f"{count}</title></rect>")
    axis = (f"<text x='{PAD}' y='190' font-size='10'>{edges[0]:.3f} s</text>"
            f"<text x='{WIDTH - PAD - 50}' y='190' font-size='10'>{edges[-1]:.3f} s</text>")
    text = (f"{steps['count']} steps: mean {1000 * steps['mean_s']:.0f} ms, p50 {1000 * steps['p50_s']:.0f} ms, "
            f"p95 {1000 * steps['p95_s']:.0f} ms, max {1000 * steps['max_s']:.0f} ms; {steps['outliers']} outlier(s) "
            f"above {1000 * steps['threshold_s']:.0f} ms (red); {steps['profiled_steps']} step(s) in the "
            "torch.profiler window left out.")
    return (f"<h2>Step durations</h2><svg width='{WIDTH}' height='200'>{''.join(bars)}{axis}</svg>"
            f"<p class='muted'>{_e(text)}</p>")


def _phase_split(steps: Mapping[str, Any]) -> str:
    epochs = steps.get("per_epoch", [])
    if not epochs:
        return ""
    totals = steps.get("phases_total", {})
    whole = sum(totals.values()) or 1.0
    share = ", ".join(f"{p} {100 * totals.get(p, 0) / whole:.0f}%" for p in PHASES)
    rows = [(e["epoch"], e["steps"], *(1000 * e[p] for p in PHASES), 1000 * e["duration"], e["images_per_s"])
            for e in epochs]
    return ("<h2>Data loading against compute</h2>"
            f"<p>Share of training-step time: {_e(share)}.</p>"
            + _table(("epoch", "steps", *(f"{p} ms" for p in PHASES), "step ms", "images/s"), rows))


def _operators(operators: Mapping[str, Any]) -> str:
    windows = operators.get("windows", [])
    if not windows:
        return "<h2>Top operators</h2><p class='muted'>No torch.profiler window was recorded.</p>"
    out = ["<h2>Top operators</h2>",
           "<p class='muted'>" + "; ".join(f"{w.get('steps')} step(s) from step {w.get('first_step')}, trace "
                                           f"{_e(w.get('trace'))}" for w in windows) + "</p>"]
    for title, key, rows in (("CPU (by self time)", "self_cpu_ms", operators.get("cpu", [])),
                             ("GPU (by self time)", "self_device_ms", operators.get("gpu", []))):
        if rows:
            out.append(f"<h3>{title}</h3>" + _table(
                ("operator", "calls", "self ms", "total ms", "memory MB"),
                [(r["name"], r.get("calls", 0), r.get(key, 0.0),
                  r.get("cpu_total_ms" if key == "self_cpu_ms" else "device_total_ms", 0.0),
                  r.get("cpu_memory_mb" if key == "self_cpu_ms" else "device_memory_mb", 0.0)) for r in rows[:15]]))
    return "".join(out)
