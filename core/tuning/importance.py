"""How much each tuned hyperparameter explains of the objective: fANOVA over the completed trials."""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna

from core.tuning.entities import Trial, TrialStatus
from core.tuning.search import direction as study_direction
from core.tuning.search import search_space, typed_params
from core.tuning.spec import TuningJobSpec
from core.tuning.views import has_objective


def parameter_importance(spec: TuningJobSpec, trials: Sequence[Trial], *, seed: int = 0) -> dict[str, float]:
    """fANOVA importance of each tuned hyperparameter over the completed trials, summing to 1.

    Returns ``{}`` while fewer than two completed trials have different objectives, or when
    optuna cannot evaluate them (it never raises). Trials whose values fall outside the
    spec's ranges (warm-start trials of other ranges) are left out, and so are ranges with a
    single value (they explain nothing).
    """
    space = search_space(spec)
    frozen = []
    for t in trials:
        params = typed_params(spec, dict(t.hyperparameters))
        if t.status is not TrialStatus.COMPLETED or not has_objective(t) or params is None:
            continue
        try:
            frozen.append(optuna.trial.create_trial(params=params, distributions=space, value=t.objective))
        except ValueError:  # a value outside a log range's domain, for instance
            continue
    varying = [name for name, dist in space.items() if not dist.single()]
    if len({t.value for t in frozen}) < 2 or not varying:
        return {}
    try:
        study = optuna.create_study(direction=study_direction(spec))  # in memory
        study.add_trials(frozen)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying)
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError):
        return {}
    result = {name: float(value) for name, value in importances.items()}
    return result if all(math.isfinite(v) for v in result.values()) else {}
