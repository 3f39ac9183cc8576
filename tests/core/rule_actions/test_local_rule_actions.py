"""The local chain's own parts (the contract suite holds both backends to the rest): a fired-rule
event on the local bus runs the action zip in its own process, whose Publish lands in the local topic."""

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


def test_the_local_topic_keeps_what_the_function_published(actions: LocalRuleActions, runner: LocalJobRunner,
                                                           tmp_path: Path) -> None:
    """What the contract suite cannot see on both backends: the local "inbox" of a topic."""
    actions.deploy(ActionsSpec(topic_name="alerts"))
    _start(runner, tmp_path, "act-1")
    actions.put_event(_fired("act-1"))
    assert _wait(runner, "act-1", lambda s: s.is_terminal) is JobStatus.STOPPED
    published = [json.loads(line) for line in (tmp_path / "ws" / "rule-actions" / "topics" / "alerts.jsonl")
                 .read_text().splitlines()]
    assert [m["Subject"] for m in published] == ["LossNotDecreasing fired on act-1"]
    assert "at step 10 (tensor loss): the loss rose" in published[0]["Message"]
