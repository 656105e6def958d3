"""Backoff: exponential, jittered, capped."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar.retry import MAX_BACKOFF, RETRY_STATUSES, backoff


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.2), (1, 0.4), (2, 0.8), (3, 1.6)])
def test_backoff_doubles_with_equal_jitter(attempt: int, ceiling: float) -> None:
    assert backoff(attempt, 0.2, lambda: 0.0) == pytest.approx(ceiling / 2)
    assert backoff(attempt, 0.2, lambda: 1.0) == pytest.approx(ceiling)


def test_backoff_is_capped() -> None:
    assert backoff(30, 1.0, lambda: 1.0) == MAX_BACKOFF


def test_only_busy_and_bad_gateway_are_retried() -> None:
    assert {502, 503} == RETRY_STATUSES
