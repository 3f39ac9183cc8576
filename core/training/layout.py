"""The SageMaker training-container contract, laid out in a local job folder.

A job folder stands in for ``/opt/ml`` (the sagemaker-training toolkit calls this
``SAGEMAKER_BASE_DIR``): ``input/config/*.json``, ``input/data/<channel>``, ``model``,
``output/data``, ``checkpoints`` and ``code``. The environment handed to the script carries
the ``SM_*`` variables the toolkit sets, so a script reads the same values here as on SageMaker.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlparse

from core.errors import InvalidInputError
from core.training.compute import local_gpus
from core.training.spec import TrainingJobSpec

LOCAL_HOST = "localhost"  # the toolkit hangs resolving "algo-1" outside a container
MASTER_ADDR = "127.0.0.1"


@dataclass(frozen=True)
class JobLayout:
    """Paths of one local job folder."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    @property
    def log_path(self) -> Path:
        return self.root / "logs" / "training.log"

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.json"

    @property
    def model_archive(self) -> Path:
        return self.output_dir / "model.tar.gz"

    @property
    def failure_path(self) -> Path:
        return self.output_dir / "failure"


def local_path_from_uri(uri: str) -> Path:
    """The folder a ``file://`` channel URI names.

    Raises:
        InvalidInputError: another scheme, or the folder does not exist.
    """
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise InvalidInputError(
            f"the local backend reads file:// inputs, not {uri!r}: ingest the dataset on the Data page"
        )
    path = Path(unquote(parsed.path))
    if not path.exists():
        raise InvalidInputError(f"input {uri} does not exist")
    return path


def create_job_folder(spec: TrainingJobSpec, root: Path) -> JobLayout:
    """Lays out the job folder: config files, channel links, a snapshot of the code.

    Raises:
        InvalidInputError: an input URI is not a local folder.
    """
    channels = {name: local_path_from_uri(uri) for name, uri in spec.inputs.items()}
    layout = JobLayout(Path(root))
    for folder in (layout.config_dir, layout.data_dir, layout.model_dir, layout.output_data_dir,
                   layout.checkpoint_dir, layout.log_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(spec.source_dir, layout.code_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*_cache"))
    for name, path in channels.items():
        (layout.data_dir / name).symlink_to(path.resolve(), target_is_directory=path.is_dir())
    hyperparameters = spec.hyperparameters_as_strings
    _write_json(layout.config_dir / "hyperparameters.json", hyperparameters)
    _write_json(
        layout.config_dir / "inputdataconfig.json",
        {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels},
    )
    hosts = host_names(spec.instance_count)
    _write_json(
        layout.config_dir / "resourceconfig.json",
        {"current_host": hosts[0], "hosts": hosts, "network_interface_name": "lo"},
    )
    _write_json(layout.spec_path, spec_to_dict(spec))
    return layout


def cpu_share(jobs_at_once: int, cpus: int | None = None) -> int:
    """The CPUs each of ``jobs_at_once`` trainings running together on ``cpus`` (None: every CPU of
    this machine) is given.

    On SageMaker every job has an instance of its own; here they share one machine, and torch
    threads beyond its cores cost far more than they give: two 1-epoch trials of the demo at 32 px
    on 2 cores train at 6 images/s each with 2 threads apiece, and at 83 with 1.
    """
    return max(1, (cpus or os.cpu_count() or 1) // max(1, jobs_at_once))


def host_names(instance_count: int) -> list[str]:
    """The job's hosts as ``SM_HOSTS`` lists them: ``localhost`` for one process, SageMaker's
    ``algo-1`` ... ``algo-N`` for several (the processes meet at ``MASTER_ADDR``, not by these names)."""
    return [LOCAL_HOST] if instance_count <= 1 else [f"algo-{i}" for i in range(1, instance_count + 1)]


def host_environments(env: dict[str, str], instance_count: int, master_port: int) -> list[dict[str, str]]:
    """One environment per training process of a job run as ``instance_count`` local processes.

    Each is ``env`` as one of SageMaker's hosts sees it: ``SM_CURRENT_HOST`` its own name,
    ``SM_NUM_CPUS`` its part of the job's CPUs, and the rendezvous at ``MASTER_ADDR:master_port``
    (on SageMaker the first host's name, which resolves there). One process keeps ``env`` as it is.
    """
    if instance_count <= 1:
        return [dict(env)]
    hosts = host_names(instance_count)
    cpus = max(1, int(env.get("SM_NUM_CPUS", "1")) // instance_count)
    shared = {"SM_HOSTS": json.dumps(hosts), "SM_NUM_CPUS": str(cpus), "MASTER_ADDR": MASTER_ADDR,
              "MASTER_PORT": str(master_port)}
    return [{**env, **shared, "SM_CURRENT_HOST": host} for host in hosts]


def training_environment(spec: TrainingJobSpec, layout: JobLayout, base_env: dict[str, str], *,
                         num_cpus: int | None = None) -> dict[str, str]:
    """The environment of the training process: the ``SM_*`` variables of the toolkit.

    ``num_cpus`` (``SM_NUM_CPUS``, which sets the script's torch threads): the job's share of this
    machine (:func:`cpu_share`); None gives it every CPU.
    """
    hyperparameters = spec.hyperparameters_as_strings
    channels = sorted(spec.inputs)
    num_cpus = num_cpus or cpu_share(1)
    num_gpus = len(local_gpus())
    user_args = hyperparameters_to_args(hyperparameters)
    env = dict(base_env)
    env.update(
        {
            "SAGEMAKER_BASE_DIR": str(layout.root),
            "TRAINING_JOB_NAME": spec.name,
            "SM_MODEL_DIR": str(layout.model_dir),
            "SM_INPUT_DIR": str(layout.root / "input"),
            "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
            "SM_OUTPUT_DIR": str(layout.output_dir),
            "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
            "SM_OUTPUT_INTERMEDIATE_DIR": str(layout.output_dir / "intermediate"),
            "SM_CHECKPOINT_DIR": str(layout.checkpoint_dir),
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(hyperparameters),
            "SM_HOSTS": json.dumps([LOCAL_HOST]),
            "SM_CURRENT_HOST": LOCAL_HOST,
            "SM_NUM_CPUS": str(num_cpus),
            "SM_NUM_GPUS": str(num_gpus),
            "SM_MODULE_DIR": str(layout.code_dir),
            "SM_MODULE_NAME": Path(spec.entry_point).stem,
            "SM_USER_ENTRY_POINT": spec.entry_point,
            "SM_USER_ARGS": json.dumps(user_args),
            "SM_LOG_LEVEL": "20",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for channel in channels:
        env[f"SM_CHANNEL_{channel.upper()}"] = str(layout.data_dir / channel)
    for key, value in hyperparameters.items():
        env[f"SM_HP_{key.upper().replace('-', '_')}"] = value
    return env


def hyperparameters_to_args(hyperparameters: dict[str, str]) -> list[str]:
    """``--name value`` pairs, as the toolkit passes hyperparameters to a script."""
    args: list[str] = []
    for key, value in hyperparameters.items():
        args += [f"--{key}", value]
    return args


def spec_to_dict(spec: TrainingJobSpec) -> dict[str, object]:
    """A JSON-safe copy of a spec (for the supervisor, which rebuilds it)."""
    return {
        "name": spec.name,
        "inputs": dict(spec.inputs),
        "hyperparameters": spec.hyperparameters_as_strings,
        "entry_point": spec.entry_point,
        "source_dir": str(spec.source_dir),
        "instance_type": spec.instance_type,
        "instance_count": spec.instance_count,
        "volume_size_gb": spec.volume_size_gb,
        "metric_definitions": [{"name": m.name, "regex": m.regex} for m in spec.metric_definitions],
        "max_runtime_s": spec.max_runtime_s,
        "checkpoint_uri": spec.checkpoint_uri,
        "use_spot": spec.use_spot,
        "max_wait_s": spec.max_wait_s,
    }


def spec_from_dict(data: dict[str, object]) -> TrainingJobSpec:
    """Rebuilds a spec written by :func:`spec_to_dict`."""
    from core.training.spec import MetricDefinition

    values = dict(data)
    values["source_dir"] = Path(str(values["source_dir"]))
    definitions = cast("list[dict[str, str]]", values["metric_definitions"])
    values["metric_definitions"] = tuple(MetricDefinition(**m) for m in definitions)
    return TrainingJobSpec(**values)  # type: ignore[arg-type]


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2))
