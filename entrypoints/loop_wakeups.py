"""Settling an asyncio event loop's futures from other threads, with few wake-ups of the loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, TypeVar

T = TypeVar("T")


class Wakeups:
    """Futures settled from other threads, resolved on the event loop with one wake-up for all
    those settled together rather than one each: each wake-up has the loop and the batcher
    trade the GIL while the batcher is still handing out a batch's results."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []

    def settle(self, future: asyncio.Future[T], value: T | None = None, error: BaseException | None = None) -> None:
        with self._lock:
            self._pending.append((future, value, error))
            first = len(self._pending) == 1
        if first:
            self._loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        """Resolves one future per turn of the loop, so that requests arriving meanwhile are read
        (and handed to the decoders) between answers, not after all of them."""
        with self._lock:
            future, value, error = self._pending.pop(0)
            more = bool(self._pending)
        if more:
            self._loop.call_soon(self._resolve)
        if future.done():  # its waiter timed out
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
