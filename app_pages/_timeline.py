"""The Profiler page's timeline of a torch.profiler trace window: open at a step (chosen, or
clicked in the step-time chart), zoom by a time range; the server sends a bounded view."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages._shared import show_error
from core.profiler.timeline import TraceIndex, load_index, step_at, step_range, whole, window
from core.profiler.timeline_chart import timeline_figure
from core.profiler.views import ProfileView

WHOLE = "the whole window"


@st.cache_resource(max_entries=4, show_spinner="Loading the trace window's index")
def load_window_index(path: str, modified: float) -> TraceIndex:
    """Loaded once per index file (``modified`` is part of the key)."""
    return load_index(Path(path))


def clicked_time(event: Any) -> float | None:
    """Epoch seconds of the point clicked in a date-axis chart's selection event (None: no click)."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    if not points:
        return None
    x = points[0].get("x")
    return float(x) / 1000 if isinstance(x, int | float) else pd.Timestamp(x).timestamp()


def pick_window(view: ProfileView, key: str) -> tuple[Mapping[str, Any], str] | None:
    """The indexed trace window to show (a select when there are several) and its label; None,
    after saying why, when there is none or it could not be indexed."""
    windows = [w for w in view.operators.get("windows", []) if w.get("timeline") or w.get("timeline_error")]
    if not windows:
        st.info("No trace window indexed yet: the analysis indexes each torch.profiler window once it is written.")
        return None
    labels = [f"steps {w.get('first_step')} to {int(w.get('first_step', 0)) + int(w.get('steps', 0)) - 1}"
              for w in windows]
    chosen = st.selectbox("Trace window", range(len(windows)), format_func=labels.__getitem__,
                          key=key) if len(windows) > 1 else 0
    entry = windows[chosen or 0]
    if entry.get("timeline_error"):
        st.error(f"The trace cannot be read: {entry['timeline_error']}")
        return None
    return entry, labels[chosen or 0]


def show_timeline(name: str, view: ProfileView, clicked_s: float | None) -> None:
    picked = pick_window(view, f"timeline_window_{name}")
    if picked is None:
        return
    entry, label = picked
    path = Path(str(entry["timeline"]))
    try:
        index = load_window_index(str(path), path.stat().st_mtime)
    except Exception as exc:
        show_error(exc)
        return
    first = int(entry.get("first_step", 0))
    options = [WHOLE, *(first + i for i in range(len(index.steps)))]
    key = f"timeline_step_{name}_{first}"
    if clicked_s is not None and st.session_state.get(f"{key}_clicked") != clicked_s:  # a new click, once
        st.session_state[f"{key}_clicked"] = clicked_s
        clicked = step_at(index, clicked_s, first)
        if clicked is None:
            st.caption(f"The point clicked is outside the trace window ({label}).")
        else:
            st.session_state[key] = clicked
    c1, c2 = st.columns([1, 3])
    step = c1.selectbox("Open at", options, key=key, format_func=lambda o: o if o == WHOLE else f"step {o}")
    start, end = whole(index) if step == WHOLE else step_range(index, int(step), first)
    low, high = c2.slider("Zoom (ms from the window's start)", start / 1000, end / 1000,
                          (start / 1000, end / 1000), key=f"timeline_zoom_{name}_{first}_{step}")
    shown = window(index, low * 1000, high * 1000, first_step=first)
    st.plotly_chart(timeline_figure(shown, view.timeline, index.origin_s), key=f"timeline_chart_{name}")
    st.caption(f"{len(shown.events.start)} events drawn; {shown.hidden} shorter than a pixel folded into "
               f"{len(shown.folded.start)} boxes (zoom in to see them)."
               + ("" if index.has_gpu else " No GPU events in this trace: it ran on a CPU."))
    trace = path.with_name(str(entry.get("trace", "")))
    if trace.is_file():
        with trace.open("rb") as handle:
            st.download_button("Download the raw trace (Perfetto, chrome://tracing)", handle, file_name=trace.name,
                               mime="application/gzip", icon=":material/download:", key=f"timeline_raw_{name}")
