"""The SageMaker training instance types a region offers, with their vCPUs, memory and GPUs.

SageMaker has no API that lists its instance types with their hardware. botocore's model of
CreateTrainingJob enumerates the names (``TrainingInstanceType``), and ``ml.<type>`` is EC2's
``<type>``: EC2's DescribeInstanceTypeOfferings says which the region offers, DescribeInstanceTypes
what each has. Where EC2 refuses to answer (no ``ec2:Describe*`` permission), the names are
listed without their hardware and not checked against the region.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import botocore.session

from core.aws import is_aws_error
from core.training.compute import InstanceType

_PREFIX = "ml."
_DESCRIBE_BATCH = 100  # DescribeInstanceTypes' limit


@functools.lru_cache(maxsize=1)
def training_type_names() -> tuple[str, ...]:
    """Every training instance type botocore's SageMaker model knows, in its order."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return tuple(model.shape_for("TrainingInstanceType").enum)


def _gpu(info: dict[str, Any]) -> tuple[int, str, float]:
    gpus = (info.get("GpuInfo") or {}).get("Gpus") or []
    if not gpus:
        return 0, "", 0.0
    first = gpus[0]
    return (sum(g.get("Count", 0) for g in gpus), str(first.get("Name", "")),
            round(first.get("MemoryInfo", {}).get("SizeInMiB", 0) / 1024, 1))


def _described(info: dict[str, Any], prefix: str = _PREFIX) -> InstanceType:
    gpus, gpu_name, gpu_memory = _gpu(info)
    return InstanceType(
        name=prefix + info["InstanceType"],
        vcpus=int(info["VCpuInfo"]["DefaultVCpus"]),
        memory_gib=round(info["MemoryInfo"]["SizeInMiB"] / 1024, 1),
        gpus=gpus, gpu_name=gpu_name, gpu_memory_gib=gpu_memory,
    )


def training_instance_types(ec2: Any) -> list[InstanceType]:
    """The training types the client's region offers, CPU types first, each group by size (every
    name, undescribed, where EC2 refused to say)."""
    names = training_type_names()
    try:
        offered: set[str] = set()
        for page in ec2.get_paginator("describe_instance_type_offerings").paginate(LocationType="region"):
            offered |= {o["InstanceType"] for o in page["InstanceTypeOfferings"]}
        wanted = [n.removeprefix(_PREFIX) for n in names if n.removeprefix(_PREFIX) in offered]
        types = []
        for start in range(0, len(wanted), _DESCRIBE_BATCH):
            batch = wanted[start:start + _DESCRIBE_BATCH]
            types += [_described(i) for i in ec2.describe_instance_types(InstanceTypes=batch)["InstanceTypes"]]
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        return [InstanceType(n) for n in names]
    types.sort(key=lambda t: (t.gpus > 0, t.gpus, t.vcpus or 0, t.memory_gib or 0, t.name))
    return types


def ec2_instance_types(ec2: Any, names: Sequence[str]) -> list[InstanceType]:
    """EC2's types of those names, in that order, with their hardware (undescribed where EC2
    refuses to say, or does not know a name)."""
    try:  # a filter, not InstanceTypes=: one name the region lacks would fail the whole call
        pages = ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "instance-type", "Values": list(names)}])
        described = {i["InstanceType"]: _described(i, prefix="") for page in pages for i in page["InstanceTypes"]}
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        described = {}
    return [described.get(name, InstanceType(name)) for name in names]


def is_offered(ec2: Any, instance_type: str) -> bool | None:
    """Whether the client's region offers the ``ml.*`` type for training; None where EC2 refused to say."""
    try:
        offerings = ec2.describe_instance_type_offerings(
            LocationType="region",
            Filters=[{"Name": "instance-type", "Values": [instance_type.removeprefix(_PREFIX)]}],
        )["InstanceTypeOfferings"]
    except Exception as exc:
        if not is_aws_error(exc):
            raise
        return None
    return bool(offerings)
