"""Checkpoint files for the job scripts: atomic writes, RNG state, stale temporary files.

Shared by ``train.py`` (SageMaker jobs, local jobs, tuning trials) and ``ec2_train.py`` (EC2
Spot runs). A checkpoint is written to a temporary file in the same folder, fsynced and then
renamed over the old one, so a process killed at any moment (SIGKILL, a reclaimed spot
instance) leaves the previous checkpoint or the new one, never half of one. A kill between
``mkstemp`` and the rename leaves a hidden ``.<name>.*.tmp`` file; :func:`remove_stale_temps`
clears those when the next run starts.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """The checkpoint cannot be read or belongs to another run (model, classes, image size)."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader (or a resumed job) sees the old file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)  # mkstemp's 0600 would hide it from other readers
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temps(folder: Path, name: str = CHECKPOINT_FILE) -> list[Path]:
    """Deletes temporary files a killed writer left for ``name`` in ``folder``; returns them."""
    if not folder.is_dir():
        return []
    stale = sorted(folder.glob(f".{name}.*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def capture_rng() -> dict[str, Any]:
    """The state of python's, numpy's, torch's (and CUDA's) global generators."""
    # the global generator is MT19937, so the legacy form is always the tuple (numpy's stub allows a dict)
    np_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state(legacy=True))
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict[str, Any]) -> None:
    """Puts back the generator states :func:`capture_rng` returned."""
    random.setstate(_as_python_state(rng["python"]))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])


def _as_python_state(state: Any) -> tuple[Any, ...]:
    """``random.setstate`` wants tuples; a checkpoint read back may hold lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Reads a checkpoint with ``weights_only`` (no pickled code runs).

    Raises:
        CheckpointError: unreadable or truncated.
    """
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path} ({exc}); delete it to start over") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a checkpoint dict; delete it to start over")
    return checkpoint
