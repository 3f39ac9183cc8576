"""The spot simulator reads checkpoints from ec2_train.py's fsynced event file, not its log: which
checkpoint is on disk after a SIGKILL at any point of a save."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.spot._supervisor import InstanceRecords, file_identity, has_landed


class Instance:
    """Writes what ec2_train.py writes: records to the event file, checkpoints by rename."""

    def __init__(self, tmp_path: Path) -> None:
        self.events = tmp_path / "output" / "data" / "spot-events.jsonl"
        self.checkpoint = tmp_path / "disk" / "checkpoint.pt"
        self.mirror = tmp_path / "mirror" / "checkpoint.pt"
        self.checkpoint.parent.mkdir(parents=True)
        self.mirror.parent.mkdir(parents=True)

    def record(self, kind: str, **fields: Any) -> None:
        self.events.parent.mkdir(parents=True, exist_ok=True)
        with open(self.events, "a") as handle:
            handle.write(json.dumps({"time": 1.0, "kind": kind, "instance": "i-1", **fields}) + "\n")

    def announce(self, step: int) -> None:
        """The record written just before a save."""
        self.record("checkpoint", step=step, reason="epoch", replaces=file_identity(self.checkpoint),
                    mirror_replaces=file_identity(self.mirror))

    @staticmethod
    def write(path: Path, step: int) -> None:
        tmp = path.with_name(".tmp")
        tmp.write_text(str(step))
        os.replace(tmp, path)


def _landed(records: InstanceRecords, checkpoint: Path, key: str) -> dict[str, Any]:
    found = records.checkpoint(checkpoint, key)
    assert found is not None
    return found


def test_a_save_killed_before_its_rename_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    instance = Instance(tmp_path)
    records = InstanceRecords(instance.events)
    instance.record("start", step=0, steps_per_epoch=6)
    instance.announce(6)
    instance.write(instance.checkpoint, 6)
    instance.write(instance.mirror, 6)
    instance.announce(9)  # ... and the SIGKILL came before the rename
    assert [r["kind"] for r in records.read_new()] == ["start", "checkpoint", "checkpoint"]
    assert _landed(records, instance.checkpoint, "replaces")["step"] == 6
    assert _landed(records, instance.mirror, "mirror_replaces")["step"] == 6


def test_a_save_killed_after_its_rename_counts_though_it_was_never_reported(tmp_path: Path) -> None:
    instance = Instance(tmp_path)
    records = InstanceRecords(instance.events)
    instance.record("start", step=0, steps_per_epoch=6)
    instance.announce(4)
    instance.write(instance.checkpoint, 4)  # killed here: the mirror is still without it
    records.read_new()
    assert _landed(records, instance.checkpoint, "replaces")["step"] == 4  # what a stopped instance resumes from
    assert _landed(records, instance.mirror, "mirror_replaces")["kind"] == "start"  # a new instance starts over


def test_a_resume_says_what_was_on_disk_whatever_the_last_instance_recorded(tmp_path: Path) -> None:
    instance = Instance(tmp_path)
    records = InstanceRecords(instance.events)
    instance.record("start", step=0)
    instance.announce(6)  # killed before the rename ...
    instance.record("resume", step=0)  # ... so the next instance began where the file was
    instance.record("notice", action="stop", at="2026-01-01T00:00:00Z")
    records.read_new()
    found = _landed(records, instance.checkpoint, "replaces")
    assert found["kind"] == "resume" and found["step"] == 0


def test_a_line_being_written_is_read_once_it_is_whole(tmp_path: Path) -> None:
    instance = Instance(tmp_path)
    records = InstanceRecords(instance.events)
    assert records.read_new() == [] and records.checkpoint(instance.checkpoint, "replaces") is None
    instance.record("start", step=0)
    with open(instance.events, "a") as handle:
        handle.write('{"time": 2.0, "kind": "checkpoint", "st')
    assert [r["kind"] for r in records.read_new()] == ["start"]
    with open(instance.events, "a") as handle:
        handle.write('ep": 3}\nnot json\n')
    assert [r["step"] for r in records.read_new()] == [3]
    assert records.read_new() == []


def test_a_record_without_the_file_it_replaces_counts_as_landed(tmp_path: Path) -> None:
    """An S3 mirror has no file identity: the record is all there is."""
    assert has_landed({"kind": "checkpoint", "step": 3}, tmp_path / "checkpoint.pt", "mirror_replaces")
    assert not has_landed({"kind": "checkpoint", "replaces": None}, tmp_path / "checkpoint.pt", "replaces")
