"""Every Debugger rule on synthetic smdebug trials: one that must fire, one that must not.

The trials are written and judged in the job environment (``debug_rule_cases.py``, one
subprocess for all cases); this file holds the expectations.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.config import DEFAULT_JOB_PYTHON
from entrypoints import debug_config

CASES_SCRIPT = Path(__file__).with_name("debug_rule_cases.py")
EXPECTED = {
    "VanishingGradient/fires": True,
    "VanishingGradient/quiet": False,
    "ExplodingTensor/fires": True,
    "ExplodingTensor/fires-on-loss": True,
    "ExplodingTensor/quiet": False,
    "Overfit/fires": True,
    "Overfit/quiet": False,
    "Overtraining/fires": True,
    "Overtraining/quiet": False,
    "LossNotDecreasing/fires-flat": True,
    "LossNotDecreasing/fires-diverging": True,
    "LossNotDecreasing/fires-validation": True,
    "LossNotDecreasing/quiet": False,
    "WeightUpdateRatio/fires-large": True,
    "WeightUpdateRatio/fires-small": True,
    "WeightUpdateRatio/quiet": False,
    "AllZero/fires": True,
    "AllZero/quiet": False,
    "ClassImbalance/fires-imbalance": True,
    "ClassImbalance/fires-misprediction": True,
    "ClassImbalance/quiet": False,
    "PoorWeightInitialization/fires": True,
    "PoorWeightInitialization/quiet": False,
    "DeadRelu/fires": True,
    "DeadRelu/quiet": False,
    "SaturatedActivation/fires": True,
    "SaturatedActivation/quiet": False,
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("rule-trials")
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(CASES_SCRIPT), str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_rule_has_a_firing_and_a_quiet_case() -> None:
    rules = {case.split("/")[0] for case in EXPECTED}
    assert rules == set(debug_config.RULE_NAMES)
    for rule in rules:
        outcomes = {fired for case, fired in EXPECTED.items() if case.startswith(rule + "/")}
        assert outcomes == {True, False}, rule


def test_the_script_ran_exactly_these_cases(results: dict[str, dict[str, Any]]) -> None:
    assert set(results) == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_rule_case(case: str, results: dict[str, dict[str, Any]]) -> None:
    outcome = results[case]
    assert outcome["fired"] is EXPECTED[case], outcome
    if outcome["fired"]:
        assert isinstance(outcome["step"], int) and outcome["message"]
    else:
        assert outcome["checks"] > 0, f"{case}: the rule never looked at any data"


def test_findings_name_the_step_and_the_tensor(results: dict[str, dict[str, Any]]) -> None:
    assert results["ExplodingTensor/fires"]["step"] == 10
    assert results["ExplodingTensor/fires"]["tensor"] == "gradient/Net_layer1.weight"
    assert results["AllZero/fires"]["tensor"] == "gradient/Net_layer2.weight"
    assert results["LossNotDecreasing/fires-diverging"]["step"] == 10
    assert "rose by" in results["LossNotDecreasing/fires-diverging"]["message"]
    assert "underrepresented" in results["ClassImbalance/fires-misprediction"]["message"]
