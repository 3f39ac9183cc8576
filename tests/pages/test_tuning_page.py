"""The Tuning page: seeded tuning jobs render their leaderboard, charts and best trial; the form
validates ranges and launches a real local tuning job."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.backend import Backend, get_backend
from core.config import load_settings
from core.entities import DatasetRecord, MetricPoint, TrainingJob
from core.errors import BackendError
from core.training._local import LocalJobRunner
from core.training.compute import local_instance_types, suggested_hyperparameters
from core.tuning import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    Scaling,
    Trial,
    TrialStatus,
    TuningJobSpec,
)
from core.tuning._local import LocalTuner
from core.tuning._store import TuningStore
from core.types import JobStatus
from tests.pages.conftest import open_page


def add_dataset(backend: Backend, tmp_path: Path) -> DatasetRecord:
    folder = tmp_path / "ds"
    (folder / "train" / "a").mkdir(parents=True)
    record = DatasetRecord("digits", folder.as_uri(), "demo", time.time(), {"total_images": 3, "classes": ["a"]})
    backend.store.put_dataset(record)
    return record


# number, status, lr, batch size, epochs, per-epoch validation accuracy
SEEDED = [
    (0, TrialStatus.COMPLETED, "0.001", "32", "2", [0.5, 0.7]),
    (1, TrialStatus.COMPLETED, "0.005", "64", "3", [0.6, 0.8, 0.9]),
    (2, TrialStatus.PRUNED, "0.0002", "16", "3", [0.2]),
    (3, TrialStatus.COMPLETED, "0.0003", "16", "1", [0.6]),
    (4, TrialStatus.FAILED, "0.009", "64", "2", []),
]


def seed_tuning_job(backend: Backend, dataset: DatasetRecord, *, name: str = "tune-seeded",
                    status: JobStatus = JobStatus.COMPLETED, trials: list = SEEDED) -> TuningJobSpec:
    """A finished tuning job written straight into the store: no supervisor, no training."""
    spec = TuningJobSpec(
        name=name,
        ranges=(ContinuousRange("lr", 1e-4, 1e-2, Scaling.LOGARITHMIC),
                CategoricalRange("batch-size", ("16", "32", "64")), IntegerRange("epochs", 1, 3, Scaling.LINEAR)),
        inputs={"training": dataset.uri},
        static_hyperparameters={"model": "resnet18", "image-size": 64, "max-steps-per-epoch": 5},
        max_jobs=6,
    )
    tuning = TuningStore(backend.store)
    now = time.time()
    tuning.insert_tuning_job(spec, backend="local", created_at=now)
    for number, trial_status, lr, batch, epochs, values in trials:
        job_name = spec.trial_name(number)
        hyperparameters = {"lr": lr, "batch-size": batch, "epochs": epochs}
        backend.store.insert_job(TrainingJob(
            name=job_name, status=JobStatus.FAILED if trial_status is TrialStatus.FAILED else JobStatus.COMPLETED,
            backend="local", created_at=now, started_at=now - 60 + number, ended_at=now - 30 + number,
            hyperparameters={**{k: str(v) for k, v in spec.static_hyperparameters.items()}, **hyperparameters},
            inputs=dict(spec.inputs),
            model_uri=None if trial_status is TrialStatus.FAILED else f"file:///models/{job_name}/model.tar.gz"))
        backend.store.add_metrics(job_name, [MetricPoint("validation:accuracy", v, step, now - 50 + step)
                                             for step, v in enumerate(values)])
        tuning.insert_trial(name, Trial(
            number=number, job_name=job_name, status=trial_status, hyperparameters=hyperparameters,
            objective=values[-1] if values else None, epochs_run=len(values), started_at=now - 60 + number,
            ended_at=now - 30 + number,
            failure_reason="AlgorithmError: diverged" if trial_status is TrialStatus.FAILED else None))
    if status is not JobStatus.IN_PROGRESS:
        tuning.update_tuning_job(name, status=status, ended_at=now)
    return spec


def test_empty_workspace_points_to_the_data_page(local_backend: Backend) -> None:
    at = open_page("tuning")
    assert not at.exception
    assert any("Ingest a dataset on the Data page first" in i.value for i in at.info)
    assert any("No tuning job yet" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_the_form_starts_with_sensible_defaults(local_backend: Backend, tmp_path: Path) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("tuning")
    assert not at.exception
    assert [at.selectbox(key=f"tune_range_{i}_name").value for i in range(5)] == ["lr", "batch-size", "epochs", "", ""]
    assert at.text_input(key="tune_range_0_min").value == "0.0001"
    assert at.selectbox(key="tune_range_0_scaling").value == "Logarithmic"
    assert at.text_input(key="tune_range_1_values").value == "16, 32, 64"
    assert at.selectbox(key="tune_metric").value == "validation:accuracy"
    assert at.radio(key="tune_goal").value == "Maximize"
    assert at.selectbox(key="tune_strategy").value == "Bayesian"
    assert (at.number_input(key="tune_max_jobs").value, at.number_input(key="tune_max_parallel").value) == (6, 2)
    assert at.radio(key="tune_early_stopping").value == "Off"
    assert at.selectbox(key="tune_image_size").value == 64
    assert any("No tuning job yet" in i.value for i in at.info)


@pytest.mark.parametrize(("changes", "message"), [
    ({"tune_range_0_min": "0.1"}, "parameter lr: min 0.1 is greater than max 0.01"),
    ({"tune_range_0_min": "0"}, "parameter lr: logarithmic scaling needs min > 0 (got 0.0)"),
    ({"tune_range_1_values": " "}, "parameter batch-size: a categorical range needs at least one value"),
    ({"tune_range_2_max": "three"}, "parameter epochs: max 'three' is not a number"),
])
def test_an_invalid_range_shows_its_error_and_starts_nothing(local_backend: Backend, tmp_path: Path,
                                                             changes: dict[str, str], message: str) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("tuning")
    for key, value in changes.items():
        at.text_input(key=key).input(value)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert [e.value for e in at.error] == [message]
    assert local_backend.tuner.list_tuning_jobs() == []


def test_hyperband_with_early_stopping_is_refused(local_backend: Backend, tmp_path: Path) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("tuning")
    at.selectbox(key="tune_strategy").select("Hyperband")
    at.radio(key="tune_early_stopping").set_value("Auto")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Hyperband stops trials itself: set early stopping Off"]


def test_a_seeded_tuning_job_shows_leaderboard_charts_and_best_trial(local_backend: Backend, tmp_path: Path) -> None:
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path))
    at = open_page("tuning")
    assert not at.exception
    assert at.selectbox(key="selected_tuning_job").value == "tune-seeded"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Status"] == "Completed"
    assert metrics["Trials done"] == "5 / 6"
    assert (metrics["Pruned"], metrics["Failed"], metrics["Running"]) == ("1", "1", "0")
    assert metrics["Best validation:accuracy"] == "0.9000"
    assert any("Training job `tune-seeded-002` (trial 2)" in m.value for m in at.markdown)
    board = next(d for d in at.dataframe if "job name" in d.value.columns).value
    assert list(board["job name"]) == ["tune-seeded-002", "tune-seeded-001", "tune-seeded-004", "tune-seeded-003",
                                       "tune-seeded-005"]
    assert list(board["best"]) == [True, False, False, False, False]
    assert list(board["pruned"]) == [False, False, False, True, False]
    assert len(at.get("plotly_chart")) == 4
    best = json.loads(at.json[0].value)
    assert best == {"lr": "0.005", "batch-size": "64", "epochs": "3", "model": "resnet18", "image-size": "64",
                    "max-steps-per-epoch": "5"}
    links = {link.proto.label: (link.proto.page, link.proto.query_string) for link in at.main.get("page_link")}
    assert links["Deploy the best model"] == ("deploy", "tuning=tune-seeded")
    assert links["Debugger view of tune-seeded-002"] == ("debugger", "job=tune-seeded-002")
    assert links["Profiler view of tune-seeded-002"] == ("profiler", "job=tune-seeded-002")
    assert not any(b.key and b.key.startswith("tune_stop_") for b in at.button)  # a finished job cannot be stopped
    assert any("AlgorithmError: diverged" in m.value for m in at.markdown)


def test_learning_curves_follow_the_chosen_metric_and_scale(local_backend: Backend, tmp_path: Path) -> None:
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path))
    at = open_page("tuning")
    curves = json.loads(at.get("plotly_chart")[3].proto.spec)
    assert sorted(trace["name"] for trace in curves["data"]) == ["1", "2", "3", "4"]  # trial 5 reported nothing
    at.toggle(key="tune_curves_log_y").set_value(True).run()
    curves = json.loads(at.get("plotly_chart")[3].proto.spec)
    assert curves["layout"]["yaxis"]["type"] == "log"
    at.selectbox(key="tune_curves_metric").select("validation:loss").run()
    assert not at.exception
    assert json.loads(at.get("plotly_chart")[3].proto.spec)["data"] == []


def test_train_the_best_configuration_in_full(local_backend: Backend, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path))
    monkeypatch.setenv("SMC_JOB_PYTHON", "/bin/echo")  # the job fails fast: no torch needed
    at = open_page("tuning")
    at.number_input(key="tune_full_epochs").set_value(7)
    at.button(key="tune_train_best").click().run()
    assert not at.exception
    started = [s.value for s in at.success if s.value.startswith("Started ")]
    assert len(started) == 1 and started[0].endswith(" on digits")
    name = started[0].split()[1]
    assert at.session_state["selected_job"] == name
    runner = get_backend(load_settings()).runner
    job = runner.describe(name)
    workers = suggested_hyperparameters(local_instance_types()[0], 1)["num-workers"]  # this machine's
    assert dict(job.hyperparameters) == {"lr": "0.005", "batch-size": "64", "epochs": "7", "model": "resnet18",
                                         "image-size": "64", "seed": "42", "num-workers": str(workers)}
    assert job.inputs["training"] == local_backend.store.list_datasets()[0].uri
    deadline = time.time() + 120
    while not runner.describe(name).status.is_terminal and time.time() < deadline:
        time.sleep(0.2)
    assert runner.describe(name).status is JobStatus.FAILED


def test_a_running_tuning_job_can_be_stopped(local_backend: Backend, tmp_path: Path) -> None:
    running = [(0, TrialStatus.COMPLETED, "0.001", "32", "2", [0.5, 0.7])]
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path), name="tune-live",
                    status=JobStatus.IN_PROGRESS, trials=running)
    at = open_page("tuning")
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Status"] == "InProgress"
    assert any("Needs two completed trials" in str(c.proto.spec) for c in at.get("plotly_chart"))
    at.button(key="tune_stop_tune-live").click().run()
    assert not at.exception
    assert local_backend.tuner.describe("tune-live").status is JobStatus.STOPPED
    at.run()
    assert {m.label: m.value for m in at.metric}["Status"] == "Stopped"


def test_the_form_launches_a_local_tuning_job(local_backend: Backend, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    add_dataset(local_backend, tmp_path)
    monkeypatch.setenv("SMC_JOB_PYTHON", "/bin/echo")  # every trial fails fast: it writes no model
    at = open_page("tuning")
    at.text_input(key="tune_name").input("page-tune")
    at.number_input(key="tune_max_jobs").set_value(2)
    at.text_input(key="tune_range_2_max").input("2")
    at.button[0].click().run()
    assert not at.exception
    assert any("Started page-tune: 2 trials, 2 at a time" in s.value for s in at.success)
    assert at.selectbox(key="selected_tuning_job").value == "page-tune"
    tuner = get_backend(load_settings()).tuner
    spec = tuner.spec("page-tune")
    workers = suggested_hyperparameters(local_instance_types()[0], 1)["num-workers"]  # batch size is searched
    assert spec.static_hyperparameters == {"model": "efficientnet_lite0", "image-size": "64", "num-workers": str(workers)}
    assert [r.name for r in spec.ranges] == ["lr", "batch-size", "epochs"]
    deadline = time.time() + 120
    while not tuner.describe("page-tune").status.is_terminal and time.time() < deadline:
        time.sleep(0.5)
    trials = tuner.trials("page-tune")
    assert len(trials) == 2 and all(t.status is TrialStatus.FAILED for t in trials)
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Failed"] == "2"


THROTTLED = "trials of tuning job tune-seeded failed: ThrottlingException: Rate exceeded"


def _labels(at: AppTest) -> list[str]:
    return [m.label for m in at.metric]


@pytest.mark.parametrize(("owner", "call", "still_shown"), [
    (LocalTuner, "trials", lambda at: "Status" in _labels(at) and not at.get("plotly_chart")),
    (LocalTuner, "best_trial", lambda at: len(at.get("plotly_chart")) == 4 and not at.json),
    (LocalTuner, "spec", lambda at: "Status" in _labels(at) and not at.get("plotly_chart")),
    (LocalTuner, "describe", lambda at: at.dataframe and not at.metric),
    (LocalTuner, "list_tuning_jobs", lambda at: at.selectbox(key="tune_metric") and not at.metric),
    (LocalJobRunner, "metrics", lambda at: len(at.get("plotly_chart")) == 3 and at.json),
])
def test_a_failing_backend_call_shows_its_error_and_the_rest_of_the_page(
    local_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owner: type, call: str,
    still_shown: Callable[[AppTest], object],
) -> None:
    """On AWS every one of these is an API call that can fail (throttling, expired credentials,
    a network error): the page shows the error once, never a traceback."""
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path))

    def fail(*_args: object, **_kwargs: object) -> None:
        raise BackendError(THROTTLED)

    monkeypatch.setattr(owner, call, fail)
    at = open_page("tuning")
    assert not at.exception
    assert [e.value for e in at.error] == [THROTTLED]
    assert still_shown(at)
