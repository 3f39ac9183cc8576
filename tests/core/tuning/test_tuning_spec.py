"""A tuning spec searches only what the training script declares tunable."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError
from core.tuning.spec import TUNABLE_HYPERPARAMETERS, CategoricalRange, TuningJobSpec
from entrypoints.hyperparameters import HYPERPARAMETERS


def _spec(name: str) -> TuningJobSpec:
    default = HYPERPARAMETERS[name].default if name in HYPERPARAMETERS else "1"
    return TuningJobSpec(name="tune", ranges=[CategoricalRange(name, (str(default),))],
                         inputs={"training": "file:///data"})


def test_the_tunable_names_are_those_the_script_declares_tunable() -> None:
    assert {name for name, h in HYPERPARAMETERS.items() if h.tunable} == TUNABLE_HYPERPARAMETERS
    assert {"lr", "batch-size", "epochs", "weight-decay", "optimizer", "image-size", "model", "augment",
            "freeze-backbone", "seed", "max-steps-per-epoch"} == TUNABLE_HYPERPARAMETERS


@pytest.mark.parametrize("name", sorted(TUNABLE_HYPERPARAMETERS))
def test_a_range_over_each_tunable_hyperparameter_is_accepted(name: str) -> None:
    assert _spec(name).ranges[0].name == name


@pytest.mark.parametrize("name", ["learning-rate", "num-workers", "data-dir"])
def test_a_range_over_anything_else_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError, match=f"parameter '{name}': unknown hyperparameter; the training script"):
        _spec(name)
