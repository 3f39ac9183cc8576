"""The Debugger's choices at launch, turned into the training script's ``--debug-*`` hyperparameters.

The rule names, the default set and the rule parser belong to ``entrypoints/debug_config.py``
(the training script and the rule evaluator use them, and it imports only the standard
library); the app imports that same module, so a choice the form accepts is one the job accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import InvalidInputError
from entrypoints.debug_config import (
    ACTIVATION_RULES,
    DEFAULT_RULES,
    DEFAULT_SAVE_INTERVAL,
    JOB_NAME_PLACEHOLDER,
    RULE_NAMES,
    DebugConfigError,
    parse_rules,
)

__all__ = ["ACTIVATION_RULES", "DEFAULT_RULES", "DEFAULT_SAVE_INTERVAL", "JOB_NAME_PLACEHOLDER", "RULE_NAMES",
           "debug_hyperparameters"]


def debug_hyperparameters(
    *,
    capture: bool = True,
    rules: Sequence[str] = DEFAULT_RULES,
    stop_on: Sequence[str] = (),
    save_interval: int = DEFAULT_SAVE_INTERVAL,
    activations: bool = False,
) -> dict[str, str | int]:
    """The ``debug*`` hyperparameters of a job that captures tensors and evaluates ``rules``.

    Args:
        capture: save tensors with smdebug at all (off: no Debugger data, no rules).
        rules: built-in rule names to evaluate, in order.
        stop_on: those of ``rules`` whose StopTraining action stops the job when they fire.
        save_interval: save weights, biases and gradients every N steps (losses every step).
        activations: also save activations (needed by DeadRelu, SaturatedActivation and
            PoorWeightInitialization).

    Raises:
        InvalidInputError: no rule, an unknown rule, a StopTraining rule that is not chosen,
            an activation rule without activations, or an interval below 1.
    """
    if not capture:
        return {"debug": "false"}
    if not rules:
        raise InvalidInputError("Debugger rules: choose at least one rule, or turn tensor capture off")
    if save_interval < 1:
        raise InvalidInputError(f"Debugger save interval: must be at least 1 step, got {save_interval}")
    orphans = [name for name in stop_on if name not in rules]
    if orphans:
        raise InvalidInputError(f"StopTraining on {', '.join(orphans)}: choose those rules first")
    needing = [name for name in rules if name in ACTIVATION_RULES]
    if needing and not activations:
        raise InvalidInputError(f"{', '.join(needing)} read activations: turn on 'Save activations' or drop them")
    text = ",".join(f"{name}:stop" if name in stop_on else name for name in rules)
    try:
        parse_rules(text)
    except DebugConfigError as exc:
        raise InvalidInputError(f"Debugger rules: {exc}") from None
    return {"debug": "true", "debug-rules": text, "debug-save-interval": int(save_interval),
            "debug-activations": "true" if activations else "false"}
