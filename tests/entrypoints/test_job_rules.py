"""The rules evaluated inside a job (entrypoints/job_rules.py), on synthetic trials in a folder and
in S3 (moto on 127.0.0.1; the EventBridge stand-in checks each PutEvents against botocore's model),
and the console's evaluator showing what the job sent without acting itself."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from core.debugger import DebugStore, RuleStatus
from core.entities import TrainingJob
from core.jobstore import JobStore
from core.types import JobStatus
from tests.core.aws_fixtures import (  # noqa: F401  (no_network registers on import, autouse)
    FAKE_ACCESS_KEY,
    FAKE_SECRET,
    REGION,
    clear_aws_environment,
    moto_server,
    no_network_fixture,
)
from tests.entrypoints.test_debug_sidecar import _env, _hyperparameters, _sidecar, _write
from tests.standins.events import EventsStandIn

JOB = "job-1"


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """moto (bucket ``bucket``) and the EventBridge stand-in in front of it; the environment a job gets."""
    clear_aws_environment(monkeypatch, tmp_path)
    with moto_server() as moto, EventsStandIn(moto, "http://127.0.0.1:9") as events:
        env = {"AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
               "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": moto}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket="bucket")
        yield {**env, "AWS_ENDPOINT_URL_EVENTBRIDGE": events.url}
        assert not events.errors, events.errors


def _job_rules(trial: str, env: dict[str, str], *, rules: str = "LossNotDecreasing:stop,AllZero") -> str:
    """Runs the in-job evaluator to its end; its output. The training pid is above Linux's largest
    (2**22): the training has ended, so it makes one final pass."""
    done = subprocess.run(
        [str(DEFAULT_JOB_PYTHON), str(ENTRYPOINTS_DIR / "job_rules.py"), "--trial", trial, "--job-name", JOB,
         "--rules", rules, "--training-pid", str(2**22 + 1), "--poll-s", "0.2"],
        env={**_env(), **env}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_a_fired_rule_is_put_on_the_bus_and_recorded_beside_the_trial(aws_env: dict[str, str],
                                                                      tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / JOB
    _write(job_dir, "diverging", "--end")
    output = _job_rules(str(job_dir / "debug-output"), aws_env)
    record = json.loads((job_dir / "debug-output" / "rule-events" / "LossNotDecreasing.json").read_text())
    assert record["event_id"] and "error" not in record and record["bus"] == "default"
    assert record["entry"]["Source"] == "ml-console.debugger" and record["entry"]["EventBusName"] == "default"
    detail = json.loads(record["entry"]["Detail"])
    assert (detail["job"], detail["rule"], detail["step"], detail["stop_training"]) == (JOB, "LossNotDecreasing", 10,
                                                                                         True)
    assert f"event {record['event_id']} put on the default bus" in output
    assert not (job_dir / "debug-output" / "rule-events" / "AllZero.json").exists()  # it did not fire


def test_an_s3_trial_is_read_and_its_record_written_to_s3(aws_env: dict[str, str], tmp_path: Path) -> None:
    local = tmp_path / "trial"
    _write(local.parent, "diverging", "--end")  # writes <parent>/debug-output
    for path in (local.parent / "debug-output").rglob("*"):
        if path.is_file():
            key = f"jobs/{JOB}/debug-output/{path.relative_to(local.parent / 'debug-output').as_posix()}"
            boto3.client("s3").upload_file(str(path), "bucket", key)
    _job_rules(f"s3://bucket/jobs/{JOB}/debug-output", aws_env)
    body = boto3.client("s3").get_object(Bucket="bucket", Key=f"jobs/{JOB}/debug-output/rule-events/"
                                                              "LossNotDecreasing.json")["Body"].read()
    assert json.loads(body)["event_id"]


def test_a_refused_event_is_recorded_with_its_error(aws_env: dict[str, str], tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / JOB
    _write(job_dir, "diverging", "--end")
    output = _job_rules(str(job_dir / "debug-output"), {**aws_env, "AWS_ENDPOINT_URL_EVENTBRIDGE": "http://127.0.0.1:9"})
    record = json.loads((job_dir / "debug-output" / "rule-events" / "LossNotDecreasing.json").read_text())
    assert "event_id" not in record and "Could not connect" in record["error"]
    assert "the event could not be put" in output


def test_the_console_shows_what_the_job_sent_and_leaves_the_stop_to_it(tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / JOB
    (job_dir / "input" / "config").mkdir(parents=True)
    jobs = JobStore(tmp_path / "console.db")
    jobs.insert_job(TrainingJob(name=JOB, status=JobStatus.IN_PROGRESS, backend="local", created_at=time.time()),
                    job_dir=job_dir)
    store = DebugStore(jobs)
    _hyperparameters(job_dir, **{"debug-rules": "LossNotDecreasing:stop", "debug-event-bus": "default",
                                 "debug-rules-in-job": "true"})
    _write(job_dir, "diverging", "--end")
    entry = {"Source": "ml-console.debugger", "DetailType": "Debugger Rule Fired", "Detail": "{}",
             "EventBusName": "default"}
    records = job_dir / "debug-output" / "rule-events"
    records.mkdir()
    (records / "LossNotDecreasing.json").write_text(json.dumps(
        {"rule": "LossNotDecreasing", "sent_at": 1.0, "bus": "default", "entry": entry, "event_id": "ev-9"}))
    supervisor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", str(job_dir)])
    try:
        jobs.update_job(JOB, supervisor_pid=supervisor.pid)
        _sidecar(store, job_dir)
        time.sleep(0.5)
        assert supervisor.poll() is None  # not stopped by the console: the job acts on its own rules
    finally:
        os.kill(supervisor.pid, signal.SIGKILL)
    [event] = store.events(JOB)
    assert (event.rule, event.event_id, event.sent_at) == ("LossNotDecreasing", "ev-9", 1.0)
    assert {r.rule: r.status for r in store.rules(JOB)} == {"LossNotDecreasing": RuleStatus.ISSUES_FOUND}
    assert "LossNotDecreasing: the job put event ev-9 on the default bus" in [n.message for n in store.notifications(JOB)]
