"""EC2 Spot: prices and cost, launch an interruption-safe training run, follow it, survive interruptions."""

from __future__ import annotations

import time

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app_pages._shared import JOB_QUERY_PARAM, backend, rerun_after_change, show_error
from core.catalog import list_datasets
from core.job_environment import waiting_notice
from core.spot import (
    AWS_NOTICE_S,
    MAX_VOLUME_GB,
    SpotManager,
    SpotRun,
    SpotRunSpec,
    estimate_cost,
    find_reference,
    instance_intervals,
    interruptions,
    parse_interrupt_schedule,
    run_cost,
)
from core.spot.pricing import latest_prices, synthetic_reasons
from core.training.launch import DEFAULT_HYPERPARAMETERS, MODELS, new_job_name, rule_action_hyperparameters

POLL_SECONDS = 2
MARKERS = {"notice": ("orange", "triangle-down"), "checkpoint": ("green", "circle"), "interrupted": ("red", "x"),
           "resume": ("blue", "triangle-right"), "start": ("blue", "triangle-right"),
           "completed": ("black", "star"), "failed": ("black", "x-thin")}

st.title("EC2 Spot")
be = backend()
spot: SpotManager = be.spot
datasets = list_datasets(be)


def _prices() -> float | None:
    """The price history chart; returns the mean current spot price of the chosen types."""
    st.subheader("Spot price history")
    c1, c2 = st.columns([3, 1])
    types = c1.multiselect("Instance types", spot.instance_types, spot.instance_types[:2], key="spot_price_types")
    days = c2.slider("Days", 1, 90, 7, key="spot_price_days")
    try:
        points = spot.price_history(types, days=days)
    except Exception as exc:
        show_error(exc)
        return None
    if not points:
        st.info("EC2 returned no spot prices for these types in this region.")
        return None
    reasons = synthetic_reasons(points, window_start=time.time() - days * 86400)
    if reasons:
        st.warning("These prices look synthetic (a mock such as moto, not EC2's market): " + "; ".join(reasons))
    frame = pd.DataFrame([{"time": pd.Timestamp(p.timestamp, unit="s"), "price": p.price,
                           "series": f"{p.instance_type} {p.zone}"} for p in points])
    figure = go.Figure([go.Scatter(x=g["time"], y=g["price"], name=name, mode="lines+markers", line_shape="hv")
                        for name, g in frame.groupby("series")])
    figure.update_layout(yaxis_title="USD per hour", height=320, margin={"t": 10, "b": 0})
    st.plotly_chart(figure, key="spot_price_chart")
    latest = latest_prices(points)
    st.dataframe(pd.DataFrame([{"instance type": t, "zone": z, "spot $/h": p.price}
                               for (t, z), p in sorted(latest.items())]), hide_index=True, key="spot_latest")
    if reasons:
        st.caption("Placeholder prices are not used for the estimate below: enter a spot price.")
        return None
    return sum(p.price for p in latest.values()) / len(latest)


def _cost_inputs(spot_default: float | None) -> tuple[float, float, float]:
    st.subheader("Cost estimate")
    if spot.has_price_feed:
        st.caption("Spot price: the mean of the current prices above (edit it); on-demand price: entered by you.")
    else:
        st.caption("This backend has no price feed: these figures use the prices you enter.")
    c1, c2, c3 = st.columns(3)
    spot_price = c1.number_input("Spot price (USD/h)" if spot.has_price_feed else "Spot price (USD/h, entered)",
                                 0.0001, 1000.0,
                                 max(float(spot_default or 0.30), 0.0001), format="%.4f", key="spot_price")
    on_demand = c2.number_input("On-demand price (USD/h, entered)", 0.0001, 1000.0, 1.006, format="%.4f",
                                key="spot_on_demand")
    hours = c3.number_input("Expected hours", 0.01, 10000.0, 1.0, key="spot_hours")
    estimate = estimate_cost(hours, spot_price, on_demand, source="entered by the user")
    c1, c2, c3 = st.columns(3)
    c1.metric("Spot", f"${estimate.spot_cost:,.2f}")
    c2.metric("On-demand", f"${estimate.on_demand_cost:,.2f}")
    c3.metric("Saving", f"{estimate.savings_fraction:.0%}", f"${estimate.savings:,.2f}", delta_color="off")
    return spot_price, on_demand, hours


def _instance_labels() -> dict[str, str]:
    """Each type's name with its vCPUs, memory and GPUs (the names alone where they cannot be asked)."""
    try:
        return {t.name: t.label for t in spot.described_instance_types()}
    except Exception as exc:
        show_error(exc)
        return {}


def _launch_form(spot_price: float, on_demand: float, hours: float) -> None:
    if not datasets:
        st.info("Ingest a dataset on the Data page first.")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
        return
    dataset = st.selectbox("Dataset", [d.name for d in datasets], key="spot_dataset")
    c1, c2, c3, c4 = st.columns(4)
    model = c1.selectbox("Model", MODELS, key="spot_model")
    epochs = c2.number_input("Epochs", 1, 200, int(DEFAULT_HYPERPARAMETERS["epochs"]), key="spot_epochs")
    image_size = c3.selectbox("Image size (px)", [32, 64, 96, 128, 224], index=1, key="spot_image_size")
    seed = c4.number_input("Seed", 0, 2**31 - 1, int(DEFAULT_HYPERPARAMETERS["seed"]), key="spot_seed")
    c1, c2 = st.columns([3, 1])
    labels = _instance_labels()
    instance_type = c1.selectbox("Instance type", spot.instance_types, key="spot_instance_type",
                                 format_func=lambda name: labels.get(name, name),
                                 disabled=len(spot.instance_types) == 1)
    volume = c2.number_input("Root volume (GB, 0: the AMI's)", 0, MAX_VOLUME_GB, 0, key="spot_volume",
                             disabled=not spot.has_volume_size,
                             help="The instance's EBS volume (gp3): the dataset, checkpoints and the model. The "
                                  "simulator's instances use this machine's disk")
    c1, c2, c3 = st.columns(3)
    request_type = c1.selectbox("Request", ["persistent", "one-time"], key="spot_request_type",
                                help="persistent: the instance comes back after an interruption and resumes")
    behaviours = ["stop", "hibernate"] if request_type == "persistent" else ["terminate"]
    behaviour = c2.selectbox("On interruption", behaviours, key="spot_behaviour",
                             help="EC2 runs persistent requests only with stop or hibernate")
    max_price = c3.number_input("Max price (USD/h, 0 = on-demand cap)", 0.0, 1000.0, 0.0, format="%.4f",
                                key="spot_max_price", disabled=not spot.has_price_feed)
    schedule, notice_s, watch = "", AWS_NOTICE_S, True
    if spot.can_interrupt:
        st.markdown("**Simulator** — each instance is a local process with an IMDSv2 endpoint on 127.0.0.1")
        c1, c2, c3 = st.columns(3)
        schedule = c1.text_input("Interrupt after (s, one value per instance)", "", key="spot_schedule",
                                 placeholder="e.g. 25, 25")
        notice_s = c2.number_input("Notice (s)", 2.0, AWS_NOTICE_S, 10.0, key="spot_notice_s",
                                   help="EC2 gives 120 s; the simulator may shorten it for demos and tests")
        watch = c3.checkbox("Checkpoint on the notice", True, key="spot_watch_notice",
                            help="Off: rely on the per-epoch checkpoint only (at most one epoch lost)")
        if notice_s < AWS_NOTICE_S:
            st.caption(f"Shortened notice: {notice_s:g} s instead of EC2's two minutes; the script polls the "
                       f"notice every {min(5.0, notice_s / 4):g} s (EC2: every 5 s).")
    name = st.text_input("Run name (empty: generated)", key="spot_name", max_chars=63)
    waiting = waiting_notice(spot)
    if waiting:
        st.caption(waiting)
    if not st.button("Launch", type="primary", key="spot_launch", disabled=bool(waiting)):
        return
    record = next(d for d in datasets if d.name == dataset)
    hps = {**DEFAULT_HYPERPARAMETERS, "model": model, "epochs": int(epochs), "image-size": int(image_size),
           "seed": int(seed), "num-workers": 0}
    try:
        hps |= rule_action_hyperparameters(be.rule_actions, hps)
        spec = SpotRunSpec(name=name.strip() or new_job_name("spot"), data_uri=record.uri, hyperparameters=hps,
                           instance_type=str(instance_type), request_type=request_type,
                           interruption_behavior=behaviour, max_price=float(max_price) or None,
                           notice_s=float(notice_s), interrupt_after_s=parse_interrupt_schedule(schedule),
                           watch_notice=bool(watch), spot_price_per_h=spot_price, on_demand_price_per_h=on_demand,
                           expected_hours=hours, volume_size_gb=int(volume) or None)
        run = spot.launch(spec)
    except Exception as exc:
        show_error(exc)
        return
    st.session_state["spot_selected"] = run.name
    st.session_state["spot_message"] = f"Launched {run.name}"
    rerun_after_change()


with st.expander("Launch a spot training run", expanded=not spot.list_runs(limit=1)):
    if spot.has_price_feed:
        spot_price, on_demand, hours = _cost_inputs(_prices())
    else:
        st.info("Local backend: spot runs are simulated on this machine (no price feed, no AWS account).")
        spot_price, on_demand, hours = _cost_inputs(None)
    st.subheader("Run settings")
    _launch_form(spot_price, on_demand, hours)

message = st.session_state.get("spot_message")
notice_slot = st.empty()  # always there, so the elements below keep their places between reruns
if message:
    notice_slot.success(message)
runs = spot.list_runs()
if not runs:
    st.info("No spot run yet.")
    st.stop()


def _row(run: SpotRun) -> dict[str, object]:
    return {"name": run.name, "status": run.status.value, "detail": run.detail,
            "test accuracy": run.final_metrics.get("test:accuracy"), "request": run.spec.request_type,
            "instance type": run.spec.instance_type, "duration (s)": round(run.duration_s),
            "created": pd.Timestamp(run.created_at, unit="s").strftime("%Y-%m-%d %H:%M:%S")}


st.dataframe(pd.DataFrame([_row(r) for r in runs]), hide_index=True, key="spot_runs_table")
names = [r.name for r in runs]
if st.session_state.get("spot_selected") not in names:
    st.session_state["spot_selected"] = names[0]
selected = st.selectbox("Run", names, key="spot_selected")
is_active = not spot.describe(selected).status.is_terminal


def _timeline(run: SpotRun) -> go.Figure:
    """One row per launch (a stopped instance keeps its id), with the events on it."""
    events = spot.events(run.name)
    rows, launch = [], 0
    for event in events:
        launch += event.kind == "launch"
        rows.append(f"launch {max(launch, 1)}")
    figure = go.Figure()
    for index, (instance, start, end) in enumerate(instance_intervals(events, now=time.time())):
        figure.add_trace(go.Scatter(x=[pd.Timestamp(start, unit="s"), pd.Timestamp(end, unit="s")],
                                    y=[f"launch {index + 1}"] * 2, mode="lines", line={"width": 14, "color": "#9ecae1"},
                                    name=instance, showlegend=False, hoverinfo="name+x"))
    for kind, (color, symbol) in MARKERS.items():
        chosen = [(e, row) for e, row in zip(events, rows) if e.kind == kind]
        if chosen:
            figure.add_trace(go.Scatter(x=[pd.Timestamp(e.time, unit="s") for e, _ in chosen],
                                        y=[row for _, row in chosen], mode="markers", name=kind,
                                        marker={"color": color, "symbol": symbol, "size": 12},
                                        text=[f"{e.instance} {dict(e.detail)}" for e, _ in chosen],
                                        hoverinfo="name+x+text"))
    figure.update_layout(height=140 + 40 * max(launch, 1), margin={"t": 10, "b": 0},
                         yaxis={"type": "category", "autorange": "reversed"})
    return figure


@st.fragment(run_every=POLL_SECONDS if is_active else None)
def run_details(name: str) -> None:
    run = spot.describe(name)
    if is_active and run.status.is_terminal:
        rerun_after_change()
    events = spot.events(name)
    found = interruptions(events)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Status", run.status.value)
    c2.metric("Interruptions", str(len(found)))
    c3.metric("Max lost work (epochs)", f"{max((i.lost_epochs for i in found), default=0.0):.2f}")
    c4.metric("Test accuracy", f"{run.final_metrics['test:accuracy']:.4f}" if "test:accuracy" in run.final_metrics
              else "–")
    st.caption(run.detail or "")
    if run.failure_reason:
        st.error(run.failure_reason)
    if run.status.is_terminal and spot.can_clean_up and run.resources.get("role") and \
            st.button("Delete the run's role, instance profile and security group", key=f"spot_cleanup_{name}"):
        try:
            st.success("Deleted " + ", ".join(spot.cleanup(name)))
        except Exception as exc:
            show_error(exc)
    if not run.status.is_terminal:
        c1, c2, _ = st.columns([1, 1, 3])
        if spot.can_interrupt and c1.button("Interrupt now", key=f"spot_interrupt_{name}",
                                            help="Serve the interruption notice to the current instance"):
            try:
                spot.interrupt(name)
            except Exception as exc:
                show_error(exc)
        if c2.button("Terminate", key=f"spot_terminate_{name}"):
            try:
                spot.terminate(name)
            except Exception as exc:
                show_error(exc)
    st.markdown("**Timeline** — launch, notice, checkpoint, interruption and resume")
    st.plotly_chart(_timeline(run), key=f"spot_timeline_{name}")
    if found:
        st.markdown("**Work lost per interruption** (training steps after the last checkpoint, redone after the resume)")
        st.dataframe(pd.DataFrame([{
            "instance": i.instance, "notice": pd.Timestamp(i.notice_at, unit="s").strftime("%H:%M:%S")
            if i.notice_at else "–", "reclaimed": pd.Timestamp(i.interrupted_at, unit="s").strftime("%H:%M:%S"),
            "checkpoint step": i.checkpoint_step, "step reached": i.progress_step, "lost steps": i.lost_steps,
            "lost epochs": round(i.lost_epochs, 3), "resumed at step": i.resumed_step,
            "checkpoint after notice (s)": round(i.checkpoint_after_notice_s, 1)
            if i.checkpoint_after_notice_s is not None else None} for i in found]),
            hide_index=True, key=f"spot_lost_{name}")
    cost = run_cost(run, events, now=time.time())
    if cost is not None:
        st.caption(f"Instance time {cost.hours * 3600:.0f} s: spot ${cost.spot_cost:.4f} vs on-demand "
                   f"${cost.on_demand_cost:.4f} ({cost.savings_fraction:.0%} saved; prices {cost.source}).")
    if run.model_uri:
        st.caption(f"Model: `{run.model_uri}`")
        reference = find_reference(run, spot.list_runs(), spot.events) if found else None
        if reference is not None and "test:accuracy" in run.final_metrics and "test:accuracy" in reference.final_metrics:
            delta = 100 * (run.final_metrics["test:accuracy"] - reference.final_metrics["test:accuracy"])
            st.success(f"Test accuracy {run.final_metrics['test:accuracy']:.4f} against "
                       f"{reference.final_metrics['test:accuracy']:.4f} for the uninterrupted run {reference.name} "
                       f"with the same seed and settings: {delta:+.2f} points.")
        st.page_link("app_pages/deploy.py", label="Deploy this model", icon=":material/rocket_launch:",
                     query_params={JOB_QUERY_PARAM: name})
    st.markdown(f"**{spot.log_title}**")
    try:
        st.code("\n".join(spot.log_tail(name, 200)) or "(no output yet)", language="text")
    except Exception as exc:
        show_error(exc)


run_details(selected)
# Cleared only once the run got this far: a run that ends at once makes run_details rerun the
# script before this line, and the notice must survive that rerun.
st.session_state.pop("spot_message", None)
