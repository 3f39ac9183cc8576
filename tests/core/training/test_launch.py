"""Starting a training job: the models and defaults the console offers are the training script's."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

from core.training.compute import LOCAL, Compute, local_instance_types, suggested_hyperparameters
from core.training.launch import DEFAULT_HYPERPARAMETERS, MODELS, job_hyperparameters
from entrypoints.hyperparameters import add_arguments


def _script_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_the_model_choices_are_the_scripts() -> None:
    model = next(a for a in _script_parser()._actions if a.dest == "model")
    assert list(MODELS) == list(model.choices or ())


def test_the_defaults_sent_are_the_scripts_own() -> None:
    assert DEFAULT_HYPERPARAMETERS == {"model": "efficientnet_lite0", "epochs": 2, "batch-size": 32, "lr": 0.002,
                                       "image-size": 64, "seed": 42}
    script_defaults = vars(_script_parser().parse_args([]))
    assert all(script_defaults[name.replace("-", "_")] == value for name, value in DEFAULT_HYPERPARAMETERS.items())


def test_the_defaults_sent_parse_back_as_themselves() -> None:
    """SageMaker hands them to the script as strings."""
    argv = [arg for name, value in DEFAULT_HYPERPARAMETERS.items() for arg in (f"--{name}", str(value))]
    parsed = vars(_script_parser().parse_args(argv))
    assert {name: parsed[name.replace("-", "_")] for name in DEFAULT_HYPERPARAMETERS} == DEFAULT_HYPERPARAMETERS


def test_a_job_gets_the_instance_types_batch_size_and_workers_unless_told() -> None:
    runner: Any = SimpleNamespace(instance_types=local_instance_types)  # the local runner's offer
    suggested = suggested_hyperparameters(local_instance_types()[0], 1)
    given = job_hyperparameters(runner, {"epochs": 3}, Compute(LOCAL))
    assert given == {**DEFAULT_HYPERPARAMETERS, **suggested, "epochs": 3}
    told = job_hyperparameters(runner, {"batch-size": 8, "num-workers": 0}, Compute(LOCAL))
    assert (told["batch-size"], told["num-workers"]) == (8, 0)
    unknown = job_hyperparameters(runner, {}, Compute("ml.g5.xlarge"))  # not described here
    assert (unknown["batch-size"], unknown["num-workers"]) == (32, 2)
