"""The concurrency limit and bounded queue in front of Ollama.

Ollama runs a few generations at once (``OLLAMA_NUM_PARALLEL``) and queues the
rest without bound; a gateway that forwards everything hides overload until
clients time out. :class:`AdmissionGate` lets ``maxConcurrent`` inference
requests through, parks up to ``maxQueue`` more in arrival order, and refuses
the rest at once (503 with ``Retry-After``), so a full pod is visible and a
load balancer can move on.

The common case costs no allocation: :meth:`AdmissionGate.try_enter` takes a
free slot synchronously; only a request that must wait creates a future. A
waiter that goes away (its client disconnected) leaves the queue, and a slot
handed to it just before is passed on. Limits change live.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from .errors import queue_full


class AdmissionGate:
    """Slots for requests to Ollama, and a bounded FIFO queue for them."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    def configure(self, max_concurrent: int, max_queue: int) -> None:
        """Change the limits; waiters are let in at once if slots were added."""
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self._wake()

    def try_enter(self) -> bool:
        """Take a free slot without waiting (none is free while others queue)."""
        if self.in_flight < self.max_concurrent and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def enter(self) -> None:
        """Take a slot, waiting in the queue; raises QueueFull (503) when the queue is full."""
        if self.try_enter():
            return
        if len(self._waiters) >= self.max_queue:
            raise queue_full(self.max_concurrent, self.max_queue)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over as we were cancelled: pass it on.
                self.leave()
            else:
                self._remove(waiter)
            raise

    def leave(self) -> None:
        """Give a slot back; the longest waiter gets it."""
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.max_concurrent:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
