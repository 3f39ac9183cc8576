"""The timeline index of a torch.profiler trace: lanes, steps and phases, a bounded view at any
zoom, and clear errors for traces that cannot be read."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInputError
from core.profiler.timeline import (
    TraceError,
    TraceIndex,
    build_index,
    index_path,
    load_index,
    save_index,
    step_at,
    step_range,
    whole,
    window,
)
from tests.core.profiler.traces import BASE_NS, STEP_US, trace_events, write_trace


def test_a_gpu_trace_becomes_lanes_steps_and_phases(tmp_path: Path) -> None:
    index = build_index(write_trace(tmp_path / "1_algo-1.pt.trace.json.gz", trace_events(2)))
    assert index.origin_s == pytest.approx(BASE_NS / 1e9 + 1_000 / 1e6)  # the first event, in epoch seconds
    assert set(index.lanes) == {"CPU thread 4242 (python)", "GPU 0 stream 7", "GPU 0 copies"}
    assert index.has_gpu
    assert index.steps == [(0.0, STEP_US), (STEP_US, 2 * STEP_US)]
    assert [p[0] for p in index.phases[:4]] == ["backward", "backward", "dataloader", "dataloader"]  # sorted
    assert step_range(index, 6, first_step=5) == (STEP_US, 2 * STEP_US)
    with pytest.raises(InvalidInputError, match="step 9 is not in this trace window \\(steps 5 to 6\\)"):
        step_range(index, 9, first_step=5)
    assert step_at(index, index.origin_s + 0.015, first_step=5) == 6
    assert step_at(index, index.origin_s + 60, first_step=5) is None
    assert index_path(tmp_path / "1_algo-1.pt.trace.json.gz").name == "1_algo-1.timeline.npz"


def test_one_step_zoomed_shows_every_event_of_that_step(tmp_path: Path) -> None:
    index = build_index(write_trace(tmp_path / "t.pt.trace.json", trace_events(3)))
    view = window(index, *step_range(index, 1), columns=2000, first_step=0)  # 5 µs a column
    assert [s[0] for s in view.steps] == [0, 1, 2]  # the neighbours touch the step's edges
    kinds = sorted(set(view.events.kind))
    assert kinds == ["cpu", "kernel", "launch", "memcpy"] and view.hidden == 0
    assert {p[0] for p in view.phases} == {"dataloader", "forward", "backward", "optimizer"}


def test_a_large_trace_is_drawn_with_a_bounded_number_of_boxes() -> None:
    events = 300_000
    rng = np.random.default_rng(0)
    start = np.sort(rng.uniform(0, 1e6, events))
    index = TraceIndex(origin_s=0.0, lanes=("CPU a", "GPU 0 stream 7"), names=("op",),
                       lane=rng.integers(0, 2, events).astype(np.int32), name=np.zeros(events, np.int32),
                       kind=np.zeros(events, np.int8), start=start, dur=rng.exponential(20.0, events), phases=(),
                       correlation=np.full(events, -1, np.int64), size=np.zeros(events))
    view = window(index, *whole(index), columns=1000, max_events=2000)
    assert len(view.events.start) <= 2000 and len(view.folded.start) <= 2 * 1000
    assert len(view.events.start) + view.hidden == events
    zoomed = window(index, 500_000.0, 500_500.0, columns=1000)
    assert 0 < zoomed.hidden < len(zoomed.events.start) < 1000  # only events under 0.5 µs folded


def test_the_index_is_saved_whole_and_read_back(tmp_path: Path) -> None:
    index = build_index(write_trace(tmp_path / "t.pt.trace.json.gz", trace_events(1, gpu=False)))
    assert not index.has_gpu
    path = tmp_path / "t.timeline.npz"
    save_index(index, path)
    again = load_index(path)
    assert (again.lanes, again.names, again.phases, again.origin_s) == (index.lanes, index.names, index.phases,
                                                                        index.origin_s)
    assert np.array_equal(again.start, index.start) and [p.name for p in tmp_path.iterdir()] != []
    assert not list(tmp_path.glob(".*partial"))
    path.write_bytes(b"not numpy")
    with pytest.raises(TraceError, match=re.escape("timeline index t.timeline.npz is unreadable")):
        load_index(path)


def test_unreadable_traces_say_why(tmp_path: Path) -> None:
    whole_trace = write_trace(tmp_path / "good.pt.trace.json.gz", trace_events(2))
    truncated = tmp_path / "cut.pt.trace.json.gz"
    truncated.write_bytes(gzip.compress(gzip.decompress(whole_trace.read_bytes())[:-200]))
    with pytest.raises(TraceError, match=re.escape("cut.pt.trace.json.gz is not a whole Chrome trace")):
        build_index(truncated)
    corrupt = tmp_path / "corrupt.pt.trace.json.gz"
    corrupt.write_bytes(whole_trace.read_bytes()[:100])  # a gzip stream cut short
    with pytest.raises(TraceError, match="not a whole Chrome trace"):
        build_index(corrupt)
    garbage = tmp_path / "garbage.pt.trace.json"
    garbage.write_text("{ this is not json")
    with pytest.raises(TraceError, match="not a whole Chrome trace"):
        build_index(garbage)
    with pytest.raises(TraceError, match="holds no timed events"):
        build_index(write_trace(tmp_path / "empty.pt.trace.json", []))
    with pytest.raises(TraceError, match="no such file"):
        build_index(tmp_path / "missing.pt.trace.json.gz")
