"""The Tuning page's tables: leaderboard order, the best trial, learning curves."""

from __future__ import annotations

import math
from pathlib import Path

from core.entities import MetricPoint, TrainingJob
from core.jobstore import JobStore
from core.tuning.charts import learning_curves_figure
from core.tuning.entities import TrialStatus
from core.tuning.spec import ObjectiveType
from core.tuning.views import best_of, has_objective, leaderboard, learning_curves
from core.types import JobStatus
from tests.core.tuning.tuning_cases import TRIALS, make_spec, trial


def test_leaderboard_puts_the_highest_objective_first_when_maximizing() -> None:
    board = leaderboard(TRIALS, make_spec(ObjectiveType.MAXIMIZE))
    assert list(board["trial"]) == [3, 6, 1, 4, 2, 5]  # 1-based; no objective last, by number
    assert list(board.columns) == ["trial", "job name", "status", "lr", "batch-size", "epochs", "objective",
                                   "epochs run", "duration (s)", "pruned", "best"]
    top = board.iloc[0]
    assert top["job name"] == "tune-a-003" and top["lr"] == 0.005 and top["batch-size"] == "64" and top["epochs"] == 3
    assert list(board["best"]) == [True, False, False, False, False, False]
    assert list(board["pruned"]) == [False, False, False, True, False, False]
    assert board.iloc[0]["duration (s)"] == 100.0
    assert list(board["epochs run"]) == [3, 2, 2, 1, 0, 0]
    assert board.iloc[-1]["status"] == "InProgress"


def test_leaderboard_puts_the_lowest_objective_first_when_minimizing() -> None:
    board = leaderboard(TRIALS, make_spec(ObjectiveType.MINIMIZE, objective_metric="validation:loss"))
    assert list(board["trial"]) == [4, 1, 6, 3, 2, 5]
    # The pruned trial has the lowest value but the best is the best *completed* trial.
    assert board.loc[board["best"], "trial"].tolist() == [1]
    assert best_of(TRIALS, make_spec(ObjectiveType.MINIMIZE)).number == 0  # type: ignore[union-attr]


def test_leaderboard_of_no_trials_has_the_columns() -> None:
    board = leaderboard([], make_spec())
    assert board.empty and "objective" in board.columns and "lr" in board.columns
    assert best_of([], make_spec()) is None


def test_learning_curves_come_from_each_trials_training_job(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "console.db")
    for name in ("tune-a-001", "tune-a-002"):
        store.insert_job(TrainingJob(name=name, status=JobStatus.COMPLETED, backend="local", created_at=1.0))
    store.add_metrics("tune-a-001", [
        MetricPoint("validation:accuracy", 0.4, 0, 10.0), MetricPoint("validation:loss", 1.2, 0, 10.0),
        MetricPoint("validation:accuracy", 0.6, 1, 11.0),
    ])
    store.add_metrics("tune-a-002", [
        MetricPoint("validation:accuracy", 0.5, 0, 20.0),
        MetricPoint("validation:accuracy", 0.55, 0, 25.0),  # the step again after a resume: the last wins
    ])
    trials = [trial(1, 0.55), trial(0, 0.6), trial(2, None, TrialStatus.PENDING)]  # trial 3 has no job yet
    curves = learning_curves(store.get_metrics, trials, "validation:accuracy")
    assert curves.to_dict("records") == [
        {"trial": 1, "epoch": 1, "value": 0.4}, {"trial": 1, "epoch": 2, "value": 0.6},
        {"trial": 2, "epoch": 1, "value": 0.55},
    ]
    assert learning_curves(store.get_metrics, trials, "test:accuracy").empty
    figure = learning_curves_figure(curves, log_y=True, metric="validation:accuracy")
    assert {t.name for t in figure.data} == {"1", "2"}
    assert figure.layout.yaxis.type == "log"


def test_learning_curves_skip_jobs_the_runner_does_not_know(tmp_path: Path) -> None:
    from core.training import LocalJobRunner

    store = JobStore(tmp_path / "console.db")
    runner = LocalJobRunner(store, tmp_path / "jobs", "/bin/echo")
    assert learning_curves(runner.metrics, [trial(0, None, TrialStatus.PENDING)], "validation:accuracy").empty


def test_only_a_finite_objective_counts() -> None:
    assert has_objective(trial(0, 0.5)) and has_objective(trial(0, -1e9))
    assert not any(has_objective(trial(0, value)) for value in (None, math.nan, math.inf))
