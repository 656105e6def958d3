"""Keep a background loop running: restart it when it dies, with backoff.

The operator's own loops (the resync safety net, the status poller) are plain
asyncio tasks that kopf knows nothing about: if one raised, it would end for
good and the operator would carry on without it, silently (model status frozen,
no drift repair). Each loop already survives a bad pass on its own; this is the
net below that: whatever ends the loop is logged, and it is started again after
a delay that doubles up to a cap (so a loop that dies at once does not spin),
and starts over from the first delay once the loop has run well for a while.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


async def supervise(
    name: str,
    loop: Callable[[], Awaitable[None]],
    *,
    first_delay: float = 1.0,
    max_delay: float = 60.0,
    healthy_after: float = 300.0,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Run ``loop()`` until cancelled, restarting it whenever it returns or raises."""
    delay = first_delay
    while True:
        started = time.monotonic()
        error: Exception | None = None
        try:
            await loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        if time.monotonic() - started >= healthy_after:
            delay = first_delay  # it ran well for a while: this is a fresh failure
        if error is not None:
            log.error("background loop %s died; restarting in %.1fs", name, delay, exc_info=error)
        else:
            log.error("background loop %s ended; restarting in %.1fs", name, delay)
        await sleep(delay)
        delay = min(max_delay, delay * 2)
