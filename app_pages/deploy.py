"""Deploy: serve a trained model as a real-time endpoint, test it with dropped images, evaluate it on
labelled images (against another one, side by side), delete it."""

from __future__ import annotations

import base64
import json

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app_pages._shared import (
    ENDPOINT_QUERY_PARAM,
    JOB_QUERY_PARAM,
    TUNING_QUERY_PARAM,
    backend,
    rerun_after_change,
    show_error,
    take_linked_choice,
)
from core.catalog import list_datasets
from core.endpoints import DEFAULT_SERVING, Endpoint, EndpointStatus, InvocationResult
from core.endpoints.invoke import image_request
from core.entities import TrainingJob
from core.errors import ConsoleError
from core.evaluation import (
    Comparison,
    DatasetTestSplit,
    EvaluationProgress,
    EvaluationResult,
    EvaluationSource,
    LabelledZip,
    compare_results,
    run_evaluation,
)
from core.evaluation.charts import confusion_heatmap, failure_rows, per_class_rows, top_confusion_rows
from core.job_environment import waiting_notice
from core.spot import completed_runs_as_jobs
from core.training.launch import new_job_name
from core.tuning import TuningJob
from core.types import JobStatus

POLL_SECONDS = 2
SOURCES = {"job": "Completed training job", "tuning": "Best trial of a tuning job"}
CHANGING = (EndpointStatus.CREATING, EndpointStatus.DELETING)

st.title("Deploy")
be = backend()
endpoints = be.endpoints.list_endpoints()


def _job_label(job: TrainingJob) -> str:
    accuracy = job.final_metrics.get("test:accuracy")
    return f"{job.name}  (test accuracy {accuracy:.4f})" if accuracy is not None else job.name


def _model_from_job(jobs: list[TrainingJob]) -> str | None:
    if not jobs:
        st.info("No completed training job yet.")
        st.page_link("app_pages/training.py", label="Go to Training jobs", icon=":material/model_training:")
        return None
    by_name = {j.name: j for j in jobs}
    name = st.selectbox("Training job", list(by_name), key="deploy_job", format_func=lambda n: _job_label(by_name[n]))
    return by_name[name].model_uri


def _model_from_tuning(tuning_jobs: list[TuningJob]) -> str | None:
    if not tuning_jobs:
        st.info("No tuning job yet.")
        st.page_link("app_pages/tuning.py", label="Go to Tuning", icon=":material/tune:")
        return None
    name = st.selectbox("Tuning job", [j.name for j in tuning_jobs], key="deploy_tuning_job")
    try:
        best = be.tuner.best_trial(name)
    except Exception as exc:
        show_error(exc)
        return None
    if best is None or not best.training_job.model_uri:
        st.info("No trial of this tuning job has completed with a model yet.")
        return None
    st.caption(f"Best trial {best.trial.number + 1}: training job `{best.training_job.name}`, "
               f"objective {best.trial.objective:.4f}")
    return best.training_job.model_uri


def _deploy_form() -> None:
    jobs = [j for j in be.runner.list_jobs() if j.status is JobStatus.COMPLETED and j.model_uri]
    jobs += completed_runs_as_jobs(be, exclude={j.name for j in jobs})  # EC2 Spot runs
    tuning_jobs = be.tuner.list_tuning_jobs()
    if not jobs and not tuning_jobs:
        st.info("No model to deploy yet: train one on Training jobs, or tune hyperparameters on Tuning "
                "and deploy the best trial.")
        st.page_link("app_pages/training.py", label="Go to Training jobs", icon=":material/model_training:")
        st.page_link("app_pages/tuning.py", label="Go to Tuning", icon=":material/tune:")
        return
    if take_linked_choice(JOB_QUERY_PARAM, [j.name for j in jobs], "deploy_job"):
        st.session_state["deploy_source"] = "job"
    elif take_linked_choice(TUNING_QUERY_PARAM, [j.name for j in tuning_jobs], "deploy_tuning_job"):
        st.session_state["deploy_source"] = "tuning"
    source = st.radio("Model from", list(SOURCES), format_func=SOURCES.__getitem__, horizontal=True,
                      key="deploy_source")
    model_uri = _model_from_job(jobs) if source == "job" else _model_from_tuning(tuning_jobs)
    if model_uri:
        st.caption(f"Model: `{model_uri}`")
    default_name = st.session_state.setdefault("deploy_default_name", new_job_name("endpoint"))
    c1, c2, c3 = st.columns([2, 1.4, 1])
    name = c1.text_input("Endpoint name (empty: generated)", key="deploy_name", max_chars=63,
                         placeholder=default_name)
    types, most = be.endpoints.instance_types, be.endpoints.max_instance_count
    instance_type = c2.selectbox("Instance type", types, key="deploy_instance_type", disabled=len(types) == 1,
                                 help=be.endpoints.instance_help)
    count = c3.number_input("Instances", 1, most, 1, key="deploy_instance_count", disabled=most == 1)
    st.markdown("**Micro-batching** — concurrent requests share one forward pass")
    c1, c2, c3 = st.columns(3)
    max_batch = c1.number_input("Max batch size", 1, 256, DEFAULT_SERVING.max_batch_size, key="deploy_max_batch")
    max_wait = c2.number_input("Max wait (ms)", 0.0, 1000.0, float(DEFAULT_SERVING.max_wait_ms), step=1.0,
                               key="deploy_max_wait_ms",
                               help="Longest a forming batch waits for the next request (4 times that in all)")
    workers = c3.number_input("Workers (connections)", 1, 256, DEFAULT_SERVING.workers, key="deploy_workers")
    waiting = waiting_notice(be.endpoints)
    if waiting:
        st.caption(waiting)
    if st.button("Deploy", type="primary", key="deploy_button", disabled=not model_uri or bool(waiting)) and model_uri:
        endpoint_name = name.strip() or default_name
        try:
            endpoint = be.endpoints.deploy(endpoint_name, model_uri, instance_type=str(instance_type),
                                           instance_count=int(count), max_batch_size=int(max_batch),
                                           max_wait_ms=float(max_wait), workers=int(workers))
        except Exception as exc:
            show_error(exc)
            return
        del st.session_state["deploy_default_name"]
        st.session_state["deploy_last"] = endpoint.name
        st.session_state["deploy_message"] = f"Deploying {endpoint.name}: it answers once InService"
        rerun_after_change()


linked = JOB_QUERY_PARAM in st.query_params or TUNING_QUERY_PARAM in st.query_params
with st.expander("Deploy a model", expanded=not endpoints or linked):
    _deploy_form()
message = st.session_state.get("deploy_message")
if message:
    st.success(message)

if not endpoints:
    st.session_state.pop("deploy_message", None)
    st.info("No endpoint yet: deploy a model above.")
    st.stop()


def _row(endpoint: Endpoint) -> dict[str, object]:
    return {
        "name": endpoint.name,
        "status": endpoint.status.value,
        "model": endpoint.model_uri,
        "instances": f"{endpoint.instance_count} × {endpoint.instance_type}",
        "created": pd.Timestamp(endpoint.created_at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
        "url": endpoint.url,
    }


is_changing = any(e.status in CHANGING for e in endpoints)


@st.fragment(run_every=POLL_SECONDS if is_changing else None)
def endpoints_panel() -> None:
    current = be.endpoints.list_endpoints()
    if is_changing and not any(e.status in CHANGING for e in current):
        rerun_after_change()  # settled: refresh the test panel and stop polling
    st.subheader("Endpoints")
    st.dataframe(pd.DataFrame([_row(e) for e in current]), hide_index=True, key="endpoints_table")
    for endpoint in current:
        if endpoint.failure_reason:
            st.error(f"{endpoint.name}: {endpoint.failure_reason}")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.selectbox("Endpoint to delete", [e.name for e in current], key="delete_endpoint")
    if c2.button("Delete endpoint", key="delete_button", disabled=not current):
        try:
            with st.spinner(f"Deleting {name}…"):
                be.endpoints.delete(name)
        except Exception as exc:
            show_error(exc)
            return
        st.session_state["deploy_message"] = f"Deleted {name}"
        rerun_after_change()


def _top_k_chart(pairs: list[tuple[str, float]]) -> go.Figure:
    """Horizontal bars, most probable on top; labels as categories (digits stay labels)."""
    labels = [label for label, _ in reversed(pairs)]
    probabilities = [p for _, p in reversed(pairs)]
    figure = go.Figure(go.Bar(x=probabilities, y=labels, orientation="h",
                              text=[f"{p:.1%}" for p in probabilities], textposition="auto"))
    figure.update_layout(height=60 + 32 * len(pairs), margin={"l": 0, "r": 10, "t": 10, "b": 0},
                         xaxis={"range": [0, 1], "tickformat": ".0%"}, yaxis={"type": "category"})
    return figure


def _predict(endpoint: Endpoint, upload: UploadedFile) -> InvocationResult | str:
    """The endpoint's answer for one file, or the error message (kept per file and endpoint)."""
    cache = st.session_state.setdefault("deploy_predictions", {})
    key = (endpoint.name, endpoint.created_at, upload.file_id)
    if key not in cache:
        try:
            body, content_type = image_request(upload.getvalue())
            cache[key] = be.endpoints.invoke(endpoint.name, body, content_type)
        except ConsoleError as exc:
            cache[key] = str(exc)
        except Exception as exc:
            cache[key] = f"unexpected error ({type(exc).__name__}): {exc}"
    return cache[key]


def _show(index: int, upload: UploadedFile, result: InvocationResult | str) -> None:
    if isinstance(result, str):
        st.error(f"{upload.name}: {result}")
        return
    pairs = result.predictions[0] if result.predictions else []
    c1, c2, c3 = st.columns([1, 2.5, 1])
    c1.image(upload.getvalue(), caption=upload.name, width="stretch")
    c2.plotly_chart(_top_k_chart(pairs), key=f"test_chart_{index}")
    if pairs:
        c3.metric("Top-1", pairs[0][0], f"{pairs[0][1]:.1%}", delta_color="off", delta_arrow="off")
    c3.metric("Latency", f"{result.latency_ms:.0f} ms")
    if result.server_latency_ms is not None:
        c3.caption(f"{result.server_latency_ms:.1f} ms in the server")


def _boto3_example(endpoint: Endpoint) -> str:
    client = be.endpoints.runtime_client_code(endpoint)
    return (f"import json\n\nimport boto3\n\n{client}\n"
            'with open("image.jpg", "rb") as image:\n'
            f'    response = runtime.invoke_endpoint(\n        EndpointName="{endpoint.name}", '
            'ContentType="image/jpeg", Accept="application/json", Body=image.read()\n    )\n'
            'print(json.loads(response["Body"].read())["predictions"][0]["top_k"])\n')


def test_panel() -> None:
    st.subheader("Test with images")
    serving = [e for e in endpoints if e.status is EndpointStatus.IN_SERVICE]
    if not serving:
        st.info("Images can be tested once an endpoint is InService.")
        return
    by_name = {e.name: e for e in serving}
    if st.session_state.get("deploy_last") in by_name:  # the endpoint just deployed, once it serves
        st.session_state["test_endpoint"] = st.session_state.pop("deploy_last")
    elif st.session_state.get("test_endpoint") not in by_name:
        st.session_state["test_endpoint"] = serving[0].name
    endpoint = by_name[st.selectbox("Endpoint", list(by_name), key="test_endpoint")]
    uploads = st.file_uploader("Drop one or more images (JPEG or PNG)", type=["jpg", "jpeg", "png"],
                               accept_multiple_files=True, key="test_images") or []
    with st.spinner(f"Asking {endpoint.name} about {len(uploads)} image(s)…"):
        results = [_predict(endpoint, upload) for upload in uploads]
    for index, (upload, result) in enumerate(zip(uploads, results, strict=True)):
        _show(index, upload, result)
    with st.expander("Invoke it from code (boto3)"):
        st.code(_boto3_example(endpoint), language="python")
    st.page_link("app_pages/lambda_fn.py", label=f"Next: call {endpoint.name} from a Lambda function",
                 icon=":material/functions:", query_params={ENDPOINT_QUERY_PARAM: endpoint.name})


EVALUATION_SOURCES = {"dataset": "A registered dataset's test split", "zip": "A labelled zip"}


def _evaluation_source() -> EvaluationSource | None:
    if st.radio("Images", list(EVALUATION_SOURCES), format_func=EVALUATION_SOURCES.__getitem__, horizontal=True,
                key="eval_source") == "zip":
        upload = st.file_uploader("Labelled zip: one folder of images per class, possibly inside train/ valid/ "
                                  "test/ (then test/ is evaluated)", type=["zip"], key="eval_zip")
        return LabelledZip(upload.name, upload.getvalue()) if upload is not None else None
    datasets = {d.name: d for d in list_datasets(be)}
    if not datasets:
        st.info("No registered dataset yet: upload one on Data, or drop a labelled zip.")
        st.page_link("app_pages/data.py", label="Go to Data", icon=":material/folder_open:")
        return None
    return DatasetTestSplit(datasets[st.selectbox("Dataset", list(datasets), key="eval_dataset")])


def _mark_cancelled() -> None:
    st.session_state["eval_cancelled"] = True


def _evaluate(names: list[str], source: EvaluationSource) -> None:
    """Runs the evaluation with a progress bar and a Cancel button (a click reruns the page, which
    cancels the evaluation); keeps the results in the session."""
    bar = st.progress(0.0, text="Preparing the images…")
    cancel_slot = st.empty()
    cancel_slot.button("Cancel", key="eval_cancel", on_click=_mark_cancelled)

    def show(state: EvaluationProgress) -> None:
        bar.progress(state.fraction, text=state.message)

    try:
        results = run_evaluation(be.endpoints, names, source, storage=be.storage, object_prefixes=be.object_prefixes,
                                 scratch_dir=be.settings.workspace / "evaluations", on_progress=show)
    except Exception as exc:
        show_error(exc)
    else:
        st.session_state["eval_results"] = results
    finally:
        bar.empty()
        cancel_slot.empty()


def _summary(result: EvaluationResult, against: Comparison | None) -> None:
    """The result's headline numbers; ``against``: its comparison with the first endpoint (deltas shown)."""
    metrics = result.metrics
    st.markdown(f"**{result.endpoint}** on {result.source}")
    help_text = "Difference with the first endpoint, on the images both answered" if against else None
    c1, c2, c3 = st.columns(3)
    c1.metric("Accuracy", f"{metrics.accuracy:.1%}", f"{against.accuracy_delta:+.1%}" if against else None,
              help=help_text)
    c2.metric("Top-5 accuracy", f"{metrics.top_k_accuracy:.1%}", f"{against.top_k_delta:+.1%}" if against else None,
              help=help_text)
    c3.metric("Images", f"{metrics.images:,}")
    c1.metric("Latency p50", f"{metrics.latency.p50_ms:.0f} ms",
              f"{against.p50_delta_ms:+.0f} ms" if against else None, delta_color="inverse")
    c2.metric("Latency p95", f"{metrics.latency.p95_ms:.0f} ms")
    c3.metric("Images/s", f"{result.images_per_s:.1f}")
    st.caption(f"{metrics.latency.requests:,} requests of up to {result.images_per_request} images, "
               f"{result.concurrency} at a time; latency is each request's round trip.")
    for note in [result.note, *result.classes.notes]:
        if note:
            st.warning(note, icon=":material/info:")
    if result.failures:
        st.error(f"{len(result.failures)} images got no answer (not counted)")


def _details(result: EvaluationResult, index: int) -> None:
    metrics = result.metrics
    if result.failures:
        with st.expander(f"Images without an answer ({len(result.failures)})"):
            st.dataframe(pd.DataFrame(failure_rows(result)), hide_index=True, key=f"eval_failures_{index}")
    st.markdown("**Confusion matrix** — each row is a true class; hover a cell for its count")
    st.plotly_chart(confusion_heatmap(metrics), key=f"eval_confusion_{index}")
    c1, c2 = st.columns(2)
    c1.markdown("**Top confusions**")
    if metrics.top_confusions:
        c1.dataframe(pd.DataFrame(top_confusion_rows(metrics)), hide_index=True, key=f"eval_top_confusions_{index}",
                     column_config={"share of the class": st.column_config.NumberColumn(format="percent")})
    else:
        c1.success("No mistake.")
    c2.markdown("**Per class**")
    c2.dataframe(pd.DataFrame(per_class_rows(metrics)), hide_index=True, key=f"eval_classes_{index}", column_config={
        "precision": st.column_config.NumberColumn(
            format="percent", help="Right among the images answered as this class (None: never answered)"),
        "recall": st.column_config.NumberColumn(
            format="percent", help="Right among the images of this class (None: no image of it)"),
    })
    if metrics.worst:
        st.markdown("**Worst mistakes** — answered with the most confidence over the true class")
        grid = st.columns(6)
        for position, mistake in enumerate(metrics.worst):
            true_score = f"{mistake.true_score:.1%}" if mistake.true_score is not None else "not in the top 5"
            caption = (f"{mistake.path}: {mistake.predicted_label} {mistake.predicted_score:.1%}, "
                       f"true {mistake.true_label} {true_score}")
            thumbnail = result.thumbnails.get(mistake.path)
            cell = grid[position % len(grid)]
            if thumbnail:
                cell.image(base64.b64decode(thumbnail), caption=caption, width="stretch")
            else:
                cell.caption(caption)


def _show_results(results: list[EvaluationResult]) -> None:
    comparison = None
    if len(results) == 2:
        try:
            comparison = compare_results(*results)
        except Exception as exc:
            show_error(exc)
    for position, (column, result) in enumerate(zip(st.columns(len(results)), results, strict=True)):
        with column:
            _summary(result, comparison if position == 1 else None)
    if comparison:
        st.caption(f"On the {comparison.images:,} images both answered: both right {comparison.both_right:,}, "
                   f"only {comparison.first} right {comparison.only_first_right:,}, only {comparison.second} right "
                   f"{comparison.only_second_right:,}, both wrong {comparison.both_wrong:,}.")
    tabs = st.tabs([r.endpoint for r in results]) if len(results) > 1 else [st.container()]
    for index, (tab, result) in enumerate(zip(tabs, results, strict=True)):
        with tab:
            _details(result, index)
    st.download_button("Download the results (JSON)", json.dumps([r.to_dict() for r in results]),
                       file_name="evaluation.json", mime="application/json", key="eval_download")


def evaluation_panel() -> None:
    st.subheader("Evaluate on labelled images")
    serving = [e.name for e in endpoints if e.status is EndpointStatus.IN_SERVICE]
    if not serving:
        st.info("An endpoint can be evaluated once it is InService.")
        return
    st.caption("Every image goes to the endpoint; its class folder is the truth, matched to the model's labels "
               "by name.")
    if st.session_state.get("eval_endpoint") not in serving:
        st.session_state["eval_endpoint"] = serving[0]
    c1, c2 = st.columns(2)
    first = c1.selectbox("Endpoint", serving, key="eval_endpoint")
    others = [name for name in serving if name != first]
    if st.session_state.get("eval_compare") not in others:
        st.session_state["eval_compare"] = None
    second = c2.selectbox("Compare with (optional)", others, index=None, key="eval_compare",
                          placeholder="another InService endpoint" if others else "no other InService endpoint",
                          disabled=not others)
    source = _evaluation_source()
    if st.button("Evaluate", type="primary", key="eval_button", disabled=source is None) and source is not None:
        _evaluate([first, second] if second else [first], source)
    if st.session_state.pop("eval_cancelled", False):
        st.warning("Evaluation cancelled.")
    results = st.session_state.get("eval_results")
    if results:
        _show_results(results)


endpoints_panel()
test_panel()
evaluation_panel()
# Cleared only once the run got this far: an endpoint that settles at once makes endpoints_panel
# rerun the script before this line, and the notice must survive that rerun.
st.session_state.pop("deploy_message", None)
