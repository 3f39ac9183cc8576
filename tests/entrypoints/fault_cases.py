"""Job-environment helper for test_train_faults.py: train.py run as a job runs it, with a fault.

    python fault_cases.py loop N -- TRAIN_ARGS...
        The N-th optimizer step raises RuntimeError in the training loop (main process), while
        the DataLoader's workers are alive.
    python fault_cases.py worker N -- TRAIN_ARGS...
        Each DataLoader worker raises RuntimeError on its N-th sample (a bug in the data code,
        not an unreadable file): the DataLoader re-raises it in the main process.

The fault is patched into the modules train.py imports, then train.py runs as ``__main__``
(``runpy``), so its own exit path is the one under test.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

ENTRYPOINTS = Path(__file__).resolve().parents[2] / "entrypoints"
TRAIN_PY = ENTRYPOINTS / "train.py"
sys.path.insert(0, str(ENTRYPOINTS))

import torch  # noqa: E402
from torch.utils.data import get_worker_info  # noqa: E402

import imagedata  # noqa: E402


def fail_in_loop(at: int) -> None:
    step = torch.optim.AdamW.step
    calls = 0

    def failing_step(self: torch.optim.AdamW, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == at:
            raise RuntimeError(f"injected fault at optimizer step {at}")
        return step(self, *args, **kwargs)

    torch.optim.AdamW.step = failing_step  # type: ignore[method-assign]


def fail_in_worker(at: int) -> None:
    getitem = imagedata.ImageSamples.__getitem__
    calls = 0  # per process: each forked worker counts its own samples

    def failing_getitem(self: imagedata.ImageSamples, index: int) -> Any:
        nonlocal calls
        if get_worker_info() is not None:
            calls += 1
            if calls == at:
                raise RuntimeError(f"injected fault at sample {at} of a DataLoader worker")
        return getitem(self, index)

    imagedata.ImageSamples.__getitem__ = failing_getitem  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    where, at, separator, *train_args = argv
    assert separator == "--", argv
    {"loop": fail_in_loop, "worker": fail_in_worker}[where](int(at))
    sys.argv = [str(TRAIN_PY), *train_args]
    runpy.run_path(str(TRAIN_PY), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
