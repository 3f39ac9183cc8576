"""Compares debug_hook.encode_tensor_event with smdebug's protobuf encoding (job environment).

Prints a JSON list of the cases whose bytes differ (empty: all equal), then checks that a
trial written through the patched writer reads back the same values with smdebug.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "entrypoints"))

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.core.tfevent.proto.event_pb2 import Event
from smdebug.core.tfevent.proto.summary_pb2 import Summary
from smdebug.core.tfevent.proto.types_pb2 import DataType
from smdebug.core.tfevent.util import _get_proto_dtype, make_tensor_proto
from smdebug.core.writer import FileWriter

import debug_hook

CASES = {
    "float32 scalar": (np.array([1.5], dtype=np.float32), 7, ModeKeys.TRAIN, 3),
    "0-d float64": (np.asarray(2.25), 0, ModeKeys.EVAL, 0),
    "2x3 float32": (np.arange(6, dtype=np.float32).reshape(2, 3), 123456, ModeKeys.TRAIN, 99999),
    "int64 labels": (np.array([3, 0, 9], dtype=np.int64), 5, ModeKeys.PREDICT, 1),
    "bool": (np.array([True, False]), 1, ModeKeys.GLOBAL, 1),
    "float16": (np.ones((2, 2), dtype=np.float16), 300, ModeKeys.TRAIN, 300),
    "empty": (np.zeros((0, 4), dtype=np.float32), 2, ModeKeys.TRAIN, 2),
    "big step": (np.array([1e30], dtype=np.float32), 2**40, ModeKeys.TRAIN, 2**40),
}


def protobuf_bytes(value: np.ndarray, step: int, mode: ModeKeys, mode_step: int, tag: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's tostring deprecation in smdebug's own encoder
        tensor = make_tensor_proto(value, tag)
    summary = Summary(value=[Summary.Value(tag=tag, metadata=FileWriter._get_metadata(mode, mode_step), tensor=tensor)])
    event = Event(summary=summary)
    event.wall_time = 1795600000.125
    event.step = step
    return event.SerializeToString()


def main() -> int:
    tag = "smdebug/reductions/l2/gradient/Net_fc.weight"
    mismatches = []
    for name, (value, step, mode, mode_step) in CASES.items():
        expected = protobuf_bytes(value, step, mode, mode_step, tag)
        got = debug_hook.encode_tensor_event(
            wall_time=1795600000.125, step=step, tag=tag, mode_step=mode_step, mode_value=mode.value,
            dtype=DataType.Value(_get_proto_dtype(value.dtype)[1]), shape=value.shape, content=value.tobytes())
        if got != expected:
            mismatches.append(name)
    debug_hook.patch_tensor_writer()
    from smdebug.core.collection_manager import CollectionManager
    from smdebug.trials import create_trial

    out = Path(tempfile.mkdtemp()) / "trial"
    for step in range(3):
        with FileWriter(trial_dir=str(out), step=step, worker="worker_0") as writer:
            writer.write_tensor(np.full((2, 2), step, dtype=np.float32), "w", mode=ModeKeys.TRAIN, mode_step=step)
            writer.write_tensor(np.array(["a", "b"]), "names", mode=ModeKeys.TRAIN, mode_step=step)
    manager = CollectionManager()
    manager.set_num_workers(1)
    manager.export(str(out), "worker_0_collections.json")
    trial = create_trial(str(out))
    values = [trial.tensor("w").value(s, mode=ModeKeys.TRAIN).tolist() for s in range(3)]
    print(json.dumps({"mismatches": mismatches, "values": values}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
