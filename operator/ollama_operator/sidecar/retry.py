"""When a failed upstream attempt is tried again, and after how long.

A retry is only safe while the client has received nothing: once a byte of
the answer is on its way, repeating the request would duplicate or splice a
generation. So the gateway retries only failures that happen before Ollama
answered: a refused or dropped connection, a connect timeout, and a 502 or
503 status (Ollama's "server busy"). A first-byte timeout is not retried: it
means Ollama is working on the request, and a second copy would double the
load. Waits grow exponentially from ``retries.backoff`` with "equal jitter"
(half fixed, half random), so clients retrying in step spread out.
"""

from __future__ import annotations

import random
from collections.abc import Callable

#: Upstream statuses worth another attempt.
RETRY_STATUSES = frozenset({502, 503})

#: No single wait is longer than this, whatever the attempt number.
MAX_BACKOFF = 10.0


def backoff(attempt: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    ceiling = min(MAX_BACKOFF, base * 2.0**attempt)
    return ceiling / 2 + rand() * ceiling / 2
