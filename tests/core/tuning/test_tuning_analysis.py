"""The Tuning page's analysis: leaderboard order, importance, learning curves, charts, form parsing."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from core.entities import MetricPoint, TrainingJob
from core.errors import InvalidInputError
from core.jobstore import JobStore
from core.tuning.analysis import (
    DEFAULT_RANGE_ROWS,
    best_of,
    build_ranges,
    fixed_hyperparameters,
    full_training_hyperparameters,
    importance_bar,
    learning_curves,
    learning_curves_figure,
    leaderboard,
    objective_over_time,
    parallel_coordinates,
    parameter_importance,
)
from core.tuning.entities import Trial, TrialStatus
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    ObjectiveType,
    Scaling,
    TuningJobSpec,
)
from core.types import JobStatus

RANGES = (
    ContinuousRange("lr", 1e-4, 1e-2, Scaling.LOGARITHMIC),
    CategoricalRange("batch-size", ("16", "32", "64")),
    IntegerRange("epochs", 1, 3, Scaling.LINEAR),
)


def make_spec(objective_type: ObjectiveType = ObjectiveType.MAXIMIZE, **changes: object) -> TuningJobSpec:
    values: dict[str, object] = {"name": "tune-a", "ranges": RANGES, "inputs": {"training": "file:///data"},
                                 "objective_type": objective_type, **changes}
    return TuningJobSpec(**values)  # type: ignore[arg-type]


def trial(number: int, objective: float | None, status: TrialStatus = TrialStatus.COMPLETED,
          lr: str = "0.001", batch: str = "32", epochs: str = "2", ended_at: float | None = None) -> Trial:
    return Trial(number=number, job_name=f"tune-a-{number + 1:03d}", status=status,
                 hyperparameters={"lr": lr, "batch-size": batch, "epochs": epochs}, objective=objective,
                 epochs_run=int(epochs) if objective is not None and epochs.isdigit() else 0,
                 started_at=1000.0 + number,
                 ended_at=ended_at if ended_at is not None else (1100.0 + number if status.is_terminal else None))


TRIALS = [
    trial(0, 0.50),
    trial(1, None, TrialStatus.FAILED),
    trial(2, 0.90, lr="0.005", batch="64", epochs="3"),
    trial(3, 0.30, TrialStatus.PRUNED, epochs="1"),
    trial(4, None, TrialStatus.IN_PROGRESS),
    trial(5, 0.70),
]


# --- leaderboard -----------------------------------------------------------------------------


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


# --- parameter importance --------------------------------------------------------------------


def synthetic_trials(n: int, objective_type: ObjectiveType) -> list[Trial]:
    """lr alone drives the objective; batch size and epochs are noise-free bystanders."""
    rng = random.Random(7)
    trials = []
    for i in range(n):
        lr = 10 ** rng.uniform(-4, -2)
        score = 0.2 + 0.3 * (math.log10(lr) + 4)
        objective = score if objective_type is ObjectiveType.MAXIMIZE else 2 - score
        trials.append(trial(i, objective, lr=f"{lr:.6g}", batch=rng.choice(["16", "32", "64"]),
                            epochs=str(rng.randint(1, 3))))
    return trials


@pytest.mark.parametrize("objective_type", [ObjectiveType.MAXIMIZE, ObjectiveType.MINIMIZE])
def test_the_parameter_that_drives_the_objective_ranks_first(objective_type: ObjectiveType) -> None:
    spec = make_spec(objective_type)
    trials = synthetic_trials(16, objective_type) + [trial(16, None, TrialStatus.FAILED)]
    importances = parameter_importance(spec, trials)
    assert set(importances) == {"lr", "batch-size", "epochs"}
    assert max(importances, key=importances.__getitem__) == "lr"
    assert importances["lr"] > 0.8
    assert sum(importances.values()) == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in importances.values())


def test_importance_is_empty_with_fewer_than_two_distinct_completed_trials() -> None:
    spec = make_spec()
    assert parameter_importance(spec, []) == {}
    assert parameter_importance(spec, [trial(0, 0.5)]) == {}
    # Pruned and failed trials do not count, nor do equal objectives.
    assert parameter_importance(spec, [trial(0, 0.5), trial(1, 0.9, TrialStatus.PRUNED, lr="0.005")]) == {}
    assert parameter_importance(spec, [trial(0, 0.5), trial(1, 0.5, lr="0.005")]) == {}


def test_importance_skips_trials_outside_the_ranges() -> None:
    spec = make_spec()
    outside = [trial(0, 0.5, lr="0.5"), trial(1, 0.6, batch="128"), trial(2, 0.7, epochs="abc")]
    assert parameter_importance(spec, [*outside, trial(3, 0.8)]) == {}
    assert parameter_importance(spec, [*outside, *synthetic_trials(8, ObjectiveType.MAXIMIZE)]) != {}


def test_importance_leaves_out_a_range_with_one_value() -> None:
    one_value = CategoricalRange("optimizer", ("adam",))
    trials = [Trial(i, f"tune-a-{i + 1:03d}", TrialStatus.COMPLETED,
                    {"optimizer": "adam", "lr": f"{0.001 * (i + 1):g}"}, objective=0.1 * i) for i in range(4)]
    assert parameter_importance(make_spec(ranges=(one_value,)), trials) == {}
    lr = ContinuousRange("lr", 0.001, 0.01)
    assert parameter_importance(make_spec(ranges=(one_value, lr)), trials) == {"lr": pytest.approx(1.0)}


# --- learning curves -------------------------------------------------------------------------


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


# --- charts ----------------------------------------------------------------------------------


def test_objective_over_time_has_finished_trials_and_the_best_so_far() -> None:
    figure = objective_over_time(TRIALS, make_spec())
    points = [t for t in figure.data if t.mode == "markers"]
    assert sorted(v for t in points for v in t.y) == [0.3, 0.5, 0.7, 0.9]
    best_line = next(t for t in figure.data if t.name == "best so far")
    assert list(best_line.y) == [0.5, 0.9, 0.9]  # completed trials 1, 3, 6 in end order
    minimizing = objective_over_time(TRIALS, make_spec(ObjectiveType.MINIMIZE))
    assert list(next(t for t in minimizing.data if t.name == "best so far").y) == [0.5, 0.5, 0.5]


def test_parallel_coordinates_axes() -> None:
    figure = parallel_coordinates(TRIALS, make_spec())
    (parcoords,) = figure.data
    lr, batch, epochs, objective = parcoords.dimensions
    assert lr.label == "lr (log10)" and lr.range == (-4.0, -2.0)
    assert list(lr.values) == pytest.approx([-3.0, math.log10(0.005), -3.0, -3.0])
    assert list(lr.ticktext) == ["1e-4", "1e-3", "1e-2"]
    assert list(batch.ticktext) == ["16", "32", "64"] and list(batch.values) == [1, 2, 1, 1]
    assert epochs.label == "epochs" and list(epochs.values) == [2, 3, 1, 2]
    assert objective.label == "validation:accuracy" and list(objective.values) == [0.5, 0.9, 0.3, 0.7]


def test_charts_without_data_say_so() -> None:
    spec = make_spec()
    for figure in (objective_over_time([], spec), parallel_coordinates([trial(0, None, TrialStatus.IN_PROGRESS)], spec),
                   importance_bar({}), learning_curves_figure(learning_curves(lambda name: [], [], "x"))):
        assert not figure.data and figure.layout.annotations


def test_importance_bar_puts_the_most_important_on_top() -> None:
    (bars,) = importance_bar({"lr": 0.7, "epochs": 0.1, "batch-size": 0.2}).data
    assert list(bars.y) == ["epochs", "batch-size", "lr"]  # plotly draws the last bar on top


# --- the form ----------------------------------------------------------------------------------


def test_the_default_rows_build_the_default_ranges() -> None:
    assert build_ranges([*DEFAULT_RANGE_ROWS, {"name": "", "type": "Continuous", "min": "1", "max": "0"}]) == [
        ContinuousRange("lr", 0.0001, 0.01, Scaling.LOGARITHMIC),
        CategoricalRange("batch-size", ("16", "32", "64")),
        IntegerRange("epochs", 1, 3, Scaling.LINEAR),
    ]


def test_build_ranges_takes_numbers_lists_and_empty_scaling() -> None:
    rows = [{"name": "weight-decay", "type": "continuous", "min": 0, "max": 0.1, "scaling": None},
            {"name": "optimizer", "type": "Categorical", "values": ["adam", " sgd "]},
            {"name": "image-size", "type": "Integer", "min": "32", "max": 64.0, "scaling": float("nan")}]
    assert build_ranges(rows) == [ContinuousRange("weight-decay", 0.0, 0.1, Scaling.AUTO),
                                  CategoricalRange("optimizer", ("adam", "sgd")),
                                  IntegerRange("image-size", 32, 64, Scaling.AUTO)]


@pytest.mark.parametrize(("row", "message"), [
    ({"name": "lr", "type": "Continuous", "min": "0.1", "max": "0.01"}, "min 0.1 is greater than max 0.01"),
    ({"name": "lr", "type": "Continuous", "min": "0", "max": "0.01", "scaling": "Logarithmic"},
     "logarithmic scaling needs min > 0"),
    ({"name": "epochs", "type": "Integer", "min": "-1", "max": "3", "scaling": "Logarithmic"},
     "logarithmic scaling needs min > 0"),
    ({"name": "batch-size", "type": "Categorical", "values": " , "}, "needs at least one value"),
    ({"name": "momentum", "type": "Continuous", "min": "0", "max": "1"}, "unknown hyperparameter"),
    ({"name": "lr", "type": "Continuous", "min": "", "max": "1"}, "parameter lr: give a min value"),
    ({"name": "lr", "type": "Continuous", "min": "0.1", "max": "lots"}, "max 'lots' is not a number"),
    ({"name": "epochs", "type": "Integer", "min": "1.5", "max": "3"}, "min '1.5' is not a whole number"),
    ({"name": "lr", "type": "Uniform", "min": "0", "max": "1"}, "type Uniform, choose one of"),
    ({"name": "lr", "type": "Continuous", "min": "0", "max": "1", "scaling": "Quadratic"}, "scaling 'Quadratic'"),
])
def test_build_ranges_rejects_an_invalid_row(row: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_ranges([row])


def test_fixed_hyperparameters_leave_out_tuned_and_empty_values() -> None:
    values = {"model": "resnet18", "image-size": 64, "epochs": 2, "max-steps-per-epoch": None}
    assert fixed_hyperparameters(RANGES, values) == {"model": "resnet18", "image-size": 64}
    assert fixed_hyperparameters(RANGES[:1], values) == {"model": "resnet18", "image-size": 64, "epochs": 2}


def test_full_training_runs_the_chosen_epochs_without_the_step_cap() -> None:
    best = {"lr": "0.003", "epochs": "2", "max-steps-per-epoch": "5", "model": "resnet18"}
    assert full_training_hyperparameters(best, 10) == {"lr": "0.003", "epochs": 10, "model": "resnet18"}
    with pytest.raises(InvalidInputError):
        full_training_hyperparameters(best, 0)
