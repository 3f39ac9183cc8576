"""Where a training job runs: the instance types a backend offers, and the compute a job asks for.

The launch forms list what ``JobRunner.instance_types()`` returns and pass a :class:`Compute` to
``start_training``; ``TrainingJobSpec`` checks the values. On SageMaker a type is an ``ml.*``
instance; the local backend offers this machine as ``local`` and, where nvidia-smi finds a GPU,
``local_gpu`` (the names of SageMaker's local mode).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass

from core.errors import InvalidInputError
from entrypoints.hyperparameters import HYPERPARAMETERS

DEFAULT_VOLUME_SIZE_GB = 30
DEFAULT_MAX_RUNTIME_S = 24 * 3600
LOCAL = "local"
LOCAL_GPU = "local_gpu"


@dataclass(frozen=True)
class InstanceType:
    """One instance type and what it has (None where the backend could not say)."""

    name: str
    vcpus: int | None = None
    memory_gib: float | None = None
    gpus: int = 0
    gpu_name: str = ""
    gpu_memory_gib: float = 0.0
    """Each GPU's memory."""

    @property
    def label(self) -> str:
        """``ml.g5.12xlarge · 48 vCPU, 192 GiB · 4 × A10G, 22 GiB each``: what a form shows."""
        parts = [self.name]
        if self.vcpus is not None and self.memory_gib is not None:
            parts.append(f"{self.vcpus} vCPU, {self.memory_gib:g} GiB")
        if self.gpus:
            parts.append(f"{self.gpus} × {self.gpu_name or 'GPU'}, {self.gpu_memory_gib:g} GiB each")
        return " · ".join(parts)


@dataclass(frozen=True)
class Compute:
    """What a job asks of its machines: the fields of ``TrainingJobSpec`` of the same names."""

    instance_type: str
    instance_count: int = 1
    volume_size_gb: int = DEFAULT_VOLUME_SIZE_GB
    max_runtime_s: int = DEFAULT_MAX_RUNTIME_S
    use_spot: bool = False
    max_wait_s: int | None = None

    def spec_fields(self) -> dict[str, object]:
        return asdict(self)

    def check(self) -> None:
        """Refuses values no backend could give (each backend then checks what it offers).

        Raises:
            InvalidInputError: naming the field and why.
        """
        if self.instance_count < 1:
            raise InvalidInputError("instance_count: must be at least 1")
        if self.volume_size_gb < 1:
            raise InvalidInputError("volume_size_gb: must be at least 1 GB")
        if self.max_runtime_s < 1:
            raise InvalidInputError("max_runtime_s: must be positive")
        if self.use_spot and self.max_wait_s is None:
            raise InvalidInputError("max_wait_s: a spot job needs a maximum wait (at least its maximum run time)")
        if self.use_spot and self.max_wait_s is not None and self.max_wait_s < self.max_runtime_s:
            raise InvalidInputError(
                f"max_wait_s: a spot job's maximum wait ({self.max_wait_s} s) includes its run time, so it "
                f"cannot be shorter than the maximum run time ({self.max_runtime_s} s)")


def suggested_hyperparameters(instance: InstanceType, instance_count: int) -> dict[str, int]:
    """The batch size and DataLoader workers of a job on ``instance_count`` × ``instance``, where
    the form leaves them to the instance type.

    Workers: each training process (one per GPU, else one per instance) gets its vCPUs less one for
    itself, from 2 to 8; 2, the script's default, where the vCPUs are unknown. Batch size, which the
    script splits across its processes: the script's 32 on CPU types; on GPU types, per GPU by its
    memory at 224 px (EfficientNet-Lite0 and ResNet-50 in float32 fit): 64 under 20 GiB (T4, V100),
    128 under 40 GiB (A10G, L4), 256 from 40 GiB (A100, L40S, H100). The learning rate is not
    scaled with it: tune it for large batches.
    """
    script_batch, script_workers = HYPERPARAMETERS["batch-size"].default, HYPERPARAMETERS["num-workers"].default
    processes = max(1, instance.gpus)
    workers = script_workers if instance.vcpus is None else min(8, max(2, instance.vcpus // processes - 1))
    if not instance.gpus:
        return {"batch-size": script_batch, "num-workers": workers}
    per_gpu = 64 if instance.gpu_memory_gib < 20 else 128 if instance.gpu_memory_gib < 40 else 256
    return {"batch-size": per_gpu * instance.gpus * instance_count, "num-workers": workers}


GPU_FAMILIES = ("ml.g", "ml.p")
"""SageMaker's NVIDIA GPU families (g4dn, g5, g6, g6e, gr6, p3, p4d, p5, ...): named by their first letter."""


def has_gpus(instance_type: str) -> bool:
    """Whether a SageMaker instance type has NVIDIA GPUs, from its name alone (no AWS call)."""
    return instance_type.startswith(GPU_FAMILIES)


def local_gpus() -> list[tuple[str, float]]:
    """This machine's NVIDIA GPUs as (name, memory in GiB), from nvidia-smi; none without it."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        name, _, memory_mib = line.rpartition(",")
        try:
            gpus.append((name.strip(), round(float(memory_mib) / 1024, 1)))
        except ValueError:
            continue
    return gpus


def local_instance_types() -> list[InstanceType]:
    """This machine as the local backend offers it: ``local``, and ``local_gpu`` if it has GPUs."""
    cpus = os.cpu_count() or 1
    memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    types = [InstanceType(LOCAL, cpus, memory_gib)]
    gpus = local_gpus()
    if gpus:
        name, memory = gpus[0]
        types.append(InstanceType(LOCAL_GPU, cpus, memory_gib, len(gpus), name, memory))
    return types


def check_local_compute(instance_type: str, instance_count: int, use_spot: bool) -> None:
    """Refuses compute the local backend cannot give a job.

    Raises:
        InvalidInputError: a SageMaker type, ``local_gpu`` on a machine without a GPU, fewer than one
            instance or more than this machine has CPUs (each instance is a training process), or
            managed spot (SageMaker's).
    """
    offered = [t.name for t in local_instance_types()]
    if instance_type == LOCAL_GPU and LOCAL_GPU not in offered:
        raise InvalidInputError(f"instance type {LOCAL_GPU}: this machine has no NVIDIA GPU (nvidia-smi found "
                                f"none); choose {LOCAL}, or a GPU type on the aws backend")
    if instance_type not in offered:
        raise InvalidInputError(f"instance type {instance_type}: the local backend runs jobs on this machine "
                                f"({', '.join(offered)}); SageMaker types run on the aws backend")
    cpus = os.cpu_count() or 1
    if not 1 <= instance_count <= cpus:
        raise InvalidInputError(f"instance count {instance_count}: locally each instance is a training process "
                                f"on this machine, from 1 to its {cpus} CPUs")
    if use_spot:
        raise InvalidInputError("managed spot training: SageMaker's, on the aws backend; the EC2 Spot page "
                                "runs a job through simulated interruptions on this machine")
