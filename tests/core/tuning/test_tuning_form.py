"""The Tuning page's launch form: rows of ranges, fixed hyperparameters, a full run of the best trial."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.tuning.form import (
    DEFAULT_RANGE_ROWS,
    build_ranges,
    fixed_hyperparameters,
    full_training_hyperparameters,
    longest_trial,
)
from core.tuning.spec import CategoricalRange, ContinuousRange, IntegerRange, Scaling
from tests.core.tuning.tuning_cases import RANGES


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


def test_the_longest_trial_has_the_most_epochs_searched() -> None:
    static = {"model": "resnet18", "image-size": 64}
    assert longest_trial(build_ranges(DEFAULT_RANGE_ROWS), static) == {**static, "epochs": 3}
    assert longest_trial([CategoricalRange("epochs", ("2", "5", "4"))], static)["epochs"] == 5
    assert longest_trial([ContinuousRange("lr", 0.001, 0.1)], {**static, "epochs": 2})["epochs"] == 2
