"""The seams between pages: a first visit says what to do first, and each page's link to the
next step arrives with what the previous one made already chosen."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.backend import Backend
from tests.pages.conftest import APP, open_page
from tests.pages.test_deploy_page import seed_completed_job
from tests.pages.test_tuning_page import add_dataset, seed_tuning_job


def open_linked_page(name: str, **query: str) -> AppTest:
    """Opens app_pages/<name>.py as a link with ``?key=value`` does."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.query_params.update(query)
    return at.switch_page(f"app_pages/{name}.py").run()


def test_a_first_visit_lists_the_path_and_the_sidebar_names_the_first_step(local_backend: Backend) -> None:
    at = open_page("data")
    assert not at.exception
    assert at.expander[0].label == "Getting started"
    links = [link.proto for link in at.main.get("page_link")]
    assert [link.page for link in links] == ["", "tuning", "deploy", "lambda_fn", "spot"]  # "": the default page
    assert links[0].label == "1. Bring a dataset ◻️"
    assert links[4].label == "5. Train for less on EC2 Spot ◻️ (optional)"
    assert [link.proto.label for link in at.sidebar.get("page_link")] == ["Next: Bring a dataset"]


def test_with_a_dataset_the_next_step_is_a_model(local_backend: Backend, tmp_path: Path) -> None:
    add_dataset(local_backend, tmp_path)
    at = open_page("data")
    assert [link.proto.label for link in at.sidebar.get("page_link")] == ["Next: Tune or train a model"]
    labels = [link.proto.label for link in at.main.get("page_link")]
    assert labels[0] == "1. Bring a dataset ✅"
    assert {"Tune hyperparameters on a dataset →", "Train a model on a dataset →"} <= set(labels)


def test_a_completed_job_links_to_deploying_its_model(local_backend: Backend) -> None:
    seed_completed_job(local_backend, "digits-job", "file:///models/digits-job/model.tar.gz")
    at = open_page("training")
    links = {link.proto.label: (link.proto.page, link.proto.query_string) for link in at.main.get("page_link")}
    assert links["Deploy the model of digits-job"] == ("deploy", "job=digits-job")
    assert links["Debugger view of digits-job"] == ("debugger", "job=digits-job")


def test_a_deploy_link_with_a_job_chooses_that_job(local_backend: Backend) -> None:
    seed_completed_job(local_backend, "older-job", "file:///models/older/model.tar.gz")
    seed_completed_job(local_backend, "newer-job", "file:///models/newer/model.tar.gz")
    at = open_linked_page("deploy", job="older-job")
    assert not at.exception
    assert at.radio(key="deploy_source").value == "job"
    assert at.selectbox(key="deploy_job").value == "older-job"
    assert any("file:///models/older/model.tar.gz" in c.value for c in at.caption)
    assert "job" not in at.query_params  # read once: the user's own choice sticks afterwards


def test_a_deploy_link_with_a_tuning_job_chooses_its_best_trial(local_backend: Backend, tmp_path: Path) -> None:
    seed_tuning_job(local_backend, add_dataset(local_backend, tmp_path))
    at = open_linked_page("deploy", tuning="tune-seeded")
    assert not at.exception
    assert at.radio(key="deploy_source").value == "tuning"
    assert at.selectbox(key="deploy_tuning_job").value == "tune-seeded"
    assert any("Best trial 2: training job `tune-seeded-002`" in c.value for c in at.caption)
    assert any("file:///models/tune-seeded-002/model.tar.gz" in c.value for c in at.caption)
