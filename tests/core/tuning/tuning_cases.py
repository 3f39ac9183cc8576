"""Trials and specs shared by the Tuning page's unit tests (views, importance, charts, form)."""

from __future__ import annotations

from core.tuning.entities import Trial, TrialStatus
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    IntegerRange,
    ObjectiveType,
    Scaling,
    TuningJobSpec,
)

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
