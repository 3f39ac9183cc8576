"""Loading the endpoint's model and readying its batcher: unpack, time where padding pays, warm up."""

from __future__ import annotations

import functools
import tarfile
from collections.abc import Callable
from pathlib import Path

import torch

from batching import PREDICT_TIMEOUT_S, Forward, MicroBatcher, forward_cpu_ms, padding_start
from inference import LoadedModel, forward, model_fn

MAX_MODEL_BYTES = 4 * 1024**3
"""Largest unpacked model.tar.gz accepted."""


def load_model(source: Path, scratch: Path) -> LoadedModel:
    """``model_fn`` on a model folder, or on a ``model.tar.gz`` unpacked safely into ``scratch``.

    Raises:
        FileNotFoundError: source does not exist.
        ValueError: the archive is too large, unsafe or not a model.
        tarfile.TarError: the archive is corrupt.
    """
    if source.is_dir():
        return model_fn(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    model_dir = scratch / "model"
    with tarfile.open(source, "r:*") as archive:
        members = archive.getmembers()
        size = sum(member.size for member in members)
        if size > MAX_MODEL_BYTES:
            raise ValueError(f"{source} unpacks to {size:,} bytes; the limit is {MAX_MODEL_BYTES:,}")
        archive.extractall(model_dir, members=members, filter="data")
    return model_fn(model_dir)


def forward_pixels(inputs: torch.Tensor, model: LoadedModel) -> torch.Tensor:
    """Normalises a batch of resized uint8 pixels (``model.normalise``), then runs the model."""
    return forward(model.normalise(inputs), model)


def warm_up(model: LoadedModel, batcher: MicroBatcher) -> None:
    """Runs the first forward passes (one image, a full batch) on the batcher's thread."""
    for size in sorted({1, batcher.max_batch_size}):
        with batcher.arrival() as submit:
            job = submit(torch.zeros(size, 3, model.image_size, model.image_size, dtype=torch.uint8))
        job.result(PREDICT_TIMEOUT_S)


def prepare(source: Path, scratch: Path, *, max_batch_size: int, max_wait_s: float, pad_batches: bool,
            clients: Callable[[], int]) -> tuple[LoadedModel, MicroBatcher]:
    """Loads the model, times where padding pays (``pad_batches``), and starts a warmed-up batcher.

    Raises:
        what :func:`load_model` raises, and the model's own errors on the warm-up passes.
    """
    model = load_model(source, scratch)
    forward_fn: Forward = functools.partial(forward_pixels, model=model)
    pad_from = None
    if pad_batches:
        pad_from = padding_start(lambda size: forward_cpu_ms(forward_fn, size, model.image_size), max_batch_size)
    batcher = MicroBatcher(forward_fn, max_batch_size=max_batch_size, max_wait_s=max_wait_s, clients=clients,
                           pad_from=pad_from)
    batcher.start()
    warm_up(model, batcher)
    return model, batcher
