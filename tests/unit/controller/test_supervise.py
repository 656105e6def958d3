"""Background loops are restarted when they die, with backoff, and stop when cancelled."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ollama_operator.controller.supervise import supervise


async def test_a_dying_loop_is_restarted_with_growing_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts = 0
    running = asyncio.Event()
    delays: list[float] = []

    async def loop() -> None:
        nonlocal starts
        starts += 1
        if starts <= 3:
            raise RuntimeError(f"death {starts}")
        running.set()
        await asyncio.Event().wait()  # runs until cancelled

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    task = asyncio.create_task(
        supervise("test loop", loop, first_delay=0.5, max_delay=1.5, sleep=no_wait)
    )
    await asyncio.wait_for(running.wait(), timeout=5)
    assert starts == 4
    assert delays == [0.5, 1.0, 1.5]
    assert sum("test loop" in r.getMessage() for r in caplog.records) == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_loop_that_returns_is_restarted_too() -> None:
    starts = 0
    again = asyncio.Event()

    async def loop() -> None:
        nonlocal starts
        starts += 1
        if starts == 2:
            again.set()
            await asyncio.Event().wait()

    async def no_wait(seconds: float) -> None:
        return None

    task = asyncio.create_task(supervise("returning loop", loop, sleep=no_wait))
    await asyncio.wait_for(again.wait(), timeout=5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert starts == 2
