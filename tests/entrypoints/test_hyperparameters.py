"""The training script's hyperparameters, declared once in ``entrypoints/hyperparameters.py``: the
script's parser takes exactly the declaration, the modules that build models and transforms know the
declared choices, and the declaration stays importable by both the job and the app."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys

import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR
from entrypoints.hyperparameters import AUGMENTATIONS, HYPERPARAMETERS, MODELS, add_arguments, parse_bool


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py")
    add_arguments(parser)
    return parser


def test_the_declaration_imports_only_the_standard_library() -> None:
    """The app imports it as ``entrypoints.hyperparameters``, the job as ``hyperparameters``: a
    sibling import would work in only one of the two."""
    tree = ast.parse((ENTRYPOINTS_DIR / "hyperparameters.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported


@pytest.mark.parametrize(("text", "value"), [("true", True), ("True", True), (" YES ", True), ("1", True),
                                             ("false", False), ("FALSE", False), ("no", False), ("0", False)])
def test_parse_bool_reads_booleans_as_sagemaker_passes_them(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "2", "on"])
def test_parse_bool_refuses_anything_else(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected true/false"):
        parse_bool(text)


def test_without_arguments_every_hyperparameter_takes_its_declared_default() -> None:
    parsed = vars(_parser().parse_args([]))
    assert parsed == {name.replace("-", "_"): h.default for name, h in HYPERPARAMETERS.items()}


@pytest.mark.parametrize(("argv", "message"), [
    (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
    (["--model", "vgg"], "argument --model: invalid choice: 'vgg' (choose from 'efficientnet_lite0', 'resnet18', "
                         "'resnet50')"),
    (["--max-bad-fraction", "2"], "argument --max-bad-fraction: must be between 0 and 1, got 2"),
    (["--freeze-backbone", "maybe"], "argument --freeze-backbone: expected true/false (or 1/0), got 'maybe'"),
])
def test_a_bad_value_is_refused_naming_the_option(argv: list[str], message: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


_SCRIPT_SIDE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import imagedata, imagemodels, train, unreadable
options = {a.dest: {"default": a.default, "choices": list(a.choices) if a.choices else None}
           for a in train.build_parser()._actions if a.option_strings}
print(json.dumps({"options": options, "heads": list(imagemodels.HEADS), "augmentations": list(imagedata.AUGMENTATIONS),
                  "max_fraction": unreadable.DEFAULT_MAX_FRACTION}, default=str))
"""


@pytest.fixture(scope="module")
def script_side() -> dict[str, object]:
    """What the job's own modules say, read in the job environment (they import torch)."""
    result = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", _SCRIPT_SIDE, str(ENTRYPOINTS_DIR)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_training_script_takes_each_declared_hyperparameter(script_side: dict[str, dict[str, dict]]) -> None:
    options = script_side["options"]
    for name, h in HYPERPARAMETERS.items():
        declared = {"default": h.default, "choices": list(h.choices) if h.choices else None}
        assert options[name.replace("-", "_")] == declared, name


def test_the_job_modules_know_exactly_the_declared_choices(script_side: dict[str, object]) -> None:
    assert script_side["heads"] == list(MODELS)  # imagemodels builds every model the script offers, no other
    assert script_side["augmentations"] == list(AUGMENTATIONS)  # imagedata's transforms
    assert script_side["max_fraction"] == HYPERPARAMETERS["max-bad-fraction"].default
