"""The Deploy page against the real local backend: a real endpoint server deployed from a seeded
training job, images dropped on it (good ones and a broken one), deleted; a model that cannot
load shows its reason; the best trial of a tuning job is offered; empty states link onwards."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from core.backend import Backend, get_backend
from core.config import load_settings
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.entities import TrainingJob
from core.tuning import ContinuousRange, Scaling, Trial, TrialStatus, TuningJobSpec
from core.tuning._store import TuningStore
from core.types import JobStatus
from tests.core.endpoints.conftest import CLASS_NAMES, broken_model_tar, model_tar  # noqa: F401  (fixtures)
from tests.pages.conftest import open_page

TIMEOUT = 60


@pytest.fixture
def manager(local_backend: Backend) -> Iterator[LocalEndpointManager]:
    """The page's endpoint manager; whatever a test leaves running is stopped at the end."""
    endpoints = get_backend(load_settings()).endpoints
    yield endpoints
    for endpoint in endpoints.list_endpoints():
        endpoints.delete(endpoint.name)


def seed_completed_job(backend: Backend, name: str, model_uri: str, *, accuracy: float = 0.9612) -> None:
    backend.store.insert_job(TrainingJob(name=name, status=JobStatus.IN_PROGRESS, backend="local",
                                         created_at=time.time()))
    backend.store.update_job(name, status=JobStatus.COMPLETED, model_uri=model_uri, started_at=time.time() - 60,
                             ended_at=time.time(), final_metrics={"test:accuracy": accuracy})


def image_bytes(fmt: str, color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format=fmt)
    return buffer.getvalue()


def test_empty_workspace_links_to_training_and_tuning(local_backend: Backend) -> None:
    at = open_page("deploy")
    assert not at.exception
    assert any("No model to deploy yet" in i.value for i in at.info)
    assert any("No endpoint yet" in i.value for i in at.info)
    assert {link.proto.page for link in at.main.get("page_link")} == {"training", "tuning"}
    assert [link.proto.label for link in at.sidebar.get("page_link")] == ["Next: Bring a dataset"]
    assert not at.button


def test_deploy_drop_images_and_delete(local_backend: Backend, manager: LocalEndpointManager, model_tar: Path) -> None:
    seed_completed_job(local_backend, "digits-job", model_tar.as_uri())
    at = open_page("deploy", timeout=TIMEOUT)
    assert not at.exception
    assert at.selectbox(key="deploy_job").value == "digits-job"
    assert at.selectbox(key="deploy_instance_type").value == "local"
    at.text_input(key="deploy_name").input("page-ep")
    at.number_input(key="deploy_max_batch").set_value(4)
    at.button(key="deploy_button").click().run()
    assert not at.exception
    assert any("Deploying page-ep" in s.value for s in at.success)
    creating = manager.describe("page-ep")
    assert creating.model_uri == model_tar.as_uri() and creating.serving.max_batch_size == 4
    assert manager.wait("page-ep", timeout_s=120, poll_s=0.2).status is EndpointStatus.IN_SERVICE

    at.run()
    table = at.dataframe[0].value
    assert table[["name", "status"]].values.tolist() == [["page-ep", "InService"]]
    assert table["url"].tolist() == [manager.describe("page-ep").url]
    assert at.selectbox(key="test_endpoint").value == "page-ep"
    at.file_uploader(key="test_images").set_value([
        ("red.jpg", image_bytes("JPEG", (220, 20, 20)), "image/jpeg"),
        ("broken.jpg", b"these bytes are not an image", "image/jpeg"),
        ("blue.png", image_bytes("PNG", (20, 20, 220)), "image/png"),
    ])
    at.run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # one top-5 chart per image that came back
    top1 = [m.value for m in at.metric if m.label == "Top-1"]
    assert len(top1) == 2 and set(top1) <= set(CLASS_NAMES)
    latencies = [m.value for m in at.metric if m.label == "Latency"]
    assert len(latencies) == 2 and all(v.endswith(" ms") for v in latencies)
    (error,) = [e.value for e in at.error]
    assert error.startswith("broken.jpg: endpoint 'page-ep' refused the request (400)")
    (code,) = [c.value for c in at.code]
    assert 'EndpointName="page-ep"' in code and f'endpoint_url="{manager.describe("page-ep").url}"' in code

    at.selectbox(key="delete_endpoint").select("page-ep")
    at.button(key="delete_button").click().run()
    assert not at.exception
    assert any("Deleted page-ep" in s.value for s in at.success)
    assert any("No endpoint yet" in i.value for i in at.info)
    assert manager.list_endpoints() == []


def test_a_model_that_cannot_load_shows_why(local_backend: Backend, manager: LocalEndpointManager,
                                             broken_model_tar: Path) -> None:
    seed_completed_job(local_backend, "broken-job", broken_model_tar.as_uri())
    manager.deploy("broken-ep", broken_model_tar.as_uri())
    assert manager.wait("broken-ep", timeout_s=120, poll_s=0.2).status is EndpointStatus.FAILED
    at = open_page("deploy", timeout=TIMEOUT)
    assert not at.exception
    assert at.dataframe[0].value["status"].tolist() == ["Failed"]
    assert any(e.value.startswith("broken-ep: the server exited before it was ready") for e in at.error)
    assert any("once an endpoint is InService" in i.value for i in at.info)
    assert not at.file_uploader


def test_the_best_trial_of_a_tuning_job_is_offered(local_backend: Backend, tmp_path: Path) -> None:
    spec = TuningJobSpec(name="tune-1", ranges=(ContinuousRange("lr", 1e-4, 1e-2, Scaling.LOGARITHMIC),),
                         inputs={"training": (tmp_path / "ds").as_uri()}, max_jobs=2)
    tuning = TuningStore(local_backend.store)
    tuning.insert_tuning_job(spec, backend="local", created_at=time.time())
    for number, accuracy in enumerate([0.7, 0.9]):
        job = spec.trial_name(number)
        seed_completed_job(local_backend, job, (tmp_path / f"missing-{number}" / "model.tar.gz").as_uri(),
                           accuracy=accuracy)
        tuning.insert_trial("tune-1", Trial(number=number, job_name=job, status=TrialStatus.COMPLETED,
                                            hyperparameters={"lr": "0.001"}, objective=accuracy, epochs_run=1))
    at = open_page("deploy")
    at.radio(key="deploy_source").set_value("tuning").run()
    assert not at.exception
    assert at.selectbox(key="deploy_tuning_job").value == "tune-1"
    assert any("Best trial 2: training job `tune-1-002`" in c.value for c in at.caption)
    at.button(key="deploy_button").click().run()  # its model file is gone: the local manager says so
    assert not at.exception
    assert any("missing-1" in e.value and "does not exist" in e.value for e in at.error)
