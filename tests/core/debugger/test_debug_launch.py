"""The Debugger's launch choices become hyperparameters the training script accepts."""

from __future__ import annotations

import pytest

from core.debugger.launch import DEFAULT_RULES, RULE_NAMES, debug_hyperparameters
from core.errors import InvalidInputError


def test_defaults_evaluate_the_default_rules_without_stopping() -> None:
    assert debug_hyperparameters() == {"debug": "true", "debug-rules": ",".join(DEFAULT_RULES),
                                       "debug-save-interval": 20, "debug-activations": "false"}
    assert "DeadRelu" in RULE_NAMES and "DeadRelu" not in DEFAULT_RULES


def test_stop_training_and_activation_rules() -> None:
    hps = debug_hyperparameters(rules=["LossNotDecreasing", "DeadRelu"], stop_on=["LossNotDecreasing"],
                                save_interval=5, activations=True)
    assert hps == {"debug": "true", "debug-rules": "LossNotDecreasing:stop,DeadRelu", "debug-save-interval": 5,
                   "debug-activations": "true"}


def test_capture_off_turns_the_hook_off() -> None:
    assert debug_hyperparameters(capture=False, rules=[]) == {"debug": "false"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rules": []}, "choose at least one rule"),
    ({"rules": ["Overfit"], "stop_on": ["LossNotDecreasing"]}, "StopTraining on LossNotDecreasing: choose those rules"),
    ({"rules": ["DeadRelu"]}, "DeadRelu read activations"),
    ({"rules": ["NoSuchRule"]}, "unknown rule 'NoSuchRule'"),
    ({"save_interval": 0}, "at least 1 step"),
])
def test_bad_choices_are_refused_with_a_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        debug_hyperparameters(**kwargs)  # type: ignore[arg-type]
