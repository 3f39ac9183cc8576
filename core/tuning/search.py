"""The Optuna side of local tuning: search spaces, samplers and pruners from a spec."""

from __future__ import annotations

import itertools
from typing import Literal, cast

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from core.tuning.entities import Trial, TrialStatus
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    ObjectiveType,
    ParameterRange,
    Strategy,
    TuningJobSpec,
    is_log_scale,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def distribution(r: ParameterRange) -> BaseDistribution:
    """The Optuna distribution of a range (categorical values stay strings)."""
    if isinstance(r, CategoricalRange):
        return CategoricalDistribution(list(r.values))
    if isinstance(r, ContinuousRange):
        return FloatDistribution(r.min_value, r.max_value, log=is_log_scale(r))
    return IntDistribution(int(r.min_value), int(r.max_value), log=is_log_scale(r))


def search_space(spec: TuningJobSpec) -> dict[str, BaseDistribution]:
    return {r.name: distribution(r) for r in spec.ranges}


def make_sampler(spec: TuningJobSpec) -> optuna.samplers.BaseSampler:
    """Bayesian and Hyperband: TPE; Random and Grid: random (Grid's points are enqueued, see
    :func:`grid_points`: Optuna's GridSampler stops the study from inside ``tell``, which
    only works under ``Study.optimize``, not with ask and tell)."""
    if spec.strategy in (Strategy.RANDOM, Strategy.GRID):
        return optuna.samplers.RandomSampler(seed=spec.seed)
    # A third of the budget explores at random before TPE models it (Optuna's default of 10
    # would leave a small budget entirely random).
    startup = max(2, min(10, spec.max_jobs // 3))
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup, constant_liar=True)


def make_pruner(spec: TuningJobSpec) -> optuna.pruners.BasePruner:
    """Hyperband: Optuna's Hyperband pruner over epochs; early stopping Auto: the median rule."""
    if spec.strategy is Strategy.HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(spec.max_epochs, 2), reduction_factor=3)
    if spec.early_stopping is EarlyStopping.AUTO:
        # SageMaker's Auto rule: stop a trial whose objective is worse than the median of the
        # earlier trials at the same epoch; the first two trials always run to the end.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def grid_points(spec: TuningJobSpec) -> list[dict[str, str]]:
    """Every combination of the categorical values, in order, for Grid search (else empty)."""
    if spec.strategy is not Strategy.GRID:
        return []
    ranges = [r for r in spec.ranges if isinstance(r, CategoricalRange)]
    return [dict(zip((r.name for r in ranges), combo)) for combo in itertools.product(*(r.values for r in ranges))]


def direction(spec: TuningJobSpec) -> Literal["maximize", "minimize"]:
    return "maximize" if spec.objective_type is ObjectiveType.MAXIMIZE else "minimize"


def typed_params(spec: TuningJobSpec, hyperparameters: dict[str, str]) -> dict[str, object] | None:
    """A trial's string hyperparameters as values of the spec's distributions; None if any is
    missing or outside its range (then it cannot seed this search)."""
    params: dict[str, object] = {}
    for name, dist in search_space(spec).items():
        raw = hyperparameters.get(name)
        if raw is None:
            return None
        value: object
        try:
            if isinstance(dist, CategoricalDistribution):
                value = raw
                if value not in dist.choices:
                    return None
            else:
                numeric = cast("IntDistribution | FloatDistribution", dist)  # distribution() makes no other kind
                value = int(float(raw)) if isinstance(numeric, IntDistribution) else float(raw)
                if not numeric.low <= value <= numeric.high:
                    return None
        except ValueError:
            return None
        params[name] = value
    return params


def warm_start_trials(spec: TuningJobSpec, parents: list[list[Trial]]) -> list[optuna.trial.FrozenTrial]:
    """Completed trials of earlier tuning jobs, as Optuna trials of this search."""
    space = search_space(spec)
    seeded = []
    for trials in parents:
        for t in trials:
            if t.status is not TrialStatus.COMPLETED or t.objective is None:
                continue
            params = typed_params(spec, dict(t.hyperparameters))
            if params is not None:
                seeded.append(optuna.trial.create_trial(params=params, distributions=space, value=t.objective))
    return seeded


def as_hyperparameter(value: object) -> str:
    """How a sampled value is passed to the script."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
