"""Hyperparameter tuning: one spec, searched locally with Optuna or by SageMaker."""

from core.tuning._base import Tuner
from core.tuning._local import LocalTuner
from core.tuning.entities import BestTrial, Trial, TrialStatus, TuningJob
from core.tuning.spec import (
    CategoricalRange,
    ContinuousRange,
    EarlyStopping,
    IntegerRange,
    ObjectiveType,
    Scaling,
    Strategy,
    TuningJobSpec,
)

__all__ = [
    "BestTrial", "CategoricalRange", "ContinuousRange", "EarlyStopping", "IntegerRange", "LocalTuner",
    "ObjectiveType", "Scaling", "Strategy", "Trial", "TrialStatus", "Tuner", "TuningJob", "TuningJobSpec",
]
