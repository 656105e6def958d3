"""Rendering /metrics happens off the event loop that serves inference.

Regression test for the security review: the exposition was rendered on the
loop, so a slow render (many series, a slow gauge callback) stalled every
proxied request of the pod for as long as it took.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import aiohttp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ollama_operator.sidecar.admin import Admin
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, eventually, make_gateway, running, serve

#: How long the slow collector holds the render when nobody releases it (the failure case).
HOLD_SECONDS = 5.0


class SlowCollector(Collector):
    """A collector that holds the render until the test releases it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.held_to_the_end = False

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # registering must not render (the registry would call collect)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.entered.set()
        self.held_to_the_end = not self.released.wait(HOLD_SECONDS)
        yield GaugeMetricFamily("ollama_gateway_test_slow", "slow", value=1.0)


async def test_a_slow_render_does_not_delay_a_concurrent_proxied_request() -> None:
    async with OllamaEmulator(installed=[MODEL]) as ollama:
        gateway = make_gateway(ollama.url)
        slow = SlowCollector()
        admin = Admin(FakeAgent([MODEL]), gateway.metrics)
        async with (
            running(gateway) as url,
            serve(admin.handle) as admin_url,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as client,
        ):
            gateway.metrics.registry.register(slow)

            async def scrape() -> bytes:
                async with client.get(f"{admin_url}/metrics") as r:
                    return await r.read()

            scraping = asyncio.create_task(scrape())
            await eventually(slow.entered.is_set, within=10)
            async with client.get(f"{url}/api/tags") as r:
                assert r.status == 200
            served_while_rendering = not slow.released.is_set()
            slow.released.set()
            text = await scraping
    assert served_while_rendering
    assert not slow.held_to_the_end, "the proxied request waited for the render"
    assert b"ollama_gateway_test_slow 1.0" in text
