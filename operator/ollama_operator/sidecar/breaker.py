"""The circuit breaker: stop sending requests to an Ollama that keeps failing.

When Ollama is down (restarting, out of memory, wedged) every request would
wait for a connect timeout or a retry budget before failing. After
``circuitBreaker.failureThreshold`` upstream failures in a row the breaker
*opens*: requests fail at once with 503 and ``Retry-After``. After
``circuitBreaker.openFor`` it is *half-open*: the gateway sends its own probe,
a cheap ``GET /api/version`` (:meth:`~.proxy.Upstream.probe`), while the
requests that arrive wait for its verdict: success closes the breaker and they
go on, failure opens it again and they get 503. The probe is never a client's
request: a long non-streamed generation sends its headers only when it is
done, and as the probe it would hold every other request at 503 until then.

An upstream failure is a refused or dropped connection, a connect timeout, or
a 502/503/504 from Ollama; any other answer, even a 4xx or 500 about one
request, proves Ollama is alive. A *first-byte* timeout is not a failure by
itself (one tenant's long prompt must not open the circuit for everyone): the
gateway then probes, and only a failed probe counts. The clock is injected:
this module is pure.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from .errors import circuit_open


class CircuitState(enum.IntEnum):
    """The breaker's state; the value is what the ``circuit_state`` gauge shows."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Counts consecutive upstream failures and fails fast while open."""

    def __init__(
        self,
        failure_threshold: int,
        open_for: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_for = open_for
        self.state = CircuitState.CLOSED
        self.failures = 0
        self._clock = clock
        self._opened_at = 0.0

    def configure(self, failure_threshold: int, open_for: float) -> None:
        """Change the settings; the current state is kept."""
        self.failure_threshold = failure_threshold
        self.open_for = open_for

    def admit(self) -> bool:
        """Let a request through; True when it must wait for a probe's verdict first.

        Raises :class:`~.errors.CircuitOpen` (503) while open.
        """
        if self.state is CircuitState.CLOSED:
            return False
        if self.state is CircuitState.OPEN:
            wait = self._opened_at + self.open_for - self._clock()
            if wait > 0:
                raise circuit_open(self.failures, wait)
            self.state = CircuitState.HALF_OPEN
        return True

    def success(self) -> None:
        """Ollama answered: close."""
        self.failures = 0
        self.state = CircuitState.CLOSED

    def failure(self) -> None:
        """Ollama failed: count, and open at the threshold (or when half-open)."""
        self.failures += 1
        if self.state is not CircuitState.CLOSED or self.failures >= self.failure_threshold:
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()
