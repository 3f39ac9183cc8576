"""Starting a training job from a catalogued dataset, with the script's defaults.

The models and the defaults are the training script's own declaration
(``entrypoints/hyperparameters.py``), so the forms offer what the script accepts.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from core.entities import DatasetRecord, TrainingJob
from core.training.compute import Compute, InstanceType, suggested_hyperparameters
from core.training.spec import TrainingJobSpec
from entrypoints.hyperparameters import HYPERPARAMETERS, MODELS

if TYPE_CHECKING:
    from core.backend import Backend
    from core.rule_actions import RuleActions
    from core.training import JobRunner

__all__ = ["DEFAULT_HYPERPARAMETERS", "MODELS", "instance_defaults", "job_hyperparameters", "new_job_name",
           "start_training"]

DEFAULT_HYPERPARAMETERS: Mapping[str, str | int | float] = {
    name: HYPERPARAMETERS[name].default for name in ("model", "epochs", "batch-size", "lr", "image-size", "seed")
}
"""What a job started here is given unless the caller says otherwise: the script's defaults for the
hyperparameters the forms set, so the job's description shows them."""


def new_job_name(prefix: str = "train") -> str:
    """A fresh, valid, sortable job name such as ``train-20261125-153000-a1b2``."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def instance_defaults(runner: JobRunner, compute: Compute) -> dict[str, int]:
    """The batch size and workers suited to the compute's instance type
    (:func:`~core.training.compute.suggested_hyperparameters`; a type the backend cannot describe
    is taken for a CPU type)."""
    described = {t.name: t for t in runner.instance_types()}
    instance = described.get(compute.instance_type, InstanceType(compute.instance_type))
    return suggested_hyperparameters(instance, compute.instance_count)


def job_hyperparameters(runner: JobRunner, hyperparameters: Mapping[str, str | int | float],
                        compute: Compute) -> dict[str, str | int | float]:
    """What a job is given: the caller's hyperparameters over the instance type's batch size and
    workers, over the script's defaults."""
    return {**DEFAULT_HYPERPARAMETERS, **instance_defaults(runner, compute), **hyperparameters}


def start_training(
    backend: Backend,
    dataset: DatasetRecord,
    hyperparameters: Mapping[str, str | int | float],
    *,
    name: str | None = None,
    compute: Compute | None = None,
) -> TrainingJob:
    """Starts `entrypoints/train.py` on the dataset (channel ``training``) and returns the job.

    compute: where it runs; None: one instance of the backend's default type, as the spec's defaults say.
    A batch size or ``num-workers`` left out is the instance type's (:func:`instance_defaults`).
    With rule actions deployed, the job's fired rules go to their bus (:func:`rule_action_hyperparameters`).

    Raises:
        InvalidInputError: an invalid name, hyperparameter or compute choice.
        AlreadyExistsError: the name is taken.
        BackendError: the backend could not start the job.
    """
    compute = compute or Compute(backend.runner.default_instance_type)
    hps = job_hyperparameters(backend.runner, hyperparameters, compute)
    spec = TrainingJobSpec(
        name=name or new_job_name(),
        inputs={"training": dataset.uri},
        hyperparameters=hps | rule_action_hyperparameters(backend.rule_actions, hps),
        **compute.spec_fields(),  # type: ignore[arg-type]
    )
    return backend.runner.start(spec)


def rule_action_hyperparameters(actions: RuleActions, hyperparameters: Mapping[str, str | int | float],
                                ) -> dict[str, str]:
    """``debug-event-bus`` when rule actions are deployed and the job runs the Debugger's rules:
    its fired rules then go to the actions' bus, and their function stops the job; with
    ``debug-rules-in-job`` where the job evaluates its rules itself (the console may be closed)."""
    if str(hyperparameters.get("debug", "true")).lower() == "false" or "debug-event-bus" in hyperparameters:
        return {}
    deployed = actions.describe()
    if deployed is None:
        return {}
    return {"debug-event-bus": deployed.bus} | ({"debug-rules-in-job": "true"} if actions.evaluates_in_job else {})
