"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar.breaker import CircuitBreaker, CircuitState
from ollama_operator.sidecar.errors import CircuitOpen

from .sidecar_harness import FakeClock


def opened(clock: FakeClock, threshold: int = 3) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, 10.0, clock=clock)
    for _ in range(threshold):
        assert breaker.admit() is False
        breaker.failure()
    return breaker


def test_opens_after_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock())
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    states = [breaker.state]
    breaker.failure()
    states.append(breaker.state)
    assert states == [CircuitState.CLOSED, CircuitState.OPEN]


def test_open_refuses_with_the_time_left() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(4)
    with pytest.raises(CircuitOpen) as caught:
        breaker.admit()
    assert caught.value.headers["Retry-After"] == "6"


def test_half_open_asks_every_request_to_wait_for_the_probe() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(10)
    assert breaker.admit() is True
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.admit() is True, "not refused: they wait for the gateway's own probe"


def test_a_successful_probe_closes() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(10)
    breaker.admit()
    breaker.success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failures == 0
    assert breaker.admit() is False


def test_a_failed_probe_opens_again_for_the_full_period() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    clock.advance(10)
    breaker.admit()
    breaker.failure()
    assert breaker.state is CircuitState.OPEN
    clock.advance(9)
    with pytest.raises(CircuitOpen):
        breaker.admit()


def test_configure_keeps_the_state() -> None:
    clock = FakeClock()
    breaker = opened(clock)
    breaker.configure(1, 1.0)
    assert breaker.state is CircuitState.OPEN
    clock.advance(1)
    assert breaker.admit() is True
