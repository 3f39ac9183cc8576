"""What a hyperparameter tuning job is asked to do, shaped like SageMaker's request.

The same spec drives the local tuner (Optuna) and SageMaker's CreateHyperParameterTuningJob.
Every check that both need lives here, so a bad range fails before anything starts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import cast

from core.errors import InvalidInputError
from core.training.compute import DEFAULT_MAX_RUNTIME_S, DEFAULT_VOLUME_SIZE_GB, Compute
from core.training.spec import DEFAULT_METRIC_DEFINITIONS, JOB_NAME_RE
from entrypoints.hyperparameters import HYPERPARAMETERS

TUNING_JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")  # SageMaker: at most 32

TUNABLE_HYPERPARAMETERS: frozenset[str] = frozenset(name for name, h in HYPERPARAMETERS.items() if h.tunable)
"""Hyperparameters `entrypoints/train.py` declares tunable; a range over anything else is an error."""


class Scaling(str, Enum):
    """How a numeric range is searched (SageMaker's ScalingType)."""

    AUTO = "Auto"
    LINEAR = "Linear"
    LOGARITHMIC = "Logarithmic"


class Strategy(str, Enum):
    """The search strategy (SageMaker's names)."""

    BAYESIAN = "Bayesian"
    RANDOM = "Random"
    GRID = "Grid"
    HYPERBAND = "Hyperband"


class ObjectiveType(str, Enum):
    MAXIMIZE = "Maximize"
    MINIMIZE = "Minimize"


class EarlyStopping(str, Enum):
    OFF = "Off"
    AUTO = "Auto"


@dataclass(frozen=True)
class ContinuousRange:
    """A float hyperparameter between min_value and max_value."""

    name: str
    min_value: float
    max_value: float
    scaling: Scaling = Scaling.AUTO


@dataclass(frozen=True)
class IntegerRange:
    """An integer hyperparameter between min_value and max_value, both included."""

    name: str
    min_value: int
    max_value: int
    scaling: Scaling = Scaling.AUTO


@dataclass(frozen=True)
class CategoricalRange:
    """A hyperparameter taking one of values (kept as strings, as SageMaker does)."""

    name: str
    values: tuple[str, ...]


ParameterRange = ContinuousRange | IntegerRange | CategoricalRange


def check_range(r: ParameterRange) -> None:
    """Raises InvalidInputError naming the parameter when a range cannot be searched."""
    if r.name not in TUNABLE_HYPERPARAMETERS:
        known = ", ".join(sorted(TUNABLE_HYPERPARAMETERS))
        raise InvalidInputError(f"parameter {r.name!r}: unknown hyperparameter; the training script takes {known}")
    if isinstance(r, CategoricalRange):
        if not r.values:
            raise InvalidInputError(f"parameter {r.name}: a categorical range needs at least one value")
        if len(set(r.values)) != len(r.values):
            raise InvalidInputError(f"parameter {r.name}: categorical values must be distinct")
        return
    if not (math.isfinite(r.min_value) and math.isfinite(r.max_value)):
        raise InvalidInputError(f"parameter {r.name}: min and max must be finite numbers")
    if r.min_value > r.max_value:
        raise InvalidInputError(f"parameter {r.name}: min {r.min_value} is greater than max {r.max_value}")
    if r.scaling is Scaling.LOGARITHMIC and r.min_value <= 0:
        raise InvalidInputError(f"parameter {r.name}: logarithmic scaling needs min > 0 (got {r.min_value})")


def is_log_scale(r: ContinuousRange | IntegerRange) -> bool:
    """Logarithmic, or Auto over a positive range spanning at least two orders of magnitude."""
    if r.scaling is Scaling.LOGARITHMIC:
        return True
    return r.scaling is Scaling.AUTO and r.min_value > 0 and r.max_value / r.min_value >= 100


@dataclass(frozen=True)
class TuningJobSpec:
    """A tuning request.

    Attributes:
        name: tuning job name (≤ 32 characters; trials are named ``<name>-NNN``).
        ranges: the hyperparameters to search.
        static_hyperparameters: fixed for every trial.
        inputs: channel -> data URI, as for a training job.
        objective_metric: a metric name from the training metric definitions.
        objective_type: Maximize or Minimize.
        strategy: Bayesian, Random, Grid or Hyperband.
        max_jobs, max_parallel_jobs: the budget.
        early_stopping: Auto stops trials whose intermediate objective lags (median rule).
        warm_start_from: earlier tuning jobs whose trials seed the search.
        instance_type, instance_count, volume_size_gb, max_runtime_s, use_spot, max_wait_s: each
            trial's compute, as for a training job (``compute``).
        seed: makes the local search repeatable.
    """

    name: str
    ranges: Sequence[ParameterRange]
    inputs: Mapping[str, str]
    static_hyperparameters: Mapping[str, str | int | float] = field(default_factory=dict)
    objective_metric: str = "validation:accuracy"
    objective_type: ObjectiveType = ObjectiveType.MAXIMIZE
    strategy: Strategy = Strategy.BAYESIAN
    max_jobs: int = 6
    max_parallel_jobs: int = 2
    early_stopping: EarlyStopping = EarlyStopping.OFF
    warm_start_from: tuple[str, ...] = ()
    instance_type: str = "local"
    instance_count: int = 1
    volume_size_gb: int = DEFAULT_VOLUME_SIZE_GB
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S
    use_spot: bool = False
    max_wait_s: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ranges", tuple(self.ranges))
        for enum, attr in ((ObjectiveType, "objective_type"), (Strategy, "strategy"), (EarlyStopping, "early_stopping")):
            try:
                object.__setattr__(self, attr, enum(getattr(self, attr)))
            except ValueError:
                valid = ", ".join(e.value for e in enum)
                raise InvalidInputError(f"{attr}: {getattr(self, attr)!r} is not one of {valid}") from None
        if not TUNING_JOB_NAME_RE.match(self.name):
            raise InvalidInputError(
                f"tuning job name {self.name!r}: use 1-32 letters, digits and hyphens, "
                "starting and ending with a letter or digit"
            )
        if not self.ranges:
            raise InvalidInputError("ranges: give at least one hyperparameter range to tune")
        names = [r.name for r in self.ranges]
        if len(names) != len(set(names)):
            raise InvalidInputError("ranges: each hyperparameter may have only one range")
        for r in self.ranges:
            check_range(r)
        clash = set(names) & set(self.static_hyperparameters)
        if clash:
            raise InvalidInputError(f"{sorted(clash)} are both tuned and fixed: remove one")
        known_metrics = {m.name for m in DEFAULT_METRIC_DEFINITIONS}
        if self.objective_metric not in known_metrics:
            raise InvalidInputError(
                f"objective_metric {self.objective_metric!r}: the training script reports {sorted(known_metrics)}"
            )
        if not 1 <= self.max_jobs <= 500:
            raise InvalidInputError("max_jobs: between 1 and 500")
        if not 1 <= self.max_parallel_jobs <= self.max_jobs:
            raise InvalidInputError("max_parallel_jobs: at least 1 and at most max_jobs")
        if self.strategy is Strategy.GRID and not all(isinstance(r, CategoricalRange) for r in self.ranges):
            raise InvalidInputError("Grid search takes categorical ranges only (as on SageMaker)")
        if self.strategy is Strategy.HYPERBAND and self.early_stopping is EarlyStopping.AUTO:
            raise InvalidInputError("Hyperband stops trials itself: set early stopping Off")
        if not self.inputs:
            raise InvalidInputError("inputs: the trials need a data channel")
        for source in self.warm_start_from:
            if not JOB_NAME_RE.match(source):
                raise InvalidInputError(f"warm_start_from: invalid tuning job name {source!r}")
        self.compute.check()

    @property
    def compute(self) -> Compute:
        """What each trial runs on."""
        return Compute(self.instance_type, self.instance_count, self.volume_size_gb, self.max_runtime_s,
                       self.use_spot, self.max_wait_s)

    def trial_name(self, number: int) -> str:
        """The training job name of trial ``number`` (0-based): ``<name>-001`` and so on."""
        return f"{self.name}-{number + 1:03d}"

    @property
    def max_epochs(self) -> int:
        """The largest epoch count any trial can run (the Hyperband resource)."""
        for r in self.ranges:
            if r.name == "epochs":
                return int(r.max_value) if not isinstance(r, CategoricalRange) else max(int(v) for v in r.values)
        return int(self.static_hyperparameters.get("epochs", 2))


def range_to_dict(r: ParameterRange) -> dict[str, object]:
    """A JSON-safe form of a range (``{"type": "continuous", ...}``)."""
    if isinstance(r, CategoricalRange):
        return {"type": "categorical", "name": r.name, "values": list(r.values)}
    kind = "continuous" if isinstance(r, ContinuousRange) else "integer"
    return {"type": kind, "name": r.name, "min_value": r.min_value, "max_value": r.max_value,
            "scaling": r.scaling.value}


def range_from_dict(data: Mapping[str, object]) -> ParameterRange:
    """The inverse of :func:`range_to_dict`. Raises InvalidInputError for an unknown type."""
    kind = data.get("type")
    name = str(data["name"])
    if kind == "categorical":
        return CategoricalRange(name, tuple(str(v) for v in cast("list[object]", data["values"])))
    if kind == "continuous":
        return ContinuousRange(name, float(data["min_value"]), float(data["max_value"]),  # type: ignore[arg-type]
                               Scaling(data.get("scaling", "Auto")))
    if kind == "integer":
        return IntegerRange(name, int(data["min_value"]), int(data["max_value"]),  # type: ignore[call-overload]
                            Scaling(data.get("scaling", "Auto")))
    raise InvalidInputError(f"unknown range type {kind!r}")


def spec_to_dict(spec: TuningJobSpec) -> dict[str, object]:
    """A JSON-safe copy of a tuning spec."""
    return {
        "name": spec.name,
        "ranges": [range_to_dict(r) for r in spec.ranges],
        "inputs": dict(spec.inputs),
        "static_hyperparameters": {k: str(v) for k, v in spec.static_hyperparameters.items()},
        "objective_metric": spec.objective_metric,
        "objective_type": spec.objective_type.value,
        "strategy": spec.strategy.value,
        "max_jobs": spec.max_jobs,
        "max_parallel_jobs": spec.max_parallel_jobs,
        "early_stopping": spec.early_stopping.value,
        "warm_start_from": list(spec.warm_start_from),
        **spec.compute.spec_fields(),
        "seed": spec.seed,
    }


def spec_from_dict(data: Mapping[str, object]) -> TuningJobSpec:
    """Rebuilds a spec written by :func:`spec_to_dict` (validating it again)."""
    values = dict(data)
    values["ranges"] = tuple(range_from_dict(r) for r in cast("list[Mapping[str, object]]", values["ranges"]))
    values["warm_start_from"] = tuple(values.get("warm_start_from", ()))  # type: ignore[arg-type]
    return TuningJobSpec(**values)  # type: ignore[arg-type]
