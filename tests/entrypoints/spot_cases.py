"""Job-environment helpers for test_ec2_train.py (run with the job interpreter, not imported).

    python spot_cases.py resume-state CHECKPOINT -- EC2_TRAIN_ARGS...
        Resumes a fresh job from CHECKPOINT and rebuilds the checkpoint dict from the restored
        model, optimizer, scheduler, progress and RNG states; prints whether every tensor and
        value is bit-identical to the file's, and the differences if not.
    python spot_cases.py same-weights A.pth B.pth
        Prints whether two model.pth artifacts hold bit-identical tensors.
    python spot_cases.py atomic-writer FOLDER
        Writes checkpoint k = 1, 2, ... atomically forever, printing k after each save (the
        test kills it with SIGKILL at arbitrary moments).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ENTRYPOINTS = Path(__file__).resolve().parents[2] / "entrypoints"
sys.path.insert(0, str(ENTRYPOINTS))

import torch  # noqa: E402


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two nested checkpoint structures differ (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return [f"{path}: tensor vs {type(b).__name__}"]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            return [f"{path}: tensors differ"]
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(map(str, set(a) ^ set(b)))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def resume_state(checkpoint_path: Path, argv: list[str]) -> None:
    import ec2_train
    import train

    args = ec2_train.build_parser().parse_args(argv)
    args.checkpoint_dir = checkpoint_path.parent
    saved = torch.load(checkpoint_path, weights_only=True)
    job = train.prepare(args)
    state = train.resume(job)
    rebuilt = train.make_checkpoint(job, state)
    # hyperparameters hold this process's paths; everything else must match bit for bit
    diffs = differences({k: v for k, v in saved.items() if k != "hyperparameters"},
                        {k: v for k, v in rebuilt.items() if k != "hyperparameters"})
    print(json.dumps({"identical": not diffs, "differences": diffs[:20], "epoch": state.epoch,
                      "batch": state.meter.batches, "keys": sorted(saved)}))


def same_weights(a: Path, b: Path) -> None:
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    diffs = differences(first["state_dict"], second["state_dict"])
    print(json.dumps({"identical": not diffs, "differences": diffs[:20], "tensors": len(first["state_dict"])}))


def atomic_writer(folder: Path) -> None:
    from checkpoints import atomic_torch_save

    k = 0
    while True:
        k += 1
        atomic_torch_save({"k": k, "payload": torch.full((512, 1024), float(k))}, folder / "checkpoint.pt")
        print(k, flush=True)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "resume-state":
        resume_state(Path(sys.argv[2]), sys.argv[4:])
    elif command == "same-weights":
        same_weights(Path(sys.argv[2]), Path(sys.argv[3]))
    elif command == "atomic-writer":
        atomic_writer(Path(sys.argv[2]))
    else:
        raise SystemExit(f"unknown command {command}")
