"""The Training jobs page: the form starts a real local job; jobs render with their state."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.backend import Backend
from core.entities import DatasetRecord, MetricPoint, TrainingJob
from core.types import JobStatus
from tests.pages.conftest import open_page


def add_dataset(backend: Backend, tmp_path: Path) -> DatasetRecord:
    folder = tmp_path / "ds"
    (folder / "train" / "a").mkdir(parents=True)
    record = DatasetRecord("digits", folder.as_uri(), "demo", time.time(), {"total_images": 3, "classes": ["a"]})
    backend.store.put_dataset(record)
    return record


def test_empty_workspace_points_to_the_data_page(local_backend: Backend) -> None:
    at = open_page("training")
    assert not at.exception
    assert any("Ingest a dataset on the Data page first" in i.value for i in at.info)


def test_form_starts_a_job_that_runs_the_entrypoint(local_backend: Backend, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    add_dataset(local_backend, tmp_path)
    # /bin/echo stands in for the job interpreter: the supervisor runs it, it writes no model.
    monkeypatch.setenv("SMC_JOB_PYTHON", "/bin/echo")
    at = open_page("training")
    at.text_input(key="job_name").input("page-job")
    at.number_input(key="job_epochs").set_value(3)
    at.multiselect(key="job_debug_stop").select("LossNotDecreasing")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert any("Started page-job" in s.value for s in at.success)
    backend_job = None
    deadline = time.time() + 120
    while time.time() < deadline:
        from core.backend import get_backend
        from core.config import load_settings

        backend_job = get_backend(load_settings()).runner.describe("page-job")
        if backend_job.status.is_terminal:
            break
        time.sleep(0.2)
    assert backend_job is not None and backend_job.status is JobStatus.FAILED
    assert backend_job.hyperparameters["epochs"] == "3"
    assert backend_job.hyperparameters["debug-rules"].split(",")[4] == "LossNotDecreasing:stop"
    assert "wrote nothing to SM_MODEL_DIR" in backend_job.failure_reason


def test_debugger_choices_that_cannot_work_are_refused(local_backend: Backend, tmp_path: Path) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("training")
    at.multiselect(key="job_debug_rules").set_value(["Overfit", "DeadRelu"])
    at.button[0].click().run()
    assert not at.exception
    assert any("DeadRelu read activations" in e.value for e in at.error)
    assert local_backend.runner.list_jobs() == []


def test_job_details_show_metrics_and_failure(local_backend: Backend) -> None:
    store = local_backend.store
    store.insert_job(TrainingJob(name="done-job", status=JobStatus.IN_PROGRESS, backend="local",
                                 created_at=time.time(), hyperparameters={"model": "efficientnet_lite0"}))
    store.add_metrics("done-job", [MetricPoint("validation:accuracy", 0.9, 0, 1.0),
                                   MetricPoint("validation:accuracy", 0.95, 1, 2.0)])
    store.update_job("done-job", status=JobStatus.COMPLETED, started_at=time.time() - 60, ended_at=time.time(),
                     final_metrics={"test:accuracy": 0.9612}, supervisor_pid=None)
    store.insert_job(TrainingJob(name="bad-job", status=JobStatus.FAILED, backend="local", created_at=time.time() + 1,
                                 failure_reason="AlgorithmError: boom"))
    at = open_page("training")
    assert not at.exception
    assert at.selectbox(key="selected_job").value == "bad-job"
    assert any("AlgorithmError: boom" in e.value for e in at.error)
    at.selectbox(key="selected_job").select("done-job").run()
    assert not at.exception
    assert [m.value for m in at.metric if m.label == "Test accuracy"] == ["0.9612"]
    assert [m.value for m in at.metric if m.label == "Status"] == ["Completed"]
