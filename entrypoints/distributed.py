"""Data-parallel training over several processes, through SageMaker's contract.

Where a process learns its place in the world, first match wins:

- **torchrun** (SageMaker's ``torch_distributed`` launcher on GPU instances, one process per GPU):
  ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``.
- **One process per host** (SageMaker runs the script once on every instance of a job):
  ``SM_HOSTS`` (a JSON list) and ``SM_CURRENT_HOST``; the rank is the host's place in the list and
  the rendezvous is ``MASTER_ADDR`` (default: the first host), port ``MASTER_PORT`` (default
  ``DEFAULT_MASTER_PORT``). The local backend runs an instance count of N as N processes this
  way, with ``MASTER_ADDR=127.0.0.1``.

A world of one process is not distributed: every function here is then a no-op, so single-host
jobs, the EC2 script and the tests run exactly as before. Collectives use NCCL on CUDA and gloo on
CPU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

DEFAULT_MASTER_PORT = "7777"
COLLECTIVE_TIMEOUT = timedelta(minutes=10)
"""How long a collective waits for a silent peer; a peer that exits breaks it at once."""


class WorldError(ValueError):
    """The environment describes no valid world (a host missing from ``SM_HOSTS``, bad numbers)."""


@dataclass(frozen=True)
class World:
    """This process's place among the job's training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    """The process's index on its own host (its GPU)."""

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the model, metrics, checkpoints, Debugger and Profiler output and the metric lines."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The world ``env`` (default ``os.environ``) describes.

    Raises:
        WorldError: ``SM_CURRENT_HOST`` is not in ``SM_HOSTS``, or torchrun's numbers are not numbers.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env and "RANK" in env:
        try:
            return World(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")))
        except ValueError as exc:
            raise WorldError(f"RANK/WORLD_SIZE/LOCAL_RANK must be whole numbers: {exc}") from exc
    hosts = _hosts(env)
    if len(hosts) <= 1:
        return World()
    current = env.get("SM_CURRENT_HOST", "")
    if current not in hosts:
        raise WorldError(f"SM_CURRENT_HOST {current!r} is not one of SM_HOSTS {hosts}")
    return World(hosts.index(current), len(hosts))


def _hosts(env: Mapping[str, str]) -> list[str]:
    try:
        hosts = json.loads(env.get("SM_HOSTS", "[]"))
    except json.JSONDecodeError as exc:
        raise WorldError(f"SM_HOSTS is not a JSON list: {exc}") from exc
    if not isinstance(hosts, list):
        raise WorldError("SM_HOSTS is not a JSON list")
    return [str(host) for host in hosts]


def device_for(world: World) -> torch.device:
    """The process's device: its own GPU (``LOCAL_RANK``) where there are GPUs, else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = world.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def start(world: World, device: torch.device) -> None:
    """Joins the process group (blocks until every rank has); no-op for one process."""
    if not world.distributed:
        return
    if "MASTER_ADDR" not in os.environ:
        os.environ["MASTER_ADDR"] = _hosts(os.environ)[0]
    os.environ.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
    dist.init_process_group(
        "nccl" if device.type == "cuda" else "gloo",
        rank=world.rank,
        world_size=world.size,
        timeout=COLLECTIVE_TIMEOUT,
    )


def end() -> None:
    """Leaves the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A DistributedDataParallel around ``model``: it averages the gradients of every rank's share
    of the batch (the process group must have been joined)."""
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def share(indices: Sequence[int], world: World) -> list[int]:
    """This rank's part of a batch: every ``size``-th index from its rank on.

    Each global batch of the seeded epoch order (``imagedata.epoch_batches``) is split this way,
    so the ranks together see exactly the images, in the order, one process would.
    """
    return list(indices[world.rank :: world.size])


def fewest(world: World, count: int) -> int:
    """The smallest ``count`` of any rank: every rank passes over a step that one rank cannot train
    (a rank that left DistributedDataParallel's backward alone would hang the others)."""
    if not world.distributed:
        return count
    reduced = torch.tensor([-float(count)])
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return int(-reduced[0])


def anyone(world: World, flag: bool) -> bool:
    """Whether ``flag`` is set on any rank: a stop that reaches one rank stops them all at the same step."""
    if not world.distributed:
        return flag
    reduced = torch.tensor([float(flag)])
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return bool(reduced[0] > 0)


def total(world: World, values: Sequence[float]) -> list[float]:
    """The sums of ``values`` over every rank."""
    if not world.distributed:
        return list(values)
    summed = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.tolist()


def largest(world: World, value: float) -> float:
    """The largest ``value`` of any rank (the slowest rank's seconds)."""
    if not world.distributed:
        return value
    reduced = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return float(reduced[0])


def gather(world: World, value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order."""
    if not world.distributed:
        return [value]
    values: list[Any] = [None] * world.size
    dist.all_gather_object(values, value)
    return values
