"""The local chain end to end: a fired-rule event on the local bus runs the action zip in its own
process, whose boto3 calls reach the loopback SageMaker and SNS, authorised by its role's policy."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import DEFAULT_JOB_PYTHON
from core.jobstore import JobStore
from core.rule_actions import ActionsSpec
from core.rule_actions._local import LocalRuleActions
from core.training import LocalJobRunner, TrainingJobSpec
from core.types import JobStatus
from entrypoints.rule_events import fired_entry

SLEEPER = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print("sleeping", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[LocalJobRunner]:
    runner = LocalJobRunner(JobStore(tmp_path / "ws" / "console.db"), tmp_path / "ws" / "jobs", Path(sys.executable),
                            sidecars=[])
    yield runner
    for job in runner.list_jobs():
        if not job.status.is_terminal:
            runner.stop(job.name)


@pytest.fixture
def actions(tmp_path: Path, runner: LocalJobRunner) -> LocalRuleActions:
    return LocalRuleActions(tmp_path / "ws", DEFAULT_JOB_PYTHON, runner)


def _start(runner: LocalJobRunner, tmp_path: Path, name: str) -> None:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "train.py").write_text(SLEEPER)
    (tmp_path / "data" / "train").mkdir(parents=True, exist_ok=True)
    runner.start(TrainingJobSpec(name=name, inputs={"training": (tmp_path / "data").as_uri()}, source_dir=source))
    _wait(runner, name, lambda status: status is JobStatus.IN_PROGRESS and "sleeping" in "".join(runner.log_tail(name)))


def _wait(runner: LocalJobRunner, name: str, done: object, timeout_s: float = 60) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while not done(status := runner.describe(name).status):  # type: ignore[operator]
        assert time.monotonic() < deadline, (status, runner.log_tail(name))
        time.sleep(0.1)
    return status


def _fired(job: str, *, stop: bool = True) -> dict[str, str]:
    return fired_entry(job=job, rule="LossNotDecreasing", step=10, tensor="loss", finding="the loss rose",
                       stop_training=stop)


def _outcomes(actions: LocalRuleActions, job: str) -> list[tuple[str, str]]:
    return [(o.action, o.outcome) for record in actions.history(job) for o in record.outcomes]


def test_deploy_writes_a_least_privilege_role_and_the_routing_pattern(actions: LocalRuleActions) -> None:
    assert actions.describe() is None
    deployed = actions.deploy(ActionsSpec(job_prefix="exp-", topic_name="alerts"))
    statements = {s["Sid"]: s for s in deployed.policy["Statement"]}
    assert statements["StopMatchingTrainingJobs"]["Action"] == "sagemaker:StopTrainingJob"
    assert statements["StopMatchingTrainingJobs"]["Resource"].endswith(":training-job/exp-*")
    assert statements["PublishToOneTopic"]["Resource"] == deployed.topic_arn == \
        "arn:aws:sns:us-east-1:000000000000:alerts"
    assert deployed.event_pattern == {"source": ["ml-console.debugger"], "detail-type": ["Debugger Rule Fired"],
                                      "detail": {"job": [{"prefix": "exp-"}]}}
    again = actions.deploy(ActionsSpec(job_prefix="exp-", allow_stop=False))
    assert [s["Sid"] for s in again.policy["Statement"]] == ["WriteOwnLogs"] and again.topic_arn is None
    actions.remove()
    assert actions.describe() is None


def test_a_fired_rule_stops_its_running_job_and_notifies(actions: LocalRuleActions, runner: LocalJobRunner,
                                                         tmp_path: Path) -> None:
    actions.deploy(ActionsSpec(topic_name="alerts"))
    _start(runner, tmp_path, "act-1")
    event_id = actions.put_event(_fired("act-1"))
    assert _wait(runner, "act-1", lambda s: s.is_terminal) is JobStatus.STOPPED
    records = actions.history("act-1")
    assert [r.event_id for r in records] == [event_id]
    assert _outcomes(actions, "act-1") == [("StopTrainingJob", "stopped"), ("Publish", "notified")]
    published = [json.loads(line) for line in (tmp_path / "ws" / "rule-actions" / "topics" / "alerts.jsonl")
                 .read_text().splitlines()]
    assert [m["Subject"] for m in published] == ["LossNotDecreasing fired on act-1"]


def test_an_event_for_an_ended_or_unknown_job_stops_nothing(actions: LocalRuleActions, runner: LocalJobRunner,
                                                            tmp_path: Path) -> None:
    actions.deploy(ActionsSpec())
    _start(runner, tmp_path, "act-2")
    runner.stop("act-2")
    _wait(runner, "act-2", lambda s: s.is_terminal)
    actions.put_event(_fired("act-2"))
    actions.put_event(_fired("no-such-job"))
    assert _outcomes(actions, "act-2") == [("StopTrainingJob", "already ended")]
    assert _outcomes(actions, "no-such-job") == [("StopTrainingJob", "not found")]


def test_without_the_permission_the_stop_is_denied_and_the_job_runs_on(actions: LocalRuleActions,
                                                                        runner: LocalJobRunner, tmp_path: Path) -> None:
    actions.deploy(ActionsSpec(allow_stop=False))
    _start(runner, tmp_path, "act-3")
    actions.put_event(_fired("act-3"))
    [record] = actions.history("act-3")
    assert [(o.action, o.outcome) for o in record.outcomes] == [("StopTrainingJob", "denied")]
    assert "is not authorized to perform: sagemaker:StopTrainingJob" in record.outcomes[0].message
    assert runner.describe("act-3").status is JobStatus.IN_PROGRESS


def test_only_matching_events_reach_the_function(actions: LocalRuleActions) -> None:
    actions.deploy(ActionsSpec(job_prefix="exp-", topic_name="alerts"))
    actions.put_event(_fired("other-1"))
    actions.put_event(_fired("exp-1", stop=False))
    assert actions.history("other-1") == []
    assert _outcomes(actions, "exp-1") == [("Publish", "notified")]  # no StopTraining on that rule
    actions.remove()
    actions.put_event(_fired("exp-2"))  # the bus takes it; nothing routes it any more
    assert actions.history("exp-2") == []
