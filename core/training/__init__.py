"""Training jobs: one spec, run locally or on SageMaker."""

from core.training._base import JobRunner
from core.training._local import LocalJobRunner
from core.training.spec import DEFAULT_METRIC_DEFINITIONS, MetricDefinition, TrainingJobSpec

__all__ = ["DEFAULT_METRIC_DEFINITIONS", "JobRunner", "LocalJobRunner", "MetricDefinition", "TrainingJobSpec"]
