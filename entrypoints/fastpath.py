"""The training step's fast path: mixed precision, the channels-last memory format and torch.compile.

``--amp`` runs the forward pass and the loss under autocast: bfloat16 where the device has it (CPUs,
Ampere and newer GPUs), else float16 with a gradient scaler, which keeps small fp16 gradients from
flushing to zero. ``--channels-last`` stores the model's and the batches' 4-D tensors as NHWC, the
layout tensor-core convolutions want. Both are off by default: on this project's CPUs neither helps
(see benchmarks/bench_training.py); on a GPU both usually do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class FastPath:
    """How one process runs its steps."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    """The autocast type; None: full precision."""
    scaler: torch.amp.GradScaler | None = None
    """float16 only: scales the loss so that small gradients survive, and unscales before the step."""
    channels_last: bool = False
    compile: bool = False

    @property
    def precision(self) -> str:
        """``float32``, ``bfloat16`` or ``float16``: for the job's log."""
        return str(self.amp_dtype or torch.float32).removeprefix("torch.")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and the loss, in the mixed precision asked for (a no-op without it)."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            yield

    def compile_forward(self, model: nn.Module) -> None:
        """With ``--compile``, replaces ``model.forward`` by its compiled version, in place: the module's
        hooks (the Debugger's, the Profiler's phase marks) run around it, uncompiled, as before, and
        its state dict keeps its keys."""
        if self.compile:
            model.forward = torch.compile(model.forward)

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """The batch on the device (without waiting for the copy from pinned memory), in the model's layout."""
        if self.channels_last:
            return images.to(self.device, non_blocking=True, memory_format=torch.channels_last)
        return images.to(self.device, non_blocking=True)

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state(self) -> dict[str, Any] | None:
        """For the checkpoint: the scaler's state (its scale grows and shrinks as training goes)."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def restore(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def fast_path(device: torch.device, *, amp: bool, channels_last: bool, compile: bool = False) -> FastPath:
    """The fast path ``--amp``, ``--channels-last`` and ``--compile`` ask for on ``device``."""
    if not amp:
        return FastPath(device, channels_last=channels_last, compile=compile)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return FastPath(device, torch.float16, torch.amp.GradScaler("cuda"), channels_last, compile)
    return FastPath(device, torch.bfloat16, None, channels_last, compile)
