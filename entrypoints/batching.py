"""Micro-batching for the endpoint server: one thread runs the model over several requests at once.

Requests' inputs are queued as :class:`Job` s; :class:`MicroBatcher` forms batches of up to
``max_batch_size`` images and hands each job its rows of the result. :func:`padding_start`
(with :func:`forward_cpu_ms`, timed at start-up) finds the batch sizes better run padded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

LOG = logging.getLogger("serve")
PREDICT_TIMEOUT_S = 60.0
"""SageMaker's limit on one invocation inside the model container: the longest a request waits
for its prediction."""
MAX_WAIT_SPREAD = 4
"""A forming batch waits at most this many times ``max_wait_s`` in all (see MicroBatcher)."""
Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Job:
    """One request's preprocessed images, waiting for its rows of a batched forward pass."""

    inputs: torch.Tensor
    on_done: Callable[[Job], None] | None = None
    """Called with the job on the batcher's thread once it has its result (the server wakes its
    event loop)."""
    done: threading.Event = field(default_factory=threading.Event)
    probabilities: torch.Tensor | None = None
    error: BaseException | None = None
    batch_size: int = 0

    def finish(self) -> None:
        self.done.set()
        if self.on_done is not None:
            self.on_done(self)

    def outcome(self) -> torch.Tensor:
        """The probabilities of a finished job; raises the batch's error."""
        if self.error is not None:
            raise self.error
        assert self.probabilities is not None
        return self.probabilities

    def result(self, timeout: float) -> torch.Tensor:
        if not self.done.wait(timeout):
            raise TimeoutError(f"no prediction within {timeout:.0f} s")
        return self.outcome()


class MicroBatcher:
    """One thread running the model over the inputs of several requests at once.

    A forming batch waits while requests are announced but not yet queued, and while it holds
    fewer requests than there are open client connections: each of those may be about to send
    one. It waits up to ``max_wait_s`` for each next request, and ``MAX_WAIT_SPREAD`` times that
    in all: requests of a burst arrive one after another as they are read and decoded, and a
    deadline counted from the first would cut the batch short just before the last ones (a
    partial batch costs nearly a full one). A single client never waits.

    Args:
        forward_fn: ``N x 3 x S x S`` inputs (the server's: resized uint8 pixels) to ``N x C``
            probabilities.
        max_batch_size: most images per forward pass (a larger single request runs alone).
        max_wait_s: longest a batch waits for the next request.
        clients: how many client connections are open now (None: do not wait for them).
        pad_from: a batch of ``pad_from`` or more images, but fewer than ``max_batch_size``,
            runs padded with blank images to ``max_batch_size`` (see :func:`padding_start`);
            None: never padded.
    """

    def __init__(self, forward_fn: Forward, *, max_batch_size: int, max_wait_s: float,
                 clients: Callable[[], int] | None = None, pad_from: int | None = None) -> None:
        self.forward = forward_fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.clients = clients or (lambda: 0)
        self.pad_from = pad_from
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._arriving = 0
        self._last_arrival = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Runs what is queued, then ends the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join()

    @contextmanager
    def arrival(self) -> Iterator[Callable[..., Job]]:
        """Announces a request being decoded; yields ``submit(inputs, on_done=None)``, which
        queues its inputs.

        While announced requests exist, a forming batch waits for them (up to max_wait_s).
        """
        submitted = False

        def submit(inputs: torch.Tensor, on_done: Callable[[Job], None] | None = None) -> Job:
            nonlocal submitted
            job = Job(inputs, on_done)
            with self._cond:
                self._arriving -= 1
                submitted = True
                self._queue.append(job)
                self._last_arrival = time.monotonic()
                if len(self._queue) == 1 or not self._should_wait():
                    self._cond.notify_all()  # waking the batcher for every request would cost it CPU
            return job

        with self._cond:
            self._arriving += 1
            self._last_arrival = time.monotonic()
        try:
            yield submit
        finally:
            if not submitted:
                with self._cond:
                    self._arriving -= 1
                    self._cond.notify_all()

    def _queued_images(self) -> int:
        return sum(len(job.inputs) for job in self._queue)

    def _should_wait(self) -> bool:
        if self._stopped or self._queued_images() >= self.max_batch_size:
            return False
        return self._arriving > 0 or len(self._queue) < min(self.clients(), self.max_batch_size)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return
                latest = time.monotonic() + MAX_WAIT_SPREAD * self.max_wait_s
                while self._should_wait():
                    remaining = min(self._last_arrival + self.max_wait_s, latest) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                jobs = [self._queue.popleft()]
                size = len(jobs[0].inputs)
                while self._queue and size + len(self._queue[0].inputs) <= self.max_batch_size:
                    size += len(self._queue[0].inputs)
                    jobs.append(self._queue.popleft())
            self._run_jobs(jobs, size)

    def _run_jobs(self, jobs: list[Job], size: int) -> None:
        try:
            inputs = torch.cat([job.inputs for job in jobs])
            if self.pad_from is not None and self.pad_from <= size < self.max_batch_size:
                blank = inputs.new_zeros(self.max_batch_size - size, *inputs.shape[1:])
                inputs = torch.cat([inputs, blank])  # rows past `size` are never handed out
            probabilities = self.forward(inputs)
        except Exception as exc:  # every waiting request answers 500 with the reason
            LOG.exception("the model failed on a batch of %d", size)
            for job in jobs:
                job.error = exc
                job.finish()
            return
        start = 0
        for job in jobs:
            job.probabilities = probabilities[start:start + len(job.inputs)]
            job.batch_size = size
            start += len(job.inputs)
            job.finish()


def forward_cpu_ms(forward_fn: Forward, size: int, image_size: int, repeats: int = 2) -> float:
    """CPU time of a forward pass of ``size`` blank images, the least of ``repeats`` (the first
    pays for warming up): unlike wall time, it leaves out what other processes take."""
    inputs = torch.zeros(size, 3, image_size, image_size, dtype=torch.uint8)
    costs = []
    for _ in range(repeats):
        started = time.thread_time()
        forward_fn(inputs)
        costs.append(time.thread_time() - started)
    return min(costs) * 1000


def padding_start(cost: Callable[[int], float], max_batch_size: int) -> int | None:
    """The smallest batch size whose forward pass costs more than a full batch's (None: none does).

    A partial batch can cost more than a full one: single-threaded, torch runs 1x1
    convolutions with oneDNN only from 16 images on, so on this CPU EfficientNet-Lite0 takes
    about 1.1 times longer for 15 images than for 16 (1.8 times before ``model_fn`` kept its
    weights channels-last). Such batches are better run padded.
    ``cost(size)`` is assumed to grow with size below ``max_batch_size`` (binary search).
    """
    if max_batch_size < 2:
        return None
    full = cost(max_batch_size)
    if cost(max_batch_size - 1) <= full:
        return None
    low, high = 1, max_batch_size - 1  # cost(high) > full
    while low < high:
        middle = (low + high) // 2
        if cost(middle) > full:
            high = middle
        else:
            low = middle + 1
    return high
