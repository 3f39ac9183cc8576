"""fANOVA parameter importance over a tuning job's completed trials."""

from __future__ import annotations

import math
import random

import pytest

from core.tuning.entities import Trial, TrialStatus
from core.tuning.importance import parameter_importance
from core.tuning.spec import CategoricalRange, ContinuousRange, ObjectiveType
from tests.core.tuning.tuning_cases import make_spec, trial


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
    trials = [*synthetic_trials(16, objective_type), trial(16, None, TrialStatus.FAILED)]
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
