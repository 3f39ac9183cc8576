"""The IAM policy evaluator, shared with the local endpoint server.

The evaluator is ``entrypoints/iam_eval.py``: the local endpoint server (job environment) needs
it, and ``entrypoints/`` may import nothing from ``core``. So the single implementation lives
there, standard library only, and ``core`` loads that file by path instead of keeping a copy
that could drift from what the server enforces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from core.entrypoint_modules import load_entrypoint_module

if TYPE_CHECKING:
    from entrypoints.iam_eval import Evaluation

_iam_eval = load_entrypoint_module("iam_eval")
Decision = _iam_eval.Decision


def evaluate(policies: Iterable[Mapping[str, Any]], action: str, resource: str) -> Evaluation:
    """Whether an identity holding ``policies`` may do ``action`` on ``resource`` (IAM's rules).

    Raises:
        ValueError: a policy is not valid.
    """
    return _iam_eval.evaluate(policies, action, resource)  # type: ignore[no-any-return]


def validate_policy(document: Mapping[str, Any]) -> None:
    """Checks a policy's grammar. Raises ValueError naming the statement at fault."""
    _iam_eval.validate_policy(document)
