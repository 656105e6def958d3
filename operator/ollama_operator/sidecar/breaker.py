"""The circuit breaker: stop sending requests to an Ollama that keeps failing.

When Ollama is down (restarting, out of memory, wedged) every request would
wait for a connect timeout or a retry budget before failing. After
``circuitBreaker.failureThreshold`` upstream failures in a row the breaker
*opens*: requests fail at once with 503 and ``Retry-After``. After
``circuitBreaker.openFor`` it is *half-open*: exactly one request (the probe)
goes through; its success closes the breaker, its failure opens it again. A
probe whose client went away decides nothing; the next request probes.

An upstream failure is a refused or dropped connection, a timeout, or a
502/503/504 from Ollama; any other answer, even a 4xx or 500 about one
request, proves Ollama is alive. The clock is injected: this module is pure.
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
        self._probing = False

    def configure(self, failure_threshold: int, open_for: float) -> None:
        """Change the settings; the current state is kept."""
        self.failure_threshold = failure_threshold
        self.open_for = open_for

    def admit(self) -> bool:
        """Let a request through; True when it is the half-open probe.

        Raises :class:`~.errors.CircuitOpen` (503) while open, and while the
        probe is out.
        """
        if self.state is CircuitState.CLOSED:
            return False
        if self.state is CircuitState.OPEN:
            wait = self._opened_at + self.open_for - self._clock()
            if wait > 0:
                raise circuit_open(self.failures, wait)
            self.state = CircuitState.HALF_OPEN
        if self._probing:
            raise circuit_open(self.failures, 1.0)
        self._probing = True
        return True

    def success(self) -> None:
        """Ollama answered: close."""
        self.failures = 0
        self._probing = False
        self.state = CircuitState.CLOSED

    def failure(self) -> None:
        """Ollama failed: count, and open at the threshold (or when the probe failed)."""
        self.failures += 1
        self._probing = False
        if self.state is not CircuitState.CLOSED or self.failures >= self.failure_threshold:
            self.state = CircuitState.OPEN
            self._opened_at = self._clock()

    def abandon(self) -> None:
        """The probe ended without a verdict (its client left): the next request probes."""
        self._probing = False
