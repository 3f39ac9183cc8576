"""entrypoints/batching.py: the micro-batcher and batch padding, run in the job environment (torch
lives there): one job-env process computes every case, the tests judge. A stand-in forward pass
(row sums) makes each request's rows of a batch recognisable."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR

_CASES = r'''
import json, sys, threading, time
from contextlib import ExitStack
sys.path.insert(0, sys.argv[1])
import torch
from batching import MAX_WAIT_SPREAD, Job, MicroBatcher, forward_cpu_ms, padding_start

out = {}

def batcher_run(max_batch_size, sizes, fail=False, withdraw=(), clients=0, pad_from=None):
    """Requests all announced first (as if decoding at once); or, with clients, one at a time."""
    seen = []
    def forward(inputs):
        seen.append(len(inputs))
        if fail:
            raise RuntimeError("the model broke")
        return inputs.sum(dim=1, keepdim=True)
    batcher = MicroBatcher(forward, max_batch_size=max_batch_size, max_wait_s=3600, clients=lambda: clients,
                           pad_from=pad_from)
    batcher.start()
    jobs = []
    if clients:
        for i, size in enumerate(sizes):
            with batcher.arrival() as submit:
                jobs.append((i, submit(torch.full((size, 1), float(i)))))
    else:
        with ExitStack() as stack:
            submits = [stack.enter_context(batcher.arrival()) for _ in sizes]
            for i, (size, submit) in enumerate(zip(sizes, submits)):
                if i in withdraw:
                    continue  # its request failed to decode: it never submits
                jobs.append((i, submit(torch.full((size, 1), float(i)))))
    results = {}
    for i, job in jobs:
        try:
            results[i] = job.result(60).flatten().tolist()
        except RuntimeError as exc:
            results[i] = str(exc)
    batcher.stop()
    return {"forwards": seen, "results": {str(k): v for k, v in results.items()}}

out["batcher"] = {
    "lone": batcher_run(8, [1]),
    "announced": batcher_run(8, [1, 2, 1]),
    "cap": batcher_run(4, [1] * 6),
    "oversized": batcher_run(4, [6]),
    "withdrawn": batcher_run(8, [1, 1], withdraw={1}),
    "failure": batcher_run(8, [1, 1], fail=True),
    "open-clients": batcher_run(8, [1, 2, 1], clients=3),
    "one-client": batcher_run(8, [1], clients=1),
    "padded": batcher_run(8, [1, 2, 1], pad_from=3),
    "below-padding": batcher_run(8, [1, 1], pad_from=3),
    "padded-cap": batcher_run(4, [1] * 6, pad_from=2),
    "oversized-padding": batcher_run(4, [6], pad_from=2),
}

def search(cost, max_batch_size):
    sizes = []
    def measured(size):
        sizes.append(size)
        return cost(size)
    return {"start": padding_start(measured, max_batch_size), "measured": sizes}

out["padding_start"] = {
    "cliff": search(lambda n: 50 if n == 16 else 6 * n, 16),  # 9 images and more cost more than 16
    "growing": search(lambda n: 5 + 3 * n, 16),
    "single": search(lambda n: 1.0, 1),  # nothing to pad
}
shapes = []
cost = forward_cpu_ms(lambda inputs: shapes.append(list(inputs.shape)) or inputs, 5, 32, repeats=3)
out["forward_cpu_ms"] = {"shapes": shapes, "non_negative": cost >= 0}

def spread(max_wait_s, arrivals):
    """One-image requests at these seconds after the start, with 8 client connections open."""
    seen = []
    def forward(inputs):
        seen.append(len(inputs))
        return inputs
    batcher = MicroBatcher(forward, max_batch_size=8, max_wait_s=max_wait_s, clients=lambda: 8)
    batcher.start()
    start, jobs = time.monotonic(), []
    for at in arrivals:
        time.sleep(max(0.0, start + at - time.monotonic()))
        with batcher.arrival() as submit:
            jobs.append(submit(torch.zeros(1, 1)))
    for job in jobs:
        job.result(60)
    batcher.stop()
    return seen

out["spread"] = {
    # each request within max_wait of the last: one batch, though the last came 1.2 s after the first
    "steady": spread(1.0, [0, 0.3, 0.6, 0.9, 1.2]),
    # MAX_WAIT_SPREAD x max_wait = 2 s in all: the batch runs at 2.0 s with what it has
    "capped": spread(0.5, [0, 0.45, 0.9, 1.35, 1.8, 2.25, 2.7]),
}

def job_timeout():
    """A job nobody finishes: result() gives up after its timeout."""
    job = Job(torch.zeros(1, 1))
    try:
        job.result(0.05)
    except TimeoutError as exc:
        return str(exc)

def job_callback():
    """on_done runs once the job is done, on the thread that finishes it."""
    seen = []
    job = Job(torch.zeros(1, 1), on_done=lambda j: seen.append((j.done.is_set(), threading.current_thread().name)))
    job.probabilities = torch.ones(1, 1)
    finisher = threading.Thread(target=job.finish, name="finisher")
    finisher.start()
    finisher.join()
    return {"seen": seen, "outcome": job.outcome().tolist()}

out["job"] = {"timeout": job_timeout(), "callback": job_callback()}
out["max_wait_spread"] = MAX_WAIT_SPREAD
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def cases() -> dict[str, Any]:
    result = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", _CASES, str(ENTRYPOINTS_DIR)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcomes


@pytest.mark.parametrize(
    ("name", "forwards", "results"),
    [
        ("lone", [1], {"0": [0.0]}),  # with max_wait an hour, a lone request still runs at once
        ("announced", [4], {"0": [0.0], "1": [1.0, 1.0], "2": [2.0]}),  # one forward for three requests
        ("cap", [4, 2], {str(i): [float(i)] for i in range(6)}),
        ("oversized", [6], {"0": [0.0] * 6}),
        ("withdrawn", [1], {"0": [0.0]}),  # a request that failed to decode does not hold the batch
        ("failure", [2], {"0": "the model broke", "1": "the model broke"}),
        ("open-clients", [4], {"0": [0.0], "1": [1.0, 1.0], "2": [2.0]}),  # waits for each open connection
        ("one-client", [1], {"0": [0.0]}),
        ("padded", [8], {"0": [0.0], "1": [1.0, 1.0], "2": [2.0]}),  # blank rows are not handed out
        ("below-padding", [2], {"0": [0.0], "1": [1.0]}),
        ("padded-cap", [4, 4], {str(i): [float(i)] for i in range(6)}),
        ("oversized-padding", [6], {"0": [0.0] * 6}),
    ],
)
def test_micro_batcher(cases: dict[str, Any], name: str, forwards: list[int], results: dict[str, Any]) -> None:
    assert cases["batcher"][name] == {"forwards": forwards, "results": results}


def test_padding_starts_where_a_partial_batch_costs_more_than_a_full_one(cases: dict[str, Any]) -> None:
    got = cases["padding_start"]
    assert got["cliff"]["start"] == 9
    assert len(got["cliff"]["measured"]) <= 6  # a binary search, not every size
    assert got["growing"] == {"start": None, "measured": [16, 15]}  # no cliff: two forward passes timed
    assert got["single"] == {"start": None, "measured": []}


def test_forward_cpu_ms_times_blank_batches(cases: dict[str, Any]) -> None:
    assert cases["forward_cpu_ms"] == {"shapes": [[5, 3, 32, 32]] * 3, "non_negative": True}


def test_a_batch_waits_for_each_next_request_up_to_a_cap(cases: dict[str, Any]) -> None:
    assert cases["max_wait_spread"] == 4
    assert cases["spread"]["steady"] == [5]
    assert cases["spread"]["capped"] == [5, 2]


def test_a_job_nobody_finishes_times_out(cases: dict[str, Any]) -> None:
    assert cases["job"]["timeout"] == "no prediction within 0 s"


def test_a_finished_job_calls_back_on_the_finishing_thread(cases: dict[str, Any]) -> None:
    assert cases["job"]["callback"] == {"seen": [[True, "finisher"]], "outcome": [[1.0]]}
