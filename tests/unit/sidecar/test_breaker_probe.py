"""The half-open probe is the gateway's own cheap request; a slow answer is not a failure.

Regression tests for the security review: the half-open probe was the first
client request, so a long non-streamed generation blocked every other request
with 503 until it finished; and first-byte timeouts (one tenant's slow prompt)
opened the circuit for everybody although Ollama was working.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ollama_operator.sidecar.breaker import CircuitState
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import (
    MODEL,
    FakeClock,
    breaker_gateway,
    eventually,
    make_gateway,
    running,
    sample,
)

SLOW = {"model": MODEL, "prompt": "write a novel", "stream": False}


async def test_a_long_generation_after_the_open_period_does_not_block_other_requests(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway = breaker_gateway(ollama.url, clock)
    ollama.fail_next(1, status=503, error="server busy", path="/api/tags")
    async with running(gateway) as url:
        async with client.get(f"{url}/api/tags") as r:
            assert r.status == 503
        assert gateway.breaker.state is CircuitState.OPEN
        clock.advance(30)
        ollama.first_byte_delay = 60.0
        generation = asyncio.create_task(client.post(f"{url}/api/generate", json=SLOW))
        try:
            await eventually(lambda: ollama.in_flight == 1)
            async with client.get(f"{url}/api/tags") as r:
                assert r.status == 200, "traffic flows while the generation runs"
        finally:
            generation.cancel()
            with pytest.raises(asyncio.CancelledError):
                await generation
    assert len(ollama.requests_to("/api/version")) == 1, "one cheap probe"
    assert sample(gateway.metrics, "ollama_gateway_circuit_probes_total", result="ok") == 1


async def test_a_failed_probe_opens_the_circuit_again(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway = breaker_gateway(ollama.url, clock)
    ollama.fail_next(1, status=503, error="busy", path="/api/tags")
    ollama.fail_next(1, status=503, error="busy", path="/api/version")
    async with running(gateway) as url:
        async with client.get(f"{url}/api/tags") as r:
            assert r.status == 503
        clock.advance(30)
        async with client.get(f"{url}/api/tags") as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "30"
    assert len(ollama.requests_to("/api/tags")) == 1, "nothing but the probe was sent"
    assert sample(gateway.metrics, "ollama_gateway_circuit_probes_total", result="failed") == 1


async def test_first_byte_timeouts_of_a_working_ollama_do_not_open_the_circuit(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(
        ollama.url,
        timeouts={"firstByte": "100ms"},
        circuitBreaker={"failureThreshold": 1, "openFor": "30s"},
    )
    ollama.first_byte_delay = 5.0
    async with running(gateway) as url:
        for _ in range(2):
            async with client.post(f"{url}/api/generate", json=SLOW) as r:
                assert r.status == 504
        await eventually(
            lambda: sample(gateway.metrics, "ollama_gateway_circuit_probes_total", result="ok") >= 1
        )
        assert gateway.breaker.state is CircuitState.CLOSED
        async with client.get(f"{url}/api/tags") as r:
            assert r.status == 200
