"""Labelled evaluation of endpoints: accuracy, top-5, per-class precision and recall, confusions,
worst mistakes and latency, measured on an ImageFolder whose class folders are the truth.

``metrics`` is the pure part (records in, metrics out); ``classes`` matches class folders to an
endpoint's labels; ``images`` finds and fetches the labelled images; ``results`` holds what one
endpoint scored and compares two; ``runner`` asks the endpoints; ``charts`` draws the metrics for
the Deploy page (it needs plotly, so it is not imported here).
"""

from core.evaluation.images import DatasetTestSplit, EvaluationSource, LabelledZip
from core.evaluation.metrics import EvaluationMetrics, EvaluationRecord, compute_metrics
from core.evaluation.results import Comparison, EvaluationResult, compare_results
from core.evaluation.runner import EvaluationCancelled, EvaluationProgress, evaluate_endpoints, run_evaluation

__all__ = [
    "Comparison", "DatasetTestSplit", "EvaluationCancelled", "EvaluationMetrics", "EvaluationProgress",
    "EvaluationRecord", "EvaluationResult", "EvaluationSource", "LabelledZip", "compare_results", "compute_metrics",
    "evaluate_endpoints", "run_evaluation",
]
