"""The compute a job asks for: the local backend's instance types, what it refuses, and the spec's checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidInputError
from core.training.compute import (
    DEFAULT_VOLUME_SIZE_GB,
    Compute,
    InstanceType,
    check_local_compute,
    local_instance_types,
    suggested_hyperparameters,
)
from core.training.spec import TrainingJobSpec


def _fake_nvidia_smi(folder: Path, monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    """An nvidia-smi on PATH that prints answer, as the real one does for its CSV query."""
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{answer}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_labels_say_what_an_instance_has() -> None:
    assert InstanceType("ml.m5.xlarge", 4, 16.0).label == "ml.m5.xlarge · 4 vCPU, 16 GiB"
    assert (InstanceType("ml.g5.12xlarge", 48, 192.0, 4, "A10G", 22.4).label
            == "ml.g5.12xlarge · 48 vCPU, 192 GiB · 4 × A10G, 22.4 GiB each")
    assert InstanceType("ml.trn1.2xlarge").label == "ml.trn1.2xlarge"  # undescribed


def test_a_machine_without_gpus_offers_local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    (local,) = local_instance_types()
    assert local.name == "local" and local.vcpus == os.cpu_count() and local.gpus == 0
    assert local.memory_gib is not None and local.memory_gib > 0


def test_a_machine_with_gpus_offers_local_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path / "bin", monkeypatch, "NVIDIA H100 80GB HBM3, 81559\\nNVIDIA H100 80GB HBM3, 81559\\n")
    local, gpu = local_instance_types()
    assert (local.name, local.gpus) == ("local", 0)
    assert (gpu.name, gpu.gpus, gpu.gpu_name, gpu.gpu_memory_gib) == ("local_gpu", 2, "NVIDIA H100 80GB HBM3", 79.6)
    check_local_compute("local_gpu", 1, False)  # accepted


CPUS = os.cpu_count() or 1


@pytest.mark.parametrize(("instance_type", "count", "spot", "expected"), [
    ("local_gpu", 1, False, "local_gpu: this machine has no NVIDIA GPU"),
    ("ml.g5.xlarge", 1, False, "ml.g5.xlarge: the local backend runs jobs on this machine (local)"),
    ("local", CPUS + 1, False, f"instance count {CPUS + 1}: locally each instance is a training process on this "
                               f"machine, from 1 to its {CPUS} CPUs"),
    ("local", 0, False, "instance count 0"),
    ("local", 1, True, "managed spot training: SageMaker's, on the aws backend"),
])
def test_the_local_backend_refuses_what_it_cannot_give(instance_type: str, count: int, spot: bool, expected: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InvalidInputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_local_compute(instance_type, count, spot)


def _spec(tmp_path: Path, **compute: Any) -> TrainingJobSpec:
    (tmp_path / "train.py").write_text("")
    return TrainingJobSpec(name="job", inputs={"training": "s3://b/d"}, source_dir=tmp_path, **compute)


@pytest.mark.parametrize(("compute", "expected"), [
    ({"instance_count": 0}, "instance_count: must be at least 1"),
    ({"volume_size_gb": 0}, "volume_size_gb: must be at least 1 GB"),
    ({"max_runtime_s": 0}, "max_runtime_s: must be positive"),
    ({"use_spot": True}, "a spot job needs a maximum wait"),
    ({"use_spot": True, "max_runtime_s": 7200, "max_wait_s": 3600},
     r"maximum wait \(3600 s\) includes its run time, so it cannot be shorter than the maximum run time \(7200 s\)"),
])
def test_the_spec_refuses_compute_no_backend_could_give(tmp_path: Path, compute: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        _spec(tmp_path, **compute)


def test_compute_fills_the_specs_fields_of_the_same_names(tmp_path: Path) -> None:
    compute = Compute("ml.g5.xlarge", instance_count=2, volume_size_gb=100, max_runtime_s=3600, use_spot=True,
                      max_wait_s=7200)
    spec = _spec(tmp_path, **compute.spec_fields())
    assert (spec.instance_type, spec.instance_count, spec.volume_size_gb, spec.max_runtime_s, spec.use_spot,
            spec.max_wait_s) == ("ml.g5.xlarge", 2, 100, 3600, True, 7200)
    assert Compute("local").volume_size_gb == DEFAULT_VOLUME_SIZE_GB == _spec(tmp_path).volume_size_gb


@pytest.mark.parametrize(("instance", "count", "expected"), [
    (InstanceType("local", 2, 24.0), 1, {"batch-size": 32, "num-workers": 2}),  # this machine: the script's own
    (InstanceType("ml.m5.4xlarge", 16, 64.0), 2, {"batch-size": 32, "num-workers": 8}),
    (InstanceType("ml.m5.xlarge", 4, 16.0), 1, {"batch-size": 32, "num-workers": 3}),
    (InstanceType("ml.g4dn.xlarge", 4, 16.0, 1, "T4", 15.0), 1, {"batch-size": 64, "num-workers": 3}),
    (InstanceType("ml.g5.12xlarge", 48, 192.0, 4, "A10G", 22.4), 2, {"batch-size": 1024, "num-workers": 8}),
    (InstanceType("ml.p4d.24xlarge", 96, 1152.0, 8, "A100", 40.0), 1, {"batch-size": 2048, "num-workers": 8}),
    (InstanceType("ml.g5.xlarge"), 1, {"batch-size": 32, "num-workers": 2}),  # undescribed: the script's defaults
])
def test_batch_size_and_workers_follow_the_instance_type(instance: InstanceType, count: int,
                                                         expected: dict[str, int]) -> None:
    assert suggested_hyperparameters(instance, count) == expected
