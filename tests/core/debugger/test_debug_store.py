"""DebugStore: the debugger tables the evaluator writes and the console reads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.debugger import DebugStore, RuleResult, RuleStatus, SeriesRow, TrialState
from core.jobstore import JobStore


@pytest.fixture
def store(tmp_path: Path) -> DebugStore:
    return DebugStore(JobStore(tmp_path / "console.db"))


def _rule(name: str, status: RuleStatus = RuleStatus.IN_PROGRESS, **extra: object) -> RuleResult:
    return RuleResult("job", name, status, time.time(), **extra)  # type: ignore[arg-type]


def test_trial_row_is_created_then_updated(store: DebugStore) -> None:
    assert store.trial("job") is None
    store.set_trial("job", path="/jobs/job/debug-output", state=TrialState.WAITING, message="waiting")
    store.set_trial("job", state=TrialState.READING, capture={"save_interval": 10}, steps=12, last_step=11)
    trial = store.trial("job")
    assert trial is not None
    assert (trial.path, trial.state, trial.steps, trial.last_step) == ("/jobs/job/debug-output", TrialState.READING, 12, 11)
    assert trial.capture == {"save_interval": 10} and trial.message == "waiting"


def test_unknown_columns_are_refused(store: DebugStore) -> None:
    with pytest.raises(ValueError, match="unknown trial fields"):
        store.set_trial("job", colour="red")
    store.init_rules("job", [_rule("AllZero")])
    with pytest.raises(ValueError, match="unknown rule fields"):
        store.update_rule("job", "AllZero", colour="red")


def test_rules_keep_their_order_and_updates(store: DebugStore) -> None:
    store.init_rules("job", [_rule("VanishingGradient", parameters={"threshold": 1e-7}),
                             _rule("LossNotDecreasing", stop_training=True)])
    store.update_rule("job", "LossNotDecreasing", status=RuleStatus.ISSUES_FOUND, step=10,
                      tensor="CrossEntropyLoss_output_0", message="rose", evaluated_step=10)
    rules = store.rules("job")
    assert [r.rule for r in rules] == ["VanishingGradient", "LossNotDecreasing"]
    assert rules[0].parameters == {"threshold": 1e-7} and rules[0].status is RuleStatus.IN_PROGRESS
    fired = rules[1]
    assert (fired.status, fired.step, fired.tensor, fired.stop_training) == (
        RuleStatus.ISSUES_FOUND, 10, "CrossEntropyLoss_output_0", True)
    store.init_rules("job", [_rule("AllZero")])  # a restarted evaluator starts over
    assert [r.rule for r in store.rules("job")] == ["AllZero"]


def test_notifications_newest_first(store: DebugStore) -> None:
    store.notify("job", "warning", "first", rule="AllZero", action="Notification")
    store.notify("job", "info", "second", rule="AllZero", action="StopTraining")
    store.notify("other", "info", "elsewhere")
    notes = store.notifications("job")
    assert [(n.message, n.level, n.action) for n in notes] == [("second", "info", "StopTraining"),
                                                                ("first", "warning", "Notification")]


def test_series_filter_and_replace(store: DebugStore) -> None:
    rows = [SeriesRow("g/a", "gradients", "TRAIN", step, step, {"l2": float(step), "mean": -1.0}) for step in (0, 10, 20)]
    rows.append(SeriesRow("loss", "losses", "EVAL", 25, 0, {"value": 0.5, "variance": 3.0}))  # unknown names dropped
    assert store.add_series("job", rows) == 4
    store.add_series("job", [SeriesRow("g/a", "gradients", "TRAIN", 10, 10, {"l2": 99.0})])
    assert store.series("job", "gradients", ["l2", "mean"]) == [("g/a", "TRAIN", 0, 0, 0.0, -1.0),
                                                                ("g/a", "TRAIN", 10, 10, 99.0, None),
                                                                ("g/a", "TRAIN", 20, 20, 20.0, -1.0)]
    assert store.series("job", "gradients", ["l2"], steps=[20]) == [("g/a", "TRAIN", 20, 20, 20.0)]
    assert store.series("job", "losses", ["value"], modes=["TRAIN"]) == []
    assert store.series("job", "losses", ["value"], modes=["EVAL"]) == [("loss", "EVAL", 25, 0, 0.5)]
    with pytest.raises(ValueError, match="unknown series columns"):
        store.series("job", "losses", ["value; DROP TABLE debug_series"])


def test_thinning_keeps_only_the_given_steps(store: DebugStore) -> None:
    store.add_series("job", [SeriesRow("w", "weights", "TRAIN", s, s, {"l2": 1.0}) for s in range(10)])
    store.add_series("job", [SeriesRow("loss", "losses", "TRAIN", s, s, {"value": 1.0}) for s in range(10)])
    store.thin_series("job", ["weights"], [0, 4, 8])
    assert [r[2] for r in store.series("job", "weights", ["l2"])] == [0, 4, 8]
    assert len(store.series("job", "losses", ["value"])) == 10


def test_tensors_in_model_order(store: DebugStore) -> None:
    store.add_tensors("job", {"Net_fc.weight": ("weights", 5), "Net_conv.weight": ("weights", 0),
                              "gradient/Net_conv.weight": ("gradients", 0)})
    store.add_tensors("job", {"Net_fc.weight": ("weights", 99)})  # known ones keep their place
    assert store.tensors("job", "weights") == [("Net_conv.weight", "weights"), ("Net_fc.weight", "weights")]
    assert len(store.tensors("job")) == 3
