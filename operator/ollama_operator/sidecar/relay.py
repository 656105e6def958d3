"""Copying an answer from Ollama to the client under one moving deadline.

One ``asyncio.timeout`` bounds every wait of an exchange; it is moved before
each wait, and :attr:`Relay.phase` says whose wait it is, so that a timeout
blames the right side:

- ``first_byte``: until Ollama's headers (``gateway.timeouts.firstByte``);
- ``idle``: until Ollama's next chunk (``gateway.timeouts.idle``), between
  chunks, never for a whole body: an answer that keeps flowing is never cut;
- ``client``: until the client took the last chunk (the same ``idle``
  seconds). A client that stops reading blocks the gateway's writes; that is
  the client's doing, and must not be reported (or counted) as Ollama falling
  silent.

Pure bookkeeping over awaitables passed in; no I/O of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import Histogram

FIRST_BYTE = "first_byte"
UPSTREAM_IDLE = "idle"
CLIENT_STALLED = "client"


class Relay:
    """The deadline of one exchange with Ollama, and which side it waits for."""

    __slots__ = ("deadline", "document", "idle", "loop", "phase")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float) -> None:
        self.loop = loop
        self.idle = idle
        self.deadline: asyncio.Timeout | None = None
        self.phase = FIRST_BYTE
        #: A one-document answer being relayed (it cannot end with an error line).
        self.document = False

    def _move(self, phase: str) -> None:
        self.phase = phase
        if self.deadline is not None:
            self.deadline.reschedule(self.loop.time() + self.idle)

    async def read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        """The next chunk from Ollama (``b""`` at the end), within ``idle`` seconds."""
        self._move(UPSTREAM_IDLE)
        return await read()

    async def write(self, write: Callable[[bytes], Awaitable[None]], chunk: bytes) -> None:
        """Hand a chunk to the client, which must take it within ``idle`` seconds."""
        self._move(CLIENT_STALLED)
        await write(chunk)

    def done(self) -> None:
        """The answer is complete: nothing is timed any more."""
        if self.deadline is not None:
            self.deadline.reschedule(None)

    async def copy(
        self,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], Awaitable[None]],
        first: bytes,
        itl: Histogram | None = None,
    ) -> bytes:
        """Write ``first`` and every chunk after it; returns the last two (the answer's tail).

        ``itl`` observes the time between two chunks arriving from Ollama.
        """
        previous = last = b""
        chunk = first
        if chunk:
            then = self.loop.time()
            while True:
                previous, last = last, chunk
                await self.write(write, chunk)
                chunk = await self.read(read)
                if not chunk:
                    break
                if itl is not None:
                    now = self.loop.time()
                    itl.observe(now - then)
                    then = now
        self.done()
        return previous + last
