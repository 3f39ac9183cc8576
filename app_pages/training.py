"""Training jobs: start one on a dataset, follow it live, read its metrics and log."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from app_pages._compute import compute_fields, job_prices, show_estimate
from app_pages._shared import backend, job_views_links, rerun_after_change, show_error
from core.catalog import list_datasets
from core.debugger.launch import DEFAULT_RULES, DEFAULT_SAVE_INTERVAL, RULE_NAMES, debug_hyperparameters
from core.entities import TrainingJob
from core.job_environment import waiting_notice
from core.training.costs import bill, cost_per_point, describe_bill
from core.training.launch import DEFAULT_HYPERPARAMETERS, MODELS, start_training
from core.types import JobStatus

POLL_SECONDS = 2
BATCH_SIZES: list[int | None] = [None, 8, 16, 32, 64, 128, 256, 512]  # None: the instance type's (instance_defaults)


def _batch_label(size: int | None) -> str:
    return "auto (by instance type)" if size is None else str(size)


st.title("Training jobs")
be = backend()
datasets = list_datasets(be)

with st.expander("Start a training job", expanded=not be.runner.list_jobs(limit=1)):
    if not datasets:
        st.info("Ingest a dataset on the Data page first.")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
    else:
        with st.form("new_job"):
            dataset_name = st.selectbox("Dataset", [d.name for d in datasets], key="job_dataset")
            c1, c2, c3 = st.columns(3)
            model = c1.selectbox("Model", MODELS, key="job_model")
            epochs = c2.number_input("Epochs", 1, 200, int(DEFAULT_HYPERPARAMETERS["epochs"]), key="job_epochs")
            batch_size = c3.selectbox("Batch size", BATCH_SIZES, key="job_batch", format_func=_batch_label,
                                      help="auto: 32 on CPU types; on GPU types 64, 128 or 256 per GPU by its memory "
                                           "(under 20 GiB, under 40, more); DataLoader workers follow the vCPUs too")
            lr = c1.number_input("Learning rate", 1e-9, 10.0, float(DEFAULT_HYPERPARAMETERS["lr"]), format="%g",
                                 key="job_lr")
            image_size = c2.selectbox("Image size (px)", [32, 64, 96, 128, 224], index=1, key="job_image_size")
            seed = c3.number_input("Seed", 0, 2**31 - 1, int(DEFAULT_HYPERPARAMETERS["seed"]), key="job_seed")
            c1, c2, c3 = st.columns(3)
            amp = c1.checkbox("Mixed precision (bfloat16, or float16 with a gradient scaler)", key="job_amp",
                              help="Faster on GPUs; off by default, as it does not help on CPUs")
            channels_last = c2.checkbox("Channels-last memory format", key="job_channels_last",
                                        help="NHWC tensors, the layout tensor-core convolutions want (GPUs)")
            compiled = c3.checkbox("torch.compile the training steps", key="job_compile",
                                   help="Minutes of compiling before the first step, faster steps after: for long "
                                        "GPU runs. The Debugger's tensor capture breaks the compiled graph: turn it "
                                        "off for speed")
            name = st.text_input("Job name (empty: generated)", key="job_name")
            compute = compute_fields(be.runner, "job")
            with st.expander("Debugger: tensor capture and rules"):
                capture = st.checkbox("Capture tensors (losses every step; weight and gradient statistics)",
                                      value=True, key="job_debug")
                rules = st.multiselect("Rules to evaluate while the job runs", RULE_NAMES, default=list(DEFAULT_RULES),
                                       key="job_debug_rules")
                stop_on = st.multiselect("StopTraining: stop the job when one of these fires", RULE_NAMES,
                                         key="job_debug_stop")
                d1, d2 = st.columns(2)
                save_interval = d1.number_input("Save statistics every N steps", 1, 10_000, DEFAULT_SAVE_INTERVAL,
                                                key="job_debug_interval")
                activations = d2.checkbox("Save activations (DeadRelu, SaturatedActivation, PoorWeightInitialization)",
                                          key="job_debug_activations")
            waiting = waiting_notice(be.runner)
            if waiting:
                st.caption(waiting)
            b1, b2 = st.columns([1, 4])
            start = b1.form_submit_button("Start training", type="primary", disabled=bool(waiting))
            estimate = b2.form_submit_button("Estimate cost", help="Expected training time and cost, timed by the "
                                             "newest finished job like this one")
            dataset = next(d for d in datasets if d.name == dataset_name)
            hps: dict[str, str | int | float] = {"model": model, "epochs": int(epochs), "lr": float(lr),
                                                 "image-size": int(image_size), "seed": int(seed)}
            if batch_size is not None:
                hps["batch-size"] = int(batch_size)
            hps |= {key: "true" for key, on in (("amp", amp), ("channels-last", channels_last), ("compile", compiled))
                    if on}
            if estimate:
                show_estimate(be.runner, compute, hps, dataset.uri)
            if start:
                try:
                    hps |= debug_hyperparameters(capture=capture, rules=rules, stop_on=stop_on,
                                                 save_interval=int(save_interval), activations=activations)
                    job = start_training(be, dataset, hps, name=name.strip() or None, compute=compute)
                    st.session_state["selected_job"] = job.name
                    st.session_state["training_notice"] = f"Started {job.name}"
                except Exception as exc:
                    show_error(exc)

notice = st.session_state.get("training_notice")
if notice:
    st.success(notice)
jobs = be.runner.list_jobs()
if not jobs:
    st.info("No training job yet.")
    st.stop()


def _row(job: TrainingJob) -> dict[str, object]:
    duration = job.duration_s
    accuracy = job.final_metrics.get("test:accuracy")
    cost = bill(job, prices.get(job.instance_type)).cost
    return {
        "name": job.name,
        "status": job.status.value,
        "test accuracy": accuracy,
        "validation accuracy": job.final_metrics.get("validation:accuracy"),
        "model": job.hyperparameters.get("model"),
        "epochs": job.hyperparameters.get("epochs"),
        "instances": f"{job.instance_count} × {job.instance_type}",
        "duration (s)": round(duration) if duration is not None else None,
        "cost ($)": cost,
        "$ per accuracy point": cost_per_point(cost, accuracy),
        "created": pd.Timestamp(job.created_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
    }


prices = job_prices(be.runner, {j.instance_type for j in jobs})
st.dataframe(pd.DataFrame([_row(j) for j in jobs]), hide_index=True, key="jobs_table",
             column_config={"cost ($)": st.column_config.NumberColumn(format="%.4f"),
                            "$ per accuracy point": st.column_config.NumberColumn(format="%.5f")})

names = [j.name for j in jobs]
if st.session_state.get("selected_job") not in names:
    st.session_state["selected_job"] = names[0]
selected = st.selectbox("Job", names, key="selected_job")
is_active = not be.runner.describe(selected).status.is_terminal


@st.fragment(run_every=POLL_SECONDS if is_active else None)
def job_details(name: str) -> None:
    job = be.runner.describe(name)
    if is_active and job.status.is_terminal:
        rerun_after_change()  # refresh the table and stop polling
    c1, c2, c3 = st.columns(3)
    c1.metric("Status", job.status.value)
    c2.metric("Test accuracy", f"{job.final_metrics['test:accuracy']:.4f}" if "test:accuracy" in job.final_metrics else "–")
    c3.metric("Duration", f"{job.duration_s:.0f} s" if job.duration_s is not None else "–")
    if job.failure_reason:
        st.error(job.failure_reason)
    if job.status.is_terminal:
        st.caption(describe_bill(bill(job, prices.get(job.instance_type)), job.instance_type,
                                 job.final_metrics.get("test:accuracy")))
    if job.model_uri:
        st.caption(f"Model: `{job.model_uri}`")
    job_views_links(name, deployable=job.status is JobStatus.COMPLETED and bool(job.model_uri))
    if not job.status.is_terminal and st.button("Stop job", key=f"stop_{name}"):
        try:
            be.runner.stop(name)
        except Exception as exc:
            show_error(exc)
    points = be.runner.metrics(name)
    if points:
        frame = pd.DataFrame([{"metric": p.name, "epoch": p.step + 1, "value": p.value} for p in points])
        curves = frame[frame["metric"].str.match(r"(train|validation):(loss|accuracy)$")]
        figure = px.line(curves, x="epoch", y="value", color="metric", markers=True, title="Metrics per epoch")
        figure.update_xaxes(dtick=1)
        st.plotly_chart(figure, key=f"metrics_{name}")
    with st.expander("Hyperparameters, inputs and instance type"):
        st.json({"hyperparameters": dict(job.hyperparameters), "inputs": dict(job.inputs),
                 "instance_type": job.instance_type})
    st.markdown("**Log**")
    st.code("\n".join(be.runner.log_tail(name, 200)) or "(no output yet)", language="text")


job_details(selected)
# Cleared only once the run got this far: a job that ends at once makes job_details rerun the
# script before this line, and the notice must survive that rerun.
st.session_state.pop("training_notice", None)
