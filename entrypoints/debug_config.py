"""The Debugger's options: the ``--debug-*`` hyperparameters, the rule grammar and where the trial goes.

Standard library only, and it imports no module beside it: the training script imports it as
``debug_config`` (``entrypoints/`` is its script folder), the app and the analysers as
``entrypoints.debug_config``, so a rule the launch form accepts is one the job and the rule
evaluator accept. The hook that writes the trial is ``debug_hook.py``.

Where the trial goes (``resolve_out_dir``): ``--debug-out-dir`` (``s3://.../{job_name}/debug-output``
on SageMaker, where the script uploads as it runs; the console's runner sets it), else
``$SAGEMAKER_BASE_DIR/debug-output`` (a local job folder), else ``$SM_OUTPUT_DATA_DIR/debug-output``
(a SageMaker job without an S3 location: the data arrive with ``output.tar.gz`` at the end).

smdebug 1.0.34's generated protobuf code refuses protobuf >= 4 unless the pure-Python
implementation is chosen before its first import: ``prepare_smdebug_import`` does that for
the hook and the rule evaluator alike.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

OUT_DIR_NAME = "debug-output"
JOB_NAME_PLACEHOLDER = "{job_name}"
"""Stands for the training job's name in ``--debug-out-dir`` (one template serves every tuning trial)."""
CAPTURE_FILE = "capture.json"
DEFAULT_SAVE_INTERVAL = 20
REDUCED_COLLECTIONS: tuple[str, ...] = ("weights", "biases", "gradients")
STEP_COLLECTIONS: tuple[str, ...] = ("losses", "labels", "predictions")
ACTIVATION_COLLECTIONS: tuple[str, ...] = ("relu_output", "relu_input", "tanh_input", "sigmoid_input")
COLLECTIONS: tuple[str, ...] = STEP_COLLECTIONS + REDUCED_COLLECTIONS

# Rules the evaluator knows (the built-in rules' names); the default set needs no activations.
RULE_NAMES: tuple[str, ...] = (
    "VanishingGradient", "ExplodingTensor", "Overfit", "Overtraining", "LossNotDecreasing",
    "PoorWeightInitialization", "WeightUpdateRatio", "AllZero", "ClassImbalance", "DeadRelu",
    "SaturatedActivation",
)  # fmt: skip
DEFAULT_RULES: tuple[str, ...] = (
    "VanishingGradient", "ExplodingTensor", "Overfit", "Overtraining", "LossNotDecreasing",
    "WeightUpdateRatio", "AllZero", "ClassImbalance",
)  # fmt: skip
ACTIVATION_RULES: tuple[str, ...] = ("PoorWeightInitialization", "DeadRelu", "SaturatedActivation")
MAX_RULES = 20  # SageMaker's limit per job
_RULE_RE = re.compile(r"^(?P<name>[A-Za-z]+)(?:\((?P<params>[^()]*)\))?(?::(?P<action>[A-Za-z]+))?$")


class DebugConfigError(ValueError):
    """A ``--debug-*`` hyperparameter that cannot be used."""


@dataclass(frozen=True)
class RuleSpec:
    """One rule chosen at launch: its name, parameter overrides and whether it stops the job."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    stop_training: bool = False


# --- hyperparameters ----------------------------------------------------------------------


def _bool(value: str) -> bool:
    """``hyperparameters.parse_bool``'s twin: this module imports no module beside it."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false (or 1/0), got {value!r}")


def _interval(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _collections(value: str) -> list[str]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    unknown = sorted(set(names) - set(COLLECTIONS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown collection(s) {unknown}; known: {', '.join(COLLECTIONS)}")
    return names


def _rules(value: str) -> list[RuleSpec]:
    try:
        return parse_rules(value)
    except DebugConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--debug-*`` hyperparameters to the training script's parser."""
    add = parser.add_argument
    add("--debug", type=_bool, default=True, help="capture tensors with smdebug for the Debugger")
    add("--debug-save-interval", type=_interval, default=DEFAULT_SAVE_INTERVAL,
        help="save weights, biases, gradients (and activations) every N steps; losses every step")
    add("--debug-collections", type=_collections, default=list(COLLECTIONS),
        help=f"comma-separated subset of {','.join(COLLECTIONS)}")
    add("--debug-activations", type=_bool, default=False,
        help="also save activations (ReLU in/out, tanh/sigmoid inputs) in full: DeadRelu, SaturatedActivation")
    add("--debug-full-tensors", type=_bool, default=False,
        help="save weights and gradients in full, not only reductions (about 27 MB per saved step)")
    add("--debug-out-dir", default=None,
        help="trial folder or s3:// URI; unset: $SAGEMAKER_BASE_DIR/debug-output or $SM_OUTPUT_DATA_DIR/debug-output")
    add("--debug-rules", type=_rules, default=None,
        help="rules for the evaluator: Name[(param=value,...)][:stop], comma-separated; unset: the default set")
    add("--debug-event-bus", default=None,
        help="put each fired rule on this EventBridge bus, whose rule actions stop the job (StopTraining) or "
             "notify; unset: the evaluator stops the job itself")
    add("--debug-rules-in-job", type=_bool, default=False,
        help="evaluate the rules inside the job (job_rules.py beside the script), which puts fired rules on "
             "--debug-event-bus: they act with no console running (SageMaker, EC2)")


def parse_rules(text: str) -> list[RuleSpec]:
    """Parses ``--debug-rules`` such as ``"VanishingGradient,LossNotDecreasing(num_steps=20):stop"``.

    ``default`` stands for the default set (``default:stop`` with StopTraining on each).

    Raises:
        DebugConfigError: unknown rule or action, malformed parameters, a rule twice, or more
            than 20 rules.
    """
    specs: list[RuleSpec] = []
    for item in _split_top_level(text):
        match = _RULE_RE.match(item)
        if not match:
            raise DebugConfigError(f"cannot read rule {item!r}: use Name, Name:stop or Name(param=value,...)")
        name, action = match["name"], (match["action"] or "").lower()
        if action not in ("", "stop", "stoptraining"):
            raise DebugConfigError(f"rule {name}: unknown action {match['action']!r} (use :stop)")
        params = _parse_params(name, match["params"] or "")
        if name.lower() == "default":
            specs += [RuleSpec(rule, {}, bool(action)) for rule in DEFAULT_RULES]
            continue
        if name not in RULE_NAMES:
            raise DebugConfigError(f"unknown rule {name!r}; known: {', '.join(RULE_NAMES)}")
        specs.append(RuleSpec(name, params, bool(action)))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DebugConfigError(f"rule(s) named twice: {', '.join(duplicates)}")
    if len(specs) > MAX_RULES:
        raise DebugConfigError(f"{len(specs)} rules: a job runs at most {MAX_RULES}")
    return specs


def format_rules(specs: Sequence[RuleSpec]) -> str:
    """The ``--debug-rules`` text of ``specs`` (inverse of :func:`parse_rules`)."""
    parts = []
    for spec in specs:
        params = ",".join(f"{k}={v}" for k, v in spec.params.items())
        parts.append(spec.name + (f"({params})" if params else "") + (":stop" if spec.stop_training else ""))
    return ",".join(parts)


def default_rules(activations: bool) -> list[RuleSpec]:
    """The rules run when ``--debug-rules`` is unset (activation rules only when captured)."""
    names = DEFAULT_RULES + (ACTIVATION_RULES if activations else ())
    return [RuleSpec(name) for name in names]


def _split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    items.append(current.strip())
    return [item for item in items if item]


def _parse_params(rule: str, text: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise DebugConfigError(f"rule {rule}: parameter {part!r} is not name=value")
        params[key.strip()] = _literal(raw.strip())
    return params


def _literal(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


# --- where the trial goes -----------------------------------------------------------------


def resolve_out_dir(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The trial location: the explicit one, else inside the job folder (see the module doc).

    ``{job_name}`` in the explicit location stands for ``$TRAINING_JOB_NAME`` (set by SageMaker
    and the local runner), so one template serves every trial of a tuning job.

    Raises:
        DebugConfigError: the location names ``{job_name}`` but the job's name is unknown.
    """
    env = os.environ if environ is None else environ
    if explicit:
        if JOB_NAME_PLACEHOLDER not in explicit:
            return explicit
        if not env.get("TRAINING_JOB_NAME"):
            raise DebugConfigError(
                f"--debug-out-dir {explicit} names {JOB_NAME_PLACEHOLDER} but TRAINING_JOB_NAME is unset")
        return explicit.replace(JOB_NAME_PLACEHOLDER, env["TRAINING_JOB_NAME"])
    if env.get("SAGEMAKER_BASE_DIR"):
        return str(Path(env["SAGEMAKER_BASE_DIR"]) / OUT_DIR_NAME)
    if env.get("SM_OUTPUT_DATA_DIR"):
        return str(Path(env["SM_OUTPUT_DATA_DIR"]) / OUT_DIR_NAME)
    return str(Path.cwd() / OUT_DIR_NAME)


def needs_pure_python_protobuf(version: str | None) -> bool:
    """smdebug's generated code needs protobuf <= 3.20.3 or, from 4 on, the pure-Python one."""
    if not version:
        return False
    major = re.match(r"\d+", version)
    return major is not None and int(major.group()) >= 4


def prepare_smdebug_import(environ: dict[str, str] | None = None) -> None:
    """Sets what smdebug needs before its first import (protobuf implementation, log level).

    Raises:
        DebugConfigError: protobuf >= 4 was imported already with its fast implementation,
            which smdebug's generated code refuses.
    """
    env = os.environ if environ is None else environ
    env.setdefault("SMDEBUG_LOG_LEVEL", "warning")
    try:
        version = metadata.version("protobuf")
    except metadata.PackageNotFoundError:
        version = None
    if not needs_pure_python_protobuf(version):
        return
    if "google.protobuf" in sys.modules and env.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") != "python":
        raise DebugConfigError(
            f"protobuf {version} was imported before the debugger could select its pure-Python "
            "implementation: set PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python for the training process"
        )
    env["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
