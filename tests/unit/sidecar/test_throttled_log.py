"""Client-triggered log lines are bounded per interval, and what was dropped is counted."""

from __future__ import annotations

import logging

import pytest

from ollama_operator.sidecar.throttled_log import ThrottledLog

from .sidecar_harness import FakeClock


def test_at_most_n_lines_an_interval_then_a_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(
        logging.getLogger("test.throttled"), "bad things", per_interval=3, interval=60, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="test.throttled"):
        logged = [throttled.log(logging.WARNING, "bad thing %d", i) for i in range(100)]
        assert logged == [True] * 3 + [False] * 97
        assert throttled.suppressed == 97
        clock.advance(59)
        assert not throttled.log(logging.WARNING, "still suppressed")
        clock.advance(1)
        assert throttled.log(logging.WARNING, "bad thing again")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "bad thing 0",
        "bad thing 1",
        "bad thing 2",
        "98 more bad things not logged in the last 60s",
        "bad thing again",
    ]
    assert throttled.suppressed == 0


def test_a_quiet_interval_logs_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(logging.getLogger("test.quiet"), "x", per_interval=1, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.quiet"):
        throttled.log(logging.WARNING, "one")
        clock.advance(120)
        throttled.log(logging.WARNING, "two")
    assert [r.getMessage() for r in caplog.records] == ["one", "two"]
