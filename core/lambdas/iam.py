"""The IAM policy evaluator, shared with the local endpoint server.

The evaluator is ``entrypoints/iam_eval.py``: the local endpoint server (job environment) needs
it, and ``entrypoints/`` may import nothing from ``core``. So the single implementation lives
there, standard library only and importing no module beside it, and ``core`` imports it as
``entrypoints.iam_eval`` instead of keeping a copy that could drift from what the server enforces.
"""

from __future__ import annotations

from entrypoints.iam_eval import Decision, Evaluation, evaluate, validate_policy

__all__ = ["Decision", "Evaluation", "evaluate", "validate_policy"]
