"""The RuleActions contract (core/rule_actions/_base.py), held to the same assertions on both backends.

Local: the local bus, the action zip in its own process, the loopback SageMaker and SNS, local
jobs running a small stand-in script. aws: moto behind the stand-ins: IAM, Lambda (its code
run by the Lambda stand-in, as its role), EventBridge (the events stand-in delivers PutEvents to
the function), SageMaker (StopTrainingJob held to the caller's role policy), SNS and CloudWatch
Logs (the outcomes are read back from the function's log group).
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.backend import Backend
from core.rule_actions import ActionRecord, ActionsSpec, RuleActions
from core.training import TrainingJobSpec
from core.types import JobStatus
from entrypoints.rule_events import fired_entry

SLEEPER = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print("sleeping", flush=True)
    time.sleep(60)
""")
WAIT_S = 90.0


@pytest.fixture
def actions(backend: Backend) -> RuleActions:
    return backend.rule_actions


@pytest.fixture
def start_job(backend: Backend, tmp_path: Path) -> Callable[[str], None]:
    """Starts a job that runs until stopped (locally a sleeping script; on aws a stand-in job
    that stays InProgress while nobody describes it)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(SLEEPER)
    data = tmp_path / "data"
    (data / "train" / "a").mkdir(parents=True)
    (data / "train" / "a" / "1.txt").write_text("1")
    data_uri = backend.storage.put_folder(data, "datasets/tiny")

    def start(name: str) -> None:
        backend.runner.start(TrainingJobSpec(name=name, inputs={"training": data_uri}, source_dir=source))

    return start


def _fired(job: str, *, stop: bool = True) -> dict[str, str]:
    return fired_entry(job=job, rule="LossNotDecreasing", step=10, tensor="loss", finding="the loss rose",
                       stop_training=stop)


def _record(actions: RuleActions, job: str, event_id: str) -> ActionRecord:
    """The function's record of the event (EventBridge delivers asynchronously)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        records = [r for r in actions.history(job) if r.event_id == event_id]
        if records:
            return records[0]
        assert time.monotonic() < deadline, f"the action function never logged event {event_id}"
        time.sleep(0.3)


def _outcomes(record: ActionRecord) -> list[tuple[str, str]]:
    return [(o.action, o.outcome) for o in record.outcomes]


def _wait_for(backend: Backend, name: str, done: Callable[[JobStatus], bool]) -> JobStatus:
    deadline = time.monotonic() + WAIT_S
    while not done(status := backend.runner.describe(name).status):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


def test_deploy_describe_update_and_remove(actions: RuleActions) -> None:
    assert actions.describe() is None
    deployed = actions.deploy(ActionsSpec(job_prefix="exp-", topic_name="rule-alerts"))
    assert actions.describe() == deployed
    statements = {s["Sid"]: s for s in deployed.policy["Statement"]}
    assert list(statements) == ["StopMatchingTrainingJobs", "PublishToOneTopic", "WriteOwnLogs"]
    assert statements["StopMatchingTrainingJobs"]["Resource"].endswith(":training-job/exp-*")
    assert statements["PublishToOneTopic"]["Resource"] == deployed.topic_arn
    assert deployed.topic_arn is not None and deployed.topic_arn.endswith(":rule-alerts")
    assert deployed.event_pattern["detail"] == {"job": [{"prefix": "exp-"}]}
    assert deployed.function_arn.endswith(":function:debugger-rule-actions") and deployed.bus == "default"
    assert (deployed.job_statement is not None) == actions.evaluates_in_job  # jobs that put events need the right
    assert deployed.job_statement is None or deployed.job_statement["Action"] == "events:PutEvents"
    updated = actions.deploy(ActionsSpec(allow_stop=False))
    assert [s["Sid"] for s in updated.policy["Statement"]] == ["WriteOwnLogs"] and updated.topic_arn is None
    assert "detail" not in updated.event_pattern
    actions.remove()
    assert actions.describe() is None


def test_a_fired_rule_stops_its_running_job_and_notifies_the_topic(backend: Backend, actions: RuleActions,
                                                                   start_job: Callable[[str], None]) -> None:
    actions.deploy(ActionsSpec(topic_name="rule-alerts"))
    start_job("chain-1")
    _wait_for(backend, "chain-1", lambda s: s is JobStatus.IN_PROGRESS)
    event_id = actions.put_event(_fired("chain-1"))
    record = _record(actions, "chain-1", event_id)
    assert _outcomes(record) == [("StopTrainingJob", "stopped"), ("Publish", "notified")]
    assert (record.rule, record.step) == ("LossNotDecreasing", 10)
    assert _wait_for(backend, "chain-1", lambda s: s.is_terminal) is JobStatus.STOPPED
    assert actions.history("chain-1", since=record.at - 60) == [record]
    assert actions.history("chain-1", since=time.time() + 3600) == []  # logged before then: not read


def test_an_event_for_a_job_that_ended_or_never_was_stops_nothing(backend: Backend, actions: RuleActions,
                                                                  start_job: Callable[[str], None]) -> None:
    actions.deploy(ActionsSpec())
    start_job("chain-2")
    backend.runner.stop("chain-2")
    _wait_for(backend, "chain-2", lambda s: s.is_terminal)
    ended = _record(actions, "chain-2", actions.put_event(_fired("chain-2")))
    assert _outcomes(ended) == [("StopTrainingJob", "already ended")]
    assert "is in status Stopped" in ended.outcomes[0].message
    unknown = _record(actions, "no-such-job", actions.put_event(_fired("no-such-job")))
    assert _outcomes(unknown) == [("StopTrainingJob", "not found")]


def test_without_the_permission_the_stop_is_denied_and_the_job_runs_on(backend: Backend, actions: RuleActions,
                                                                        start_job: Callable[[str], None]) -> None:
    actions.deploy(ActionsSpec(allow_stop=False))
    start_job("chain-3")
    _wait_for(backend, "chain-3", lambda s: s is JobStatus.IN_PROGRESS)
    record = _record(actions, "chain-3", actions.put_event(_fired("chain-3")))
    assert _outcomes(record) == [("StopTrainingJob", "denied")]
    assert "is not authorized to perform: sagemaker:StopTrainingJob on resource:" in record.outcomes[0].message
    assert ":training-job/chain-3 " in record.outcomes[0].message
    assert backend.runner.describe("chain-3").status is JobStatus.IN_PROGRESS


def test_only_the_events_of_matching_jobs_reach_the_function(actions: RuleActions) -> None:
    actions.deploy(ActionsSpec(job_prefix="exp-", topic_name="rule-alerts"))
    other = actions.put_event(_fired("other-1"))
    notified = _record(actions, "exp-1", actions.put_event(_fired("exp-1", stop=False)))
    assert _outcomes(notified) == [("Publish", "notified")]  # that rule has no StopTraining action
    assert not [r for r in actions.history() if r.event_id == other]
