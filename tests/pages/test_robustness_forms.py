"""Bad form input and a missing AWS account, as the user meets them in the app: the Training
form refuses an invalid or taken job name and starts nothing; the aws backend without
credentials says so, and what to do, in the sidebar and on every page, which then runs nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.backend import Backend
from core.entities import DatasetRecord, TrainingJob
from core.types import JobStatus
from tests.core.aws_fixtures import BUCKET, REGION, clear_aws_environment
from tests.pages.conftest import APP, open_page

NO_CREDENTIALS = ("No AWS credentials found: set a profile (SMC_AWS_PROFILE) or the AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY environment variables, or run `aws sso login` for an SSO profile")


def add_dataset(backend: Backend, tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "train" / "a").mkdir(parents=True)
    backend.store.put_dataset(DatasetRecord("digits", folder.as_uri(), "demo", time.time(),
                                            {"total_images": 3, "classes": ["a"]}))


@pytest.mark.parametrize(("name", "message"), [
    ("bad_name!", "job name 'bad_name!': use 1-63 letters, digits and hyphens, starting and ending with a "
                  "letter or digit"),
    ("taken-job", "a training job named 'taken-job' already exists"),
])
def test_training_form_refuses_a_bad_or_taken_job_name(local_backend: Backend, tmp_path: Path, name: str,
                                                       message: str) -> None:
    add_dataset(local_backend, tmp_path)
    local_backend.store.insert_job(TrainingJob(name="taken-job", status=JobStatus.COMPLETED, backend="local",
                                               created_at=time.time()))
    at = open_page("training")
    at.text_input(key="job_name").input(name)
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    assert message in [e.value for e in at.error]
    assert [j.name for j in local_backend.runner.list_jobs()] == ["taken-job"]
    assert not (local_backend.settings.workspace / "jobs").exists()


def test_aws_backend_without_credentials_says_so_on_every_page(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    clear_aws_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("SMC_BACKEND", "aws")
    monkeypatch.setenv("SMC_REGION", REGION)
    monkeypatch.setenv("SMC_BUCKET", BUCKET)
    monkeypatch.setenv("SMC_WORKSPACE", str(tmp_path / "ws"))
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [e.value for e in at.sidebar.error] == ["AWS backend: no usable credentials"]
    assert NO_CREDENTIALS in [c.value for c in at.sidebar.caption]
    for page in ("data", "training", "tuning", "debugger", "profiler", "deploy", "spot", "lambda_fn"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, page  # no page runs (and fails on its first AWS call) without an account
        assert [e.value for e in at.main.error] == [
            "AWS backend: no usable credentials: the pages need a working AWS backend."], page
        assert f"- {NO_CREDENTIALS}" in [m.value for m in at.main.markdown]


def test_check_again_picks_up_credentials_given_after_the_app_started(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    from moto import mock_aws

    from tests.core.aws_fixtures import FAKE_ACCESS_KEY, FAKE_SECRET

    clear_aws_environment(monkeypatch, tmp_path)
    for name, value in {"SMC_BACKEND": "aws", "SMC_REGION": REGION, "SMC_BUCKET": BUCKET,
                        "SMC_WORKSPACE": str(tmp_path / "ws")}.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert [e.value for e in at.sidebar.error] == ["AWS backend: no usable credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)  # the user exports keys, then checks again
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    with mock_aws():
        import boto3

        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        at.button(key="health_recheck").click().run()
        assert not at.exception
        assert [s.value for s in at.sidebar.success] == ["AWS backend: account 123456789012 in us-east-1"]
        assert not at.main.error
