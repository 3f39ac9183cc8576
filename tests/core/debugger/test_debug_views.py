"""core.debugger.views and charts: what the page shows, shaped from store rows."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from core.debugger import DebugStore, RuleResult, RuleStatus, SeriesRow, TrialState, charts, views
from core.debugger.entities import DebugTrial
from core.jobstore import JobStore

LOSS = "CrossEntropyLoss_output_0"


@pytest.fixture
def store(tmp_path: Path) -> DebugStore:
    store = DebugStore(JobStore(tmp_path / "console.db"))
    points = [SeriesRow(LOSS, "losses", "TRAIN", s, s, {"value": 2.0 - 0.1 * s}) for s in range(10)]
    points += [SeriesRow(LOSS, "losses", "EVAL", 10 + i, i, {"value": v}) for i, v in enumerate((1.0, 1.2))]
    points += [SeriesRow(LOSS, "losses", "TRAIN", 12 + s, 10 + s, {"value": 1.0}) for s in range(5)]
    points += [SeriesRow(LOSS, "losses", "EVAL", 17 + i, 2 + i, {"value": v}) for i, v in enumerate((0.5, 0.7))]
    for name, position in (("gradient/EfficientNet__fc.weight", 1), ("gradient/EfficientNet__conv_stem.weight", 0)):
        store.add_tensors("job", {name: ("gradients", position)})
        for step in (0, 5):
            points.append(SeriesRow(name, "gradients", "TRAIN", step, step, {
                "l2": 10.0 ** (position - step), "min": -1.0, "max": 1.0, "mean": 0.1, "std": 0.5}))
    store.add_series("job", points)
    return store


def test_loss_curves_separate_train_and_validation_passes(store: DebugStore) -> None:
    curves = views.loss_curves(store, "job", smoothing=3)
    assert set(curves["series"]) == {"train (batch)", "train (mean of 3)", "validation (pass mean)"}
    passes = curves[curves["series"] == "validation (pass mean)"]
    assert list(passes["step"]) == [11, 18] and list(passes["loss"]) == pytest.approx([1.1, 0.6])
    smooth = curves[curves["series"] == "train (mean of 3)"]["loss"].tolist()
    assert smooth[2] == pytest.approx((2.0 + 1.9 + 1.8) / 3)
    assert len(curves[curves["series"] == "train (batch)"]) == 15


def test_empty_job_gives_empty_frames(tmp_path: Path) -> None:
    empty = DebugStore(JobStore(tmp_path / "empty.db"))
    assert views.loss_curves(empty, "none").empty
    assert views.heatmap(empty, "none").empty
    assert views.layer_profile(empty, "none", "weights").empty
    assert views.saved_steps(empty, "none", "weights") == []


def test_heatmap_rows_follow_the_model_order_with_short_names(store: DebugStore) -> None:
    matrix = views.heatmap(store, "job", collection="gradients", reduction="l2")
    assert list(matrix.index) == ["_conv_stem.weight", "_fc.weight"]
    assert list(matrix.columns) == [0, 5]
    assert matrix.loc["_fc.weight", 0] == pytest.approx(10.0)
    figure = charts.heatmap_figure(matrix, title="t")
    assert figure.data[0].z[1][0] == pytest.approx(1.0)  # log10(10)


def test_tensor_stats_and_layer_profile(store: DebugStore) -> None:
    stats = views.tensor_stats(store, "job", "gradients", "gradient/EfficientNet__fc.weight")
    assert list(stats["step"]) == [0, 5] and {"l2", "min", "max", "mean", "std"} == set(stats.columns) - {"step"}
    profile = views.layer_profile(store, "job", "gradients")
    assert list(profile["layer"]) == ["_conv_stem.weight", "_fc.weight"] and set(profile["step"]) == {5}
    assert views.layer_profile(store, "job", "gradients", step=0)["step"].iloc[0] == 0
    assert views.saved_steps(store, "job", "gradients") == [0, 5]
    for figure in (charts.stats_figure(stats, title="s"), charts.line_figure(stats, ["l2"], title="n", log=True),
                   charts.profile_figure(profile, title="p"), charts.loss_figure(views.loss_curves(store, "job"))):
        assert figure.data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gradient/EfficientNet__blocks.0._bn1.weight", "_blocks.0._bn1.weight"),
        ("ResNet_layer1.0.conv1.weight", "layer1.0.conv1.weight"),
        ("_blocks.3._swish_output_0", "_blocks.3._swish_output_0"),
        ("CrossEntropyLoss_output_0", "CrossEntropyLoss_output_0"),
    ],
)
def test_layer_names(name: str, expected: str) -> None:
    assert views.layer_name(name) == expected


def test_rules_table_puts_issues_first() -> None:
    now = time.time()
    rules = [RuleResult("job", "AllZero", RuleStatus.NO_ISSUES_FOUND, now),
             RuleResult("job", "DeadRelu", RuleStatus.ERROR, now, message="no data"),
             RuleResult("job", "LossNotDecreasing", RuleStatus.ISSUES_FOUND, now, step=10, message="rose",
                        tensor="CrossEntropyLoss_output_0", stop_training=True)]
    table = views.rules_table(rules)
    assert list(table["rule"]) == ["LossNotDecreasing", "DeadRelu", "AllZero"]
    assert table.iloc[0]["action"] == "StopTraining" and table.iloc[0]["step"] == 10
    assert views.rules_table([]).empty


def _trial(state: TrialState, steps: int = 0, message: str | None = None) -> DebugTrial:
    return DebugTrial("job", "/jobs/job/debug-output", state, time.time(), message=message, steps=steps)


def test_banner_explains_every_empty_state() -> None:
    assert views.banner(None, job_running=True).text.startswith("Waiting for the rule evaluator")  # type: ignore[union-attr]
    assert "No debugger data" in views.banner(None, job_running=False).text  # type: ignore[union-attr]
    reading = views.banner(None, job_running=False, reading=True)  # a SageMaker job's evaluator, after the job
    assert reading is not None and "reading the job's trial" in reading.text
    waiting = views.banner(_trial(TrialState.WAITING), job_running=True)
    assert waiting is not None and "/jobs/job/debug-output" in waiting.text
    ended = views.banner(_trial(TrialState.WAITING), job_running=False)  # the evaluator has not concluded yet
    assert ended is not None and "has ended" in ended.text and "first saved step" not in ended.text
    missing = views.banner(_trial(TrialState.MISSING, message="no debug folder: ..."), job_running=False)
    assert missing == views.Banner("warning", "no debug folder: ...")
    assert views.banner(_trial(TrialState.FAILED, message="boom"), job_running=False) == views.Banner("error", "boom")
    assert views.banner(_trial(TrialState.DISABLED, message="off"), job_running=False).level == "info"  # type: ignore[union-attr]
    assert views.banner(_trial(TrialState.COMPLETE, steps=0), job_running=False) is not None
    assert views.banner(_trial(TrialState.COMPLETE, steps=5), job_running=False) is None


def test_loss_figure_switches_to_log_scale_when_the_loss_explodes() -> None:
    frame = pd.DataFrame({"step": [0, 1, 2], "loss": [2.3, 1e4, 2e4], "series": ["train (batch)"] * 3})
    assert charts.loss_figure(frame).layout.yaxis.type == "log"


def test_rules_summary_counts_each_status() -> None:
    rules = [RuleResult(job_name="job", rule=name, status=status, updated_at=0.0) for name, status in (
        ("Overfit", RuleStatus.NO_ISSUES_FOUND), ("AllZero", RuleStatus.NO_ISSUES_FOUND),
        ("LossNotDecreasing", RuleStatus.ISSUES_FOUND))]
    assert views.rules_summary(rules) == "3 rules: 2 NoIssuesFound, 1 IssuesFound"
