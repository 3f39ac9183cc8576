"""The Profiler page's kernel view of a GPU trace window: findings first, then time by kernel and
by operator, launch-to-run latency, copies, synchronisations and idle time per step."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages._shared import show_error
from app_pages._timeline import load_window_index, pick_window
from core.profiler.kernels import KernelView, kernel_view, latency_histogram
from core.profiler.views import ProfileView

TOP = 20


@st.cache_resource(max_entries=4, show_spinner="Reading the kernels")
def _kernels(path: str, modified: float, first_step: int) -> KernelView | None:
    return kernel_view(load_window_index(path, modified), first_step=first_step)


def _latency_figure(kernels: KernelView) -> go.Figure:
    centres, counts = latency_histogram(kernels.latency_us)
    figure = go.Figure(go.Bar(x=centres, y=counts, marker={"color": "#f58518"}))
    figure.update_layout(height=260, margin={"t": 30, "b": 10}, title="Launch-to-run latency",
                         xaxis_title="µs from the launch to the kernel's start", yaxis_title="kernels")
    return figure


def show_kernels(name: str, view: ProfileView) -> None:
    picked = pick_window(view, f"kernels_window_{name}")
    if picked is None:
        return
    entry, _ = picked
    try:
        path = Path(str(entry["timeline"]))
        kernels = _kernels(str(path), path.stat().st_mtime, int(entry.get("first_step", 0)))
    except Exception as exc:
        show_error(exc)
        return
    if kernels is None:
        st.info("No GPU events in this trace window: the job ran on a CPU. The kernel view reads GPU traces "
                "(kernels, copies, launches).")
        return
    for finding in kernels.findings:
        st.warning(f"**{finding.title}**: {finding.message}.\n\nChange: {finding.change}.", icon=":material/memory:")
    if not kernels.findings:
        st.success("The GPU is kept busy: no kernel finding.", icon=":material/check_circle:")
    c = st.columns(3)
    c[0].metric("Kernels", f"{sum(k['calls'] for k in kernels.kernels):,}")
    c[1].metric("Synchronisations", f"{int(kernels.syncs['count'])} · {kernels.syncs['total ms']:.1f} ms")
    median = f"{float(pd.Series(kernels.latency_us).median()):.0f} µs" if len(kernels.latency_us) else "–"
    c[2].metric("Median launch-to-run", median)
    st.markdown("**GPU time per step**")
    st.dataframe(pd.DataFrame(kernels.steps), hide_index=True, key=f"kernels_steps_{name}",
                 column_config={k: st.column_config.NumberColumn(format="percent")
                                for k in ("GPU idle", "data", "H2D copies", "syncs")})
    left, right = st.columns(2)
    left.markdown("**Time by kernel**")
    share = {"share": st.column_config.NumberColumn(format="percent")}
    left.dataframe(pd.DataFrame(kernels.kernels[:TOP]), hide_index=True, key=f"kernels_by_kernel_{name}",
                   column_config=share)
    right.markdown("**Time by operator** (the CPU operator that launched the kernel)")
    right.dataframe(pd.DataFrame(kernels.operators[:TOP]), hide_index=True, key=f"kernels_by_operator_{name}",
                    column_config=share)
    if len(kernels.latency_us):
        st.plotly_chart(_latency_figure(kernels), key=f"kernels_latency_{name}")
    if kernels.copies:
        st.markdown("**Copies between host and device**")
        st.dataframe(pd.DataFrame(kernels.copies), hide_index=True, key=f"kernels_copies_{name}")
