"""The cache is per tenant, a no-cache request cannot rewrite what others see, and it is bounded.

Regression tests for the security review: entries were shared by every API key
(any key could learn another's prompt from an ``X-Cache: HIT``, and re-roll a
shared answer with ``Cache-Control: no-cache`` until it liked it), and
1,000 entries of 1 MiB could exceed the sidecar's 256 Mi memory limit.
"""

from __future__ import annotations

import aiohttp

from ollama_operator.api.sidecar_config import CachePolicy
from ollama_operator.sidecar.auth import KeyRing
from ollama_operator.sidecar.cache import ENTRY_OVERHEAD, ResponseCache
from ollama_operator.sidecar.settings import GatewaySettings
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeClock, config, make_gateway, running, sample

KEY_A = "sk-tenant-a-0123456789"
KEY_B = "sk-tenant-b-9876543210"
AUTH_A = {"Authorization": f"Bearer {KEY_A}"}
AUTH_B = {"Authorization": f"Bearer {KEY_B}"}
BODY = {"model": MODEL, "prompt": "why is the sky blue", "stream": False}
NO_CACHE = {"Cache-Control": "no-cache"}


async def post(
    client: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[str, bytes]:
    async with client.post(f"{url}/api/generate", json=BODY, headers=headers) as r:
        assert r.status == 200
        return r.headers["X-Cache"], await r.read()


async def test_entries_are_per_key_by_default(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY_A, KEY_B]), cache={"enabled": True})
    async with running(gateway) as url:
        assert (await post(client, url, AUTH_A))[0] == "MISS"
        seen_by_b, _ = await post(client, url, AUTH_B)
        assert seen_by_b == "MISS", "B must not learn that A sent this prompt"
        assert (await post(client, url, AUTH_A))[0] == "HIT"
        assert (await post(client, url, AUTH_B))[0] == "HIT"
    assert len(ollama.requests_to("/api/generate")) == 2


async def test_no_cache_from_one_key_does_not_change_what_another_key_gets(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY_A, KEY_B]), cache={"enabled": True})
    async with running(gateway) as url:
        _, first = await post(client, url, AUTH_A)
        for _ in range(3):
            await post(client, url, {**AUTH_B, **NO_CACHE})
        state, again = await post(client, url, AUTH_A)
    assert (state, again) == ("HIT", first)


async def test_no_cache_refreshes_the_keys_own_entry(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY_A]), cache={"enabled": True})
    async with running(gateway) as url:
        _, first = await post(client, url, AUTH_A)
        state, fresh = await post(client, url, {**AUTH_A, **NO_CACHE})
        assert (state, fresh != first) == ("MISS", True)
        assert (await post(client, url, AUTH_A)) == ("HIT", fresh)


async def test_a_shared_cache_is_opt_in_and_no_cache_never_overwrites_it(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(
        ollama.url,
        keys=KeyRing.of([KEY_A, KEY_B]),
        cache={"enabled": True},
        sidecar={"cache": {"shared": True}},
    )
    async with running(gateway) as url:
        _, first = await post(client, url, AUTH_A)
        assert (await post(client, url, AUTH_B)) == ("HIT", first)
        state, fresh = await post(client, url, {**AUTH_B, **NO_CACHE})
        assert state == "MISS"
        assert fresh != first
        assert (await post(client, url, AUTH_A)) == ("HIT", first), "B re-rolled A's answer"
    assert sample(gateway.metrics, "ollama_gateway_cache_hits_total") == 2


async def test_without_auth_the_cache_is_shared_and_no_cache_never_overwrites_it(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, cache={"enabled": True})
    async with running(gateway) as url:
        _, first = await post(client, url, {})
        state, _ = await post(client, url, NO_CACHE)
        assert state == "MISS"
        assert (await post(client, url, {})) == ("HIT", first)


def test_the_cache_is_bounded_in_bytes_least_recently_used_first() -> None:
    entry = 1000
    cache = ResponseCache(100, 60.0, max_bytes=3 * (entry + ENTRY_OVERHEAD), timer=FakeClock())
    for key in (b"a", b"b", b"c"):
        assert cache.put(key, "t", b"x" * entry)
    cache.get(b"a")
    assert cache.put(b"d", "t", b"x" * entry)
    assert cache.get(b"b") is None, "the least recently used entry made room"
    assert {k for k in (b"a", b"c", b"d") if cache.get(k) is not None} == {b"a", b"c", b"d"}
    assert cache.size_bytes <= cache.max_bytes
    assert not cache.put(b"e", "t", b"x" * (cache.max_bytes + 1)), "larger than the whole cache"


def test_the_entry_count_still_bounds_the_cache() -> None:
    cache = ResponseCache(2, 60.0, max_bytes=1 << 20, timer=FakeClock())
    for key in (b"a", b"b", b"c"):
        cache.put(key, "t", b"1")
    assert len(cache) == 2
    assert cache.get(b"a") is None


def test_a_put_that_must_not_replace_keeps_the_fresh_entry() -> None:
    cache = ResponseCache(10, 60.0, max_bytes=1 << 20, timer=FakeClock())
    cache.put(b"k", "t", b"first")
    assert not cache.put(b"k", "t", b"second", replace=False)
    hit = cache.get(b"k")
    assert hit is not None
    assert hit.body == b"first"


def test_the_default_byte_bound_is_well_under_the_sidecar_memory_limit() -> None:
    defaults = GatewaySettings.from_config(config("http://127.0.0.1:11434"))
    assert defaults.cache_max_bytes == CachePolicy().max_bytes == 64 * 1024 * 1024
    assert defaults.cache_shared is False
    assert "cache:" not in config("http://127.0.0.1:11434").to_yaml().replace("  cache:", "")


def test_the_byte_bound_is_configurable_and_changes_live() -> None:
    tuned = GatewaySettings.from_config(
        config("http://127.0.0.1:11434", cache={"shared": True, "maxBytes": 4 << 20})
    )
    assert (tuned.cache_shared, tuned.cache_max_bytes) == (True, 4 << 20)
    cache = ResponseCache(10, 60.0, max_bytes=1 << 20)
    cache.put(b"k", "t", b"1")
    cache.configure(10, 60.0, max_bytes=1 << 20)
    assert len(cache) == 1
    cache.configure(10, 60.0, max_bytes=2 << 20)
    assert cache.max_bytes == 2 << 20
