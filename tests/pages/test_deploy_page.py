"""The Deploy page against the real local backend: a real endpoint server deployed from a seeded
training job, images dropped on it (good ones and a broken one), deleted; a model that cannot
load shows its reason; the best trial of a tuning job is offered; empty states link onwards.
Labelled evaluation against two real endpoints of a tiny model: a dropped zip, a registered
dataset's test split, two endpoints side by side, a bad zip and classes the model does not know."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.backend import Backend, get_backend
from core.config import Settings, load_settings
from core.endpoints import EndpointStatus, LocalEndpointManager
from core.entities import DatasetRecord, TrainingJob
from core.tuning import ContinuousRange, Scaling, Trial, TrialStatus, TuningJobSpec
from core.tuning._store import TuningStore
from core.types import JobStatus
from tests.core.endpoints.conftest import CLASS_NAMES, broken_model_tar, model_tar  # noqa: F401  (fixtures)
from tests.core.evaluation.images import write_image_folder, zip_folder
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


# --- evaluation on labelled images -------------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluation_workspace(tmp_path_factory: pytest.TempPathFactory, model_tar: Path) -> Iterator[Path]:
    """A workspace with two InService endpoints of the tiny 3-class model, shared by the evaluation tests."""
    folder = tmp_path_factory.mktemp("evaluation") / "workspace"
    endpoints = get_backend(Settings(workspace=folder)).endpoints
    try:
        for name in ("shapes-a", "shapes-b"):
            endpoints.deploy(name, model_tar.as_uri())
        for name in ("shapes-a", "shapes-b"):
            assert endpoints.wait(name, timeout_s=120, poll_s=0.2).status is EndpointStatus.IN_SERVICE
        yield folder
    finally:
        for endpoint in endpoints.list_endpoints():
            endpoints.delete(endpoint.name)


@pytest.fixture
def evaluation_backend(evaluation_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    monkeypatch.setenv("SMC_WORKSPACE", str(evaluation_workspace))
    return get_backend(load_settings())


def shapes_zip(tmp_path: Path, classes: tuple[str, ...] = CLASS_NAMES) -> bytes:
    """A zip of ``shapes/train`` and ``shapes/test``, 3 images per class in test/."""
    write_image_folder(tmp_path / "shapes" / "train", dict.fromkeys(classes, 1))
    write_image_folder(tmp_path / "shapes" / "test", dict.fromkeys(classes, 3), fmt="JPEG")
    return zip_folder(tmp_path)


def evaluate_zip(data: bytes, *, compare: str | None = None) -> AppTest:
    at = open_page("deploy", timeout=TIMEOUT)
    assert not at.exception
    at.radio(key="eval_source").set_value("zip").run()
    if compare:
        at.selectbox(key="eval_compare").select(compare)
    at.file_uploader(key="eval_zip").set_value(("shapes.zip", data, "application/zip"))
    at.run()
    at.button(key="eval_button").click().run()
    assert not at.exception
    return at


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


def table(at: AppTest, first_column: str) -> pd.DataFrame:
    """The one dataframe whose first column is first_column (AppTest does not give a dataframe's key)."""
    (found,) = [d.value for d in at.dataframe if d.value.columns[0] == first_column]
    return found


def test_evaluate_a_labelled_zip_shows_metrics_confusions_and_mistakes(evaluation_backend: Backend,
                                                                       tmp_path: Path) -> None:
    at = evaluate_zip(shapes_zip(tmp_path))

    assert not at.error
    assert at.selectbox(key="eval_endpoint").value == "shapes-b"  # the newest endpoint first
    assert metric(at, "Images") == ["9"]
    assert metric(at, "Top-5 accuracy") == ["100.0%"]  # 3 classes: always in the top 5
    (accuracy,) = metric(at, "Accuracy")
    assert accuracy.endswith("%") and 0 <= float(accuracy[:-1]) <= 100
    assert metric(at, "Latency p50")[0].endswith(" ms") and metric(at, "Latency p95")[0].endswith(" ms")
    assert any("**shapes-b** on zip shapes.zip, test/" in m.value for m in at.markdown)
    (heatmap,) = [chart for chart in at.get("plotly_chart") if "eval_confusion_0" in chart.proto.id]
    figure = json.loads(heatmap.proto.spec)
    assert figure["data"][0]["type"] == "heatmap" and figure["data"][0]["y"] == list(CLASS_NAMES)
    classes = table(at, "class")
    assert classes["class"].tolist() == list(CLASS_NAMES) and classes["images"].tolist() == [3, 3, 3]
    wrong = 9 - round(float(accuracy[:-1]) * 9 / 100)
    if wrong:  # an untrained model: usually wrong, but the test does not depend on it
        confusions = table(at, "true")
        assert confusions["images"].sum() == wrong
        assert len(at.get("image")) == min(wrong, 12)  # the worst mistakes as thumbnails
    assert at.get("download_button")


def test_two_endpoints_side_by_side_with_the_difference_in_accuracy(evaluation_backend: Backend,
                                                                   tmp_path: Path) -> None:
    at = evaluate_zip(shapes_zip(tmp_path), compare="shapes-a")

    assert not at.error
    assert metric(at, "Images") == ["9", "9"]
    first, second = [m for m in at.metric if m.label == "Accuracy"]
    assert first.value == second.value  # the same model
    assert second.proto.delta == "+0.0%" and not first.proto.delta
    assert any(c.value.startswith("On the 9 images both answered: both right ") for c in at.caption)
    assert [tab.label for tab in at.tabs] == ["shapes-b", "shapes-a"]
    assert len([c for c in at.get("plotly_chart") if "eval_confusion_" in c.proto.id]) == 2


def test_a_registered_datasets_test_split_is_evaluated(evaluation_backend: Backend, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "ds" / "train", dict.fromkeys(CLASS_NAMES, 1))
    write_image_folder(tmp_path / "ds" / "test", {"circle": 2, "square": 2})
    uri = evaluation_backend.storage.put_folder(tmp_path / "ds", "datasets/shapes-ds")
    evaluation_backend.store.put_dataset(DatasetRecord("shapes-ds", uri, "test", time.time()))
    try:
        at = open_page("deploy", timeout=TIMEOUT)
        assert at.radio(key="eval_source").value == "dataset"
        assert at.selectbox(key="eval_dataset").value == "shapes-ds"
        at.button(key="eval_button").click().run()
        assert not at.exception and not at.error
        assert metric(at, "Images") == ["4"]
        assert any("on dataset shapes-ds, test/" in m.value for m in at.markdown)
        assert any("the endpoint knows 1 labels that no class folder has (cross)" in w.value for w in at.warning)
        assert list((evaluation_backend.settings.workspace / "evaluations").iterdir()) == []  # images removed
    finally:
        evaluation_backend.storage.delete("datasets/shapes-ds")


def test_a_bad_zip_says_why(evaluation_backend: Backend) -> None:
    at = evaluate_zip(b"these bytes are not a zip archive")

    (error,) = [e.value for e in at.error]
    assert "shapes.zip" in error and "zip" in error.lower()
    assert not metric(at, "Accuracy")


def test_classes_the_model_does_not_know_say_so(evaluation_backend: Backend, tmp_path: Path) -> None:
    at = evaluate_zip(shapes_zip(tmp_path, classes=("apple", "pear")))

    assert [e.value for e in at.error] == [
        "none of the 2 class folders (apple, pear) is a label of endpoint 'shapes-b', whose model knows 3 labels "
        "(circle, cross, square): it was trained on other classes, or the folders are named differently"]
    assert not metric(at, "Accuracy")
