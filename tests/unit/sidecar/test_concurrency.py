"""The concurrency gate: slots, a bounded FIFO queue, cancellation, live limits."""

from __future__ import annotations

import asyncio

import pytest

from ollama_operator.sidecar.concurrency import AdmissionGate
from ollama_operator.sidecar.errors import QueueFull


async def test_free_slots_are_taken_without_waiting() -> None:
    gate = AdmissionGate(2, 0)
    assert gate.try_enter()
    await gate.enter()
    assert gate.in_flight == 2
    assert not gate.try_enter()
    with pytest.raises(QueueFull):
        await gate.enter()


async def test_waiters_get_slots_in_arrival_order() -> None:
    gate = AdmissionGate(1, 5)
    await gate.enter()
    order: list[int] = []

    async def wait(i: int) -> None:
        await gate.enter()
        order.append(i)

    tasks = [asyncio.create_task(wait(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert gate.queued == 3
    for _ in range(3):
        gate.leave()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert gate.in_flight == 1


async def test_a_full_queue_refuses_at_once() -> None:
    gate = AdmissionGate(1, 1)
    await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as caught:
        await gate.enter()
    assert caught.value.status == 503
    gate.leave()
    await waiter


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    gate = AdmissionGate(1, 1)
    await gate.enter()
    waiter = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gate.queued == 0
    gate.leave()
    assert gate.in_flight == 0


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    gate = AdmissionGate(1, 2)
    await gate.enter()
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    gate.leave()  # the slot goes to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)
    assert gate.in_flight == 1


async def test_raising_the_limit_lets_waiters_in() -> None:
    gate = AdmissionGate(1, 4)
    await gate.enter()
    waiters = [asyncio.create_task(gate.enter()) for _ in range(2)]
    await asyncio.sleep(0)
    gate.configure(3, 4)
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert (gate.in_flight, gate.queued) == (3, 0)
