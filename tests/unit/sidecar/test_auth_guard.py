"""Failed authentications are limited per client address: guessing keys gets a 429.

Regression tests for the security review: authentication ran before the rate
limiter, so invalid-key guesses were never limited at all.
"""

from __future__ import annotations

import aiohttp
import pytest

from ollama_operator.sidecar.auth import KeyRing
from ollama_operator.sidecar.auth_guard import AuthFailureGuard
from ollama_operator.sidecar.settings import GatewaySettings
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import FakeClock, config, make_gateway, read_json, running, sample

KEY = "sk-test-0123456789"
GOOD = {"Authorization": f"Bearer {KEY}"}
BAD = {"Authorization": "Bearer sk-guess-0000"}
LIMIT = {"clients": {"authFailures": {"burst": 2, "failuresPerMinute": 6}}}


async def test_guessing_keys_is_refused_with_429_and_retry_after(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]), clock=clock, sidecar=LIMIT)
    async with running(gateway) as url:
        for headers in (BAD, {}):
            async with client.get(f"{url}/api/tags", headers=headers) as r:
                assert r.status == 401
        async with client.get(f"{url}/api/tags", headers=BAD) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "10"
            error = (await read_json(r))["error"]
            assert error == "too many failed authentications from this address: retry in 10s"
        async with client.get(f"{url}/v1/models", headers=GOOD) as r:
            assert r.status == 429, "a correct key from a refused address is refused too"
            assert (await read_json(r))["error"]["code"] == "too_many_auth_failures"
        async with client.get(f"{url}/", headers=BAD) as r:
            assert r.status == 200, "GET / needs no key"

        clock.advance(10)
        async with client.get(f"{url}/api/tags", headers=GOOD) as r:
            assert r.status == 200, "one failure's worth refilled"
        async with client.get(f"{url}/api/tags", headers=BAD) as r:
            assert r.status == 401
        async with client.get(f"{url}/api/tags", headers=GOOD) as r:
            assert r.status == 429
    assert sample(gateway.metrics, "ollama_gateway_auth_throttled_total") == 3
    assert sample(gateway.metrics, "ollama_gateway_auth_failures_total", reason="invalid") == 2


async def test_the_default_limit_stops_a_guessing_client(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]), clock=FakeClock())
    statuses = []
    async with running(gateway) as url:
        for _ in range(30):
            async with client.get(f"{url}/api/tags", headers=BAD) as r:
                statuses.append(r.status)
    assert statuses.count(401) == 10
    assert set(statuses[10:]) == {429}


async def test_without_auth_nothing_is_limited(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, sidecar=LIMIT)
    async with running(gateway) as url:
        for _ in range(5):
            async with client.get(f"{url}/api/tags", headers=BAD) as r:
                assert r.status == 200


def test_a_bucket_refills_at_the_configured_rate() -> None:
    clock = FakeClock()
    guard = AuthFailureGuard(60, 3, clock=clock)
    for _ in range(3):
        assert guard.retry_after("10.0.0.1") == 0.0
        guard.failed("10.0.0.1")
    assert guard.retry_after("10.0.0.1") == pytest.approx(1.0)
    assert guard.retry_after("10.0.0.2") == 0.0, "another address has its own bucket"
    clock.advance(0.5)
    assert guard.retry_after("10.0.0.1") == pytest.approx(0.5)
    clock.advance(0.5)
    assert guard.retry_after("10.0.0.1") == 0.0


def test_memory_is_bounded_and_refilled_buckets_are_forgotten() -> None:
    clock = FakeClock()
    guard = AuthFailureGuard(60, 2, clock=clock, max_addresses=100)
    for i in range(1000):
        guard.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(guard) <= 100
    clock.advance(2.0)
    assert len(guard) == 0, "a bucket that refilled is dropped"


def test_configure_keeps_levels_capped_to_the_new_burst() -> None:
    clock = FakeClock()
    guard = AuthFailureGuard(60, 5, clock=clock)
    guard.failed("a")
    guard.configure(60, 1)
    assert guard.retry_after("a") == 0.0
    guard.failed("a")
    assert guard.retry_after("a") > 0


def test_settings_default_and_from_the_config() -> None:
    defaults = GatewaySettings.from_config(config("http://127.0.0.1:11434"))
    assert (defaults.auth_failures_per_minute, defaults.auth_failures_burst) == (10, 10)
    tuned = GatewaySettings.from_config(config("http://127.0.0.1:11434", **LIMIT))
    assert (tuned.auth_failures_per_minute, tuned.auth_failures_burst) == (6, 2)
