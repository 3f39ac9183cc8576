"""The training script's tensor capture (entrypoints/debug_hook.py) and its options (debug_config.py).

The hook runs in the job environment (``debug_capture_case.py`` trains a tiny CNN with a
frozen layer and reports what the trial holds); the hyperparameter parsing and the
environment checks are plain Python and run here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.config import DEFAULT_JOB_PYTHON
from entrypoints import debug_config

CASE = Path(__file__).with_name("debug_capture_case.py")


def _capture(out: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(CASE), str(out), *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def default_capture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _capture(tmp_path_factory.mktemp("capture") / "trial", "--debug-save-interval", "5",
                    "--debug-activations", "true")


def test_modes_separate_train_validation_and_test(default_capture: dict[str, Any]) -> None:
    assert default_capture["modes"] == {"TRAIN": 16, "EVAL": 3, "PREDICT": 2}
    assert default_capture["loss_steps"] == {"TRAIN": 16, "EVAL": 3, "PREDICT": 2}
    assert default_capture["ended"]


def test_weights_and_gradients_are_reductions_at_the_interval(default_capture: dict[str, Any]) -> None:
    assert default_capture["gradient_steps"] == [0, 5, 10, 15]
    assert default_capture["gradient_reductions"] == ["abs_mean", "l2", "max", "mean", "min", "std", "zero_fraction"]
    assert default_capture["weight_reductions"] == sorted(default_capture["gradient_reductions"] + ["update_ratio"])
    assert default_capture["gradient_l2"] > 0
    assert default_capture["weight_full_value"] is False


def test_writer_never_calls_numpy_tostring(default_capture: dict[str, Any]) -> None:
    """The case script turns numpy's tostring deprecation into an error (numpy 2 removed it):
    smdebug's own writer would fail on the first tensor and the hook would save nothing."""
    assert default_capture["label_steps"] == 16 and default_capture["gradient_l2"] > 0


def test_frozen_layer_is_skipped_not_crashed(default_capture: dict[str, Any]) -> None:
    gradients = default_capture["collections"]["gradients"]
    assert "gradient/TinyNet_fc.weight" in gradients
    assert not [g for g in gradients if "stem" in g]
    assert "TinyNet_stem.weight" in default_capture["collections"]["weights"]


def test_labels_predictions_and_activations(default_capture: dict[str, Any]) -> None:
    assert default_capture["label_steps"] == 16
    assert default_capture["labels_shape"] == [8]
    assert default_capture["predictions_shape"] == [8, 3]
    collections = default_capture["collections"]
    assert collections["relu_output"] == ["relu_output_0"]
    assert collections["relu_input"] == ["relu_input_0"]
    assert collections["tanh_input"] == ["squash_input_0"]
    assert "sigmoid_input" not in collections
    assert default_capture["relu_has_full_value"]


def test_capture_file_records_the_configuration(default_capture: dict[str, Any]) -> None:
    capture = default_capture["capture"]
    assert capture["error"] is None
    assert capture["save_interval"] == 5
    assert capture["activation_layers"] == {"relu": 1, "tanh": 1}
    assert capture["tensor_order"][:2] == ["TinyNet_stem.weight", "TinyNet_stem.bias"]
    assert "sigmoid_input" not in capture["collections"]


def test_full_tensors_and_a_subset_of_collections(tmp_path: Path) -> None:
    result = _capture(tmp_path / "trial", "--debug-full-tensors", "true", "--debug-collections",
                      "losses,weights,gradients")
    assert result["weight_full_value"] is True
    assert result["label_steps"] == 0
    assert not result["collections"].get("biases")


def test_debug_false_writes_nothing(tmp_path: Path) -> None:
    result = _capture(tmp_path / "trial", "--debug", "false")
    assert result == {"attached": False, "capture": {}, "folder": []}


# --- hyperparameters and environment (no smdebug needed) -------------------------------------


def _parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    debug_config.add_arguments(parser)
    return parser.parse_args(list(args))


def test_defaults_are_light() -> None:
    args = _parse()
    assert args.debug is True and args.debug_activations is False and args.debug_full_tensors is False
    assert args.debug_save_interval == debug_config.DEFAULT_SAVE_INTERVAL
    assert args.debug_collections == list(debug_config.COLLECTIONS)
    assert args.debug_rules is None


def test_rules_parse_with_parameters_and_actions() -> None:
    specs = debug_config.parse_rules("VanishingGradient, LossNotDecreasing(num_steps=20,diff_percent=0.5):stop")
    assert specs == [
        debug_config.RuleSpec("VanishingGradient"),
        debug_config.RuleSpec("LossNotDecreasing", {"num_steps": 20, "diff_percent": 0.5}, stop_training=True),
    ]
    assert debug_config.parse_rules(debug_config.format_rules(specs)) == specs
    assert [s.name for s in debug_config.parse_rules("default:stop")] == list(debug_config.DEFAULT_RULES)
    assert all(s.stop_training for s in debug_config.parse_rules("default:stop"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Nonsense", "unknown rule"),
        ("LossNotDecreasing:email", "unknown action"),
        ("LossNotDecreasing(num_steps)", "not name=value"),
        ("AllZero,AllZero:stop", "named twice"),
        ("LossNotDecreasing(", "cannot read rule"),
    ],
)
def test_invalid_rules_are_refused(text: str, message: str) -> None:
    with pytest.raises(debug_config.DebugConfigError, match=message):
        debug_config.parse_rules(text)


def test_invalid_hyperparameters_are_refused_by_the_parser() -> None:
    with pytest.raises(argparse.ArgumentError):
        _parse("--debug-collections", "losses,everything")
    with pytest.raises(argparse.ArgumentError):
        _parse("--debug-save-interval", "0")


def test_default_rules_add_the_activation_rules_only_with_activations() -> None:
    assert [s.name for s in debug_config.default_rules(False)] == list(debug_config.DEFAULT_RULES)
    with_activations = [s.name for s in debug_config.default_rules(True)]
    assert set(with_activations) - set(debug_config.DEFAULT_RULES) == set(debug_config.ACTIVATION_RULES)


def test_out_dir_is_explicit_then_the_job_folder_then_the_output_data_dir(tmp_path: Path) -> None:
    assert debug_config.resolve_out_dir("s3://bucket/jobs/x/debug", {"SAGEMAKER_BASE_DIR": "/a"}) == "s3://bucket/jobs/x/debug"
    job_folder = {"SAGEMAKER_BASE_DIR": "/jobs/j1", "SM_OUTPUT_DATA_DIR": "/o"}
    assert debug_config.resolve_out_dir(None, job_folder) == "/jobs/j1/debug-output"
    assert debug_config.resolve_out_dir(None, {"SM_OUTPUT_DATA_DIR": "/opt/ml/output/data"}) == "/opt/ml/output/data/debug-output"


def test_protobuf_4_and_later_need_the_pure_python_implementation() -> None:
    assert debug_config.needs_pure_python_protobuf("4.25.3")
    assert debug_config.needs_pure_python_protobuf("6.31.1")
    assert not debug_config.needs_pure_python_protobuf("3.20.3")
    assert not debug_config.needs_pure_python_protobuf(None)


def test_prepare_selects_pure_python_protobuf_before_smdebug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug_config.metadata, "version", lambda name: "5.29.3")
    monkeypatch.delitem(sys.modules, "google.protobuf", raising=False)
    env: dict[str, str] = {}
    debug_config.prepare_smdebug_import(env)
    assert env == {"SMDEBUG_LOG_LEVEL": "warning", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}


def test_prepare_refuses_when_fast_protobuf_is_already_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug_config.metadata, "version", lambda name: "5.29.3")
    monkeypatch.setitem(sys.modules, "google.protobuf", object())
    with pytest.raises(debug_config.DebugConfigError, match="PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python"):
        debug_config.prepare_smdebug_import({})
    debug_config.prepare_smdebug_import({"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"})


def test_prepare_leaves_old_protobuf_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debug_config.metadata, "version", lambda name: "3.20.3")
    env: dict[str, str] = {}
    debug_config.prepare_smdebug_import(env)
    assert env == {"SMDEBUG_LOG_LEVEL": "warning"}


def test_fast_event_encoding_matches_smdebug_protobuf_bytes() -> None:
    """The writer encodes events itself (the pure-Python protobuf is slow): byte for byte the
    same as smdebug's messages, and a trial written that way reads back with smdebug."""
    script = Path(__file__).with_name("debug_encoding_case.py")
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mismatches"] == []
    assert result["values"] == [[[float(s)] * 2] * 2 for s in range(3)]
