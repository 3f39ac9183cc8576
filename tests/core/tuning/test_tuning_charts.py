"""The Tuning page's figures: objective over time, parallel coordinates, importance bars, empty states."""

from __future__ import annotations

import math

import pytest

from core.tuning.charts import importance_bar, learning_curves_figure, objective_over_time, parallel_coordinates
from core.tuning.entities import TrialStatus
from core.tuning.spec import ObjectiveType
from core.tuning.views import learning_curves
from tests.core.tuning.tuning_cases import TRIALS, make_spec, trial


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
