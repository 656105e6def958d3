"""The public port end to end: a real gateway in front of the Ollama emulator, over sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ollama_operator.sidecar.auth import KeyRing
from ollama_operator.sidecar.routes import MANAGEMENT_PATHS
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import (
    MODEL,
    FakeClock,
    breaker_gateway,
    eventually,
    make_gateway,
    read_json,
    running,
    sample,
)

KEY = "sk-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
GENERATE = {"model": MODEL, "prompt": "why is the sky blue"}


def inference_requests(ollama: OllamaEmulator, path: str = "/api/generate") -> int:
    return len(ollama.requests_to(path))


# ---- passthrough and streaming ----------------------------------------------------------------


async def test_generate_is_streamed_as_ndjson(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in r.content if line.strip()]
    assert [line["done"] for line in lines] == [False] * ollama.stream_chunks + [True]
    forwarded = ollama.requests_to("/api/generate")[0]
    assert forwarded.body == GENERATE
    assert "Authorization" not in forwarded.headers


async def test_chunks_reach_the_client_before_ollama_finishes(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.stream_chunks = 4
    ollama.chunk_delay = 0.3
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        first = json.loads(await r.content.readline())
        assert first["done"] is False
        assert ollama.in_flight == 1, "the first chunk arrived only after Ollama had finished"
        rest = [line async for line in r.content if line.strip()]
    assert len(rest) == ollama.stream_chunks
    assert ollama.in_flight == 0


async def test_sse_is_streamed(ollama: OllamaEmulator, client: aiohttp.ClientSession) -> None:
    ollama.chunk_delay = 0.3
    gateway = make_gateway(ollama.url)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with running(gateway) as url, client.post(f"{url}/v1/chat/completions", json=body) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        first = await r.content.readline()
        assert first.startswith(b"data: {")
        assert ollama.in_flight == 1
        rest = await r.read()
    assert rest.rstrip().endswith(b"data: [DONE]")


async def test_client_disconnect_cancels_the_upstream_request(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.stream_chunks = 50
    ollama.chunk_delay = 0.1
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url:
        response = await client.post(f"{url}/api/generate", json=GENERATE)
        await response.content.readline()
        response.close()
        await eventually(lambda: ollama.cancelled_streams == 1)
        await eventually(lambda: gateway.gate.in_flight == 0)
        await eventually(
            lambda: (
                sample(
                    gateway.metrics,
                    "ollama_gateway_requests_total",
                    route="generate",
                    model=MODEL,
                    code="499",
                )
                == 1
            )
        )
    assert ollama.in_flight == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/tags", None),
        ("GET", "/api/ps", None),
        ("GET", "/api/version", None),
        ("POST", "/api/show", {"model": MODEL}),
        ("POST", "/api/embed", {"model": MODEL, "input": ["a", "b"]}),
        ("POST", "/api/embeddings", {"model": MODEL, "prompt": "a"}),
        ("POST", "/api/chat", {"model": MODEL, "stream": False, "messages": []}),
        ("POST", "/v1/chat/completions", {"model": MODEL, "messages": [{"content": "x"}]}),
        ("POST", "/v1/completions", {"model": MODEL, "prompt": "x"}),
        ("POST", "/v1/embeddings", {"model": MODEL, "input": "x"}),
        ("GET", "/v1/models", None),
        ("GET", f"/v1/models/{MODEL}", None),
    ],
)
async def test_every_api_route_is_passed_through(
    ollama: OllamaEmulator,
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    body: object,
) -> None:
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url:
        async with client.request(method, url + path, json=body) as via_gateway:
            gateway_status, gateway_body = via_gateway.status, await via_gateway.read()
        async with client.request(method, ollama.url + path, json=body) as direct:
            direct_status, direct_body = direct.status, await direct.read()
    assert gateway_status == direct_status == 200
    assert via_gateway.headers["Content-Type"] == direct.headers["Content-Type"]
    if path in ("/api/tags", "/api/ps", "/api/version", "/v1/models", "/api/show"):
        assert gateway_body == direct_body
    assert ollama.requests_to(path)[0].body == body


async def test_root_answers_like_ollama_without_a_key(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]))
    async with running(gateway) as url:
        async with client.get(f"{url}/") as r:
            assert (r.status, await r.text()) == (200, "Ollama is running")
        async with client.head(f"{url}/") as r:
            assert r.status == 200
        async with client.post(f"{url}/") as r:
            assert r.status == 405
    assert ollama.requests == []


async def test_a_model_that_is_present_but_not_declared_is_allowed(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.install("qwen:0.5b")
    gateway = make_gateway(ollama.url, present=["qwen:0.5b"])
    body = {"model": "qwen:0.5b", "prompt": "x", "stream": False}
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
        assert r.status == 200


async def test_model_names_are_compared_as_ollama_does(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.install("qwen:latest")
    gateway = make_gateway(ollama.url, present=["qwen:latest"])
    body = {"model": "registry.ollama.ai/library/QWEN", "prompt": "x", "stream": False}
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
        assert r.status == 200


# ---- errors the gateway answers itself ---------------------------------------------------------


async def test_401_without_a_key(ollama: OllamaEmulator, client: aiohttp.ClientSession) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]))
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.headers["Content-Type"].startswith("application/json")
        assert (await read_json(r))["error"].startswith("missing API key")
    assert sample(gateway.metrics, "ollama_gateway_auth_failures_total", reason="missing") == 1
    assert ollama.requests == []


async def test_401_with_a_wrong_key_never_repeats_it(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]))
    wrong = {"Authorization": "Bearer sk-wrong-key"}
    async with running(gateway) as url, client.get(f"{url}/api/tags", headers=wrong) as r:
        assert r.status == 401
        text = await r.text()
    assert json.loads(text) == {"error": "invalid API key"}
    assert "sk-wrong-key" not in text
    assert sample(gateway.metrics, "ollama_gateway_auth_failures_total", reason="invalid") == 1


async def test_401_on_openai_routes_has_openais_shape(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]))
    async with running(gateway) as url, client.get(f"{url}/v1/models") as r:
        assert r.status == 401
        error = (await read_json(r))["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    assert error["message"].startswith("missing API key")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"authorization": f"bearer  {KEY} "}],
)
async def test_a_valid_key_passes(
    ollama: OllamaEmulator, client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY, "another"]))
    async with running(gateway) as url, client.get(f"{url}/api/tags", headers=headers) as r:
        assert r.status == 200


@pytest.mark.parametrize("path", sorted(MANAGEMENT_PATHS))
async def test_403_for_model_management(
    ollama: OllamaEmulator, client: aiohttp.ClientSession, path: str
) -> None:
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url, client.post(url + path, json={"model": MODEL}) as r:
        assert r.status == 403
        message = (await read_json(r))["error"]
    assert path in message
    assert "spec.models" in message
    assert ollama.requests == []


@pytest.mark.parametrize(
    ("path", "openai"), [("/api/nothing", False), ("/metrics", False), ("/v1/nothing", True)]
)
async def test_404_for_unknown_paths(
    ollama: OllamaEmulator, client: aiohttp.ClientSession, path: str, openai: bool
) -> None:
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url, client.get(url + path) as r:
        assert r.status == 404
        error = (await read_json(r))["error"]
    message = error["message"] if openai else error
    assert f"GET {path}" in message
    assert ollama.requests == []
    assert (
        sample(
            gateway.metrics,
            "ollama_gateway_requests_total",
            route="unmatched",
            model="",
            code="404",
        )
        == 1
    )


async def test_404_for_a_model_neither_declared_nor_present(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url)
    body = {"model": "mistral:7b", "prompt": "x"}
    async with running(gateway) as url:
        async with client.post(f"{url}/api/generate", json=body) as r:
            assert r.status == 404
            assert (await read_json(r)) == {
                "error": 'model "mistral:7b" not found: it is not declared in the '
                "OllamaServer's spec.models"
            }
        async with client.post(f"{url}/v1/chat/completions", json=body) as r:
            assert r.status == 404
            assert (await read_json(r))["error"]["code"] == "model_not_found"
    assert ollama.requests == []


async def test_405_names_the_allowed_methods(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url)
    async with running(gateway) as url, client.get(f"{url}/api/generate") as r:
        assert r.status == 405
        assert r.headers["Allow"] == "POST"
        assert "GET" in (await read_json(r))["error"]


async def test_413_for_a_body_over_the_limit(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, maxBodyBytes=2048)
    big = {"model": MODEL, "prompt": "x" * 4096}
    async with running(gateway) as url:
        async with client.post(f"{url}/api/generate", json=big) as r:
            assert r.status == 413
            assert "2048 bytes" in (await read_json(r))["error"]

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b" " * 512

        async with client.post(f"{url}/api/generate", data=chunked()) as r:
            assert r.status == 413
        async with client.post(f"{url}/api/generate", json={**big, "prompt": "x"}) as r:
            assert r.status == 200
    assert inference_requests(ollama) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON in request body"),
        (b"", "missing request body"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"model": 42, "prompt": "x"}', "model: must be a string"),
        (b'{"prompt": "x"}', "model: is required"),
        (b'{"model": "llama3.2:1b", "stream": "yes"}', "stream: must be a boolean"),
        (b'{"model": "llama3.2:1b", "context": [1, "2"]}', "context[1]: must be an integer"),
        (b'{"model": "llama3.2:1b", "keep_alive": []}', "keep_alive: must be a duration"),
        (b'{"model": "llama3.2:1b", "x": NaN}', "invalid JSON in request body"),
    ],
)
async def test_400_says_what_is_wrong(
    ollama: OllamaEmulator, client: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    gateway = make_gateway(ollama.url)
    headers = {"Content-Type": "application/json"}
    async with (
        running(gateway) as url,
        client.post(f"{url}/api/generate", data=body, headers=headers) as r,
    ):
        assert r.status == 400
        assert (await read_json(r))["error"].startswith(message)
    assert ollama.requests == []


async def test_400_on_openai_routes_has_openais_shape(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url)
    body = {"model": MODEL, "messages": [{"role": "user", "content": 7}]}
    async with running(gateway) as url, client.post(f"{url}/v1/chat/completions", json=body) as r:
        assert r.status == 400
        assert (await read_json(r)) == {
            "error": {
                "message": "messages[0].content: must be a string or an array",
                "type": "invalid_request_error",
                "code": "invalid_field",
            }
        }


async def test_429_with_retry_after_and_ratelimit_headers(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway = make_gateway(
        ollama.url,
        keys=KeyRing.of([KEY, "other"]),
        clock=clock,
        rateLimit={"requestsPerMinute": 6, "burst": 2},
    )
    async with running(gateway) as url:
        seen = []
        for _ in range(2):
            async with client.get(f"{url}/api/tags", headers=AUTH) as r:
                seen.append((r.status, r.headers["x-ratelimit-remaining"]))
                assert r.headers["x-ratelimit-limit"] == "2"
        assert seen == [(200, "1"), (200, "0")]
        async with client.get(f"{url}/api/tags", headers=AUTH) as r:
            assert r.status == 429
            assert r.headers["Retry-After"] == "10"
            assert r.headers["x-ratelimit-remaining"] == "0"
            assert r.headers["x-ratelimit-reset"] == "20"
            assert (await read_json(r)) == {"error": "rate limit exceeded: retry in 10s"}
        async with client.get(f"{url}/api/tags", headers={"X-API-Key": "other"}) as r:
            assert r.status == 200, "another key has its own bucket"
        clock.advance(10)
        async with client.get(f"{url}/api/tags", headers=AUTH) as r:
            assert r.status == 200
    assert sample(gateway.metrics, "ollama_gateway_rate_limited_total") == 1
    assert len(ollama.requests_to("/api/tags")) == 4


async def test_503_when_the_queue_is_full(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.first_byte_delay = 0.5
    gateway = make_gateway(ollama.url, maxConcurrent=1, maxQueue=1)
    body = {**GENERATE, "stream": False}
    async with running(gateway) as url:

        async def call() -> int:
            async with client.post(f"{url}/api/generate", json=body) as r:
                await r.read()
                return r.status

        first = asyncio.create_task(call())
        await eventually(lambda: ollama.in_flight == 1)
        second = asyncio.create_task(call())
        await eventually(lambda: gateway.gate.queued == 1)
        assert sample(gateway.metrics, "ollama_gateway_queue_depth") == 1
        assert sample(gateway.metrics, "ollama_gateway_in_flight") == 1
        async with client.post(f"{url}/api/generate", json=body) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
            assert "gateway.maxQueue" in (await read_json(r))["error"]
        assert await first == 200
        assert await second == 200
    assert ollama.max_in_flight == 1


async def test_metadata_routes_skip_the_queue(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.first_byte_delay = 0.5
    gateway = make_gateway(ollama.url, maxConcurrent=1, maxQueue=0)
    async with running(gateway) as url:
        busy = asyncio.create_task(client.post(f"{url}/api/generate", json=GENERATE))
        await eventually(lambda: ollama.in_flight == 1)
        async with client.get(f"{url}/api/tags") as r:
            assert r.status == 200
        (await busy).close()


# ---- upstream failures -------------------------------------------------------------------------


async def test_502_when_ollama_refuses_connections_after_retries(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, retries={"attempts": 2, "backoff": "1ms"})
    await ollama.stop()
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 502
        assert (await read_json(r))["error"].startswith("Ollama is not reachable")
    assert sample(gateway.metrics, "ollama_gateway_upstream_retries_total") == 2
    assert sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="connect") == 3


async def test_retry_before_the_first_byte(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.fail_next(1, status=503, error="server busy, please try again")
    gateway = make_gateway(ollama.url, retries={"attempts": 2, "backoff": "1ms"})
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 200
        await r.read()
    assert inference_requests(ollama) == 2
    assert sample(gateway.metrics, "ollama_gateway_upstream_retries_total") == 1


async def test_upstream_errors_that_are_not_retried_pass_through(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.fail_next(3, status=503, error="server busy, please try again")
    gateway = make_gateway(ollama.url, retries={"attempts": 1, "backoff": "1ms"})
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 503
        assert (await read_json(r)) == {"error": "server busy, please try again"}
    assert inference_requests(ollama) == 2


async def test_504_when_ollama_does_not_answer_in_time(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.first_byte_delay = 2.0
    gateway = make_gateway(
        ollama.url, timeouts={"firstByte": "100ms"}, retries={"attempts": 2, "backoff": "1ms"}
    )
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 504
        assert "gateway.timeouts.firstByte" in (await read_json(r))["error"]
    assert inference_requests(ollama) == 1, "a first-byte timeout is never retried"
    await eventually(lambda: ollama.in_flight == 0)
    assert (
        sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="first_byte_timeout")
        == 1
    )


async def test_idle_timeout_ends_a_started_stream_with_an_error_line(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.chunk_delay = 2.0
    gateway = make_gateway(ollama.url, timeouts={"idle": "100ms"})
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 200
        lines = [json.loads(line) async for line in r.content if line.strip()]
    assert lines[0]["done"] is False
    assert lines[-1] == {"error": "Ollama sent nothing for 0.1s (gateway.timeouts.idle)"}
    await eventually(lambda: ollama.cancelled_streams == 1)
    assert sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="idle_timeout") == 1


async def test_circuit_breaker_opens_then_probes(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    gateway = breaker_gateway(ollama.url, clock, threshold=2)
    ollama.fail_next(2, status=503, error="server busy", path="/api/tags")
    ollama.fail_next(1, status=503, error="server busy", path="/api/version")
    tags = "/api/tags"
    async with running(gateway) as url:
        for _ in range(2):
            async with client.get(url + tags) as r:
                assert r.status == 503
                assert (await read_json(r)) == {"error": "server busy"}
        assert sample(gateway.metrics, "ollama_gateway_circuit_state") == 1
        async with client.get(url + tags) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "30"
            assert "failed 2 times in a row" in (await read_json(r))["error"]
        assert len(ollama.requests_to(tags)) == 2, "an open circuit sends nothing"

        clock.advance(30)
        async with client.get(url + tags) as r:
            assert r.status == 503, "the probe (GET /api/version) failed"
            assert r.headers["Retry-After"] == "30", "a failed probe opens the circuit again"
        assert len(ollama.requests_to(tags)) == 2
        assert len(ollama.requests_to("/api/version")) == 1

        clock.advance(30)
        async with client.get(url + tags) as r:
            assert r.status == 200, "the probe succeeded"
        assert sample(gateway.metrics, "ollama_gateway_circuit_state") == 0
        async with client.get(url + tags) as r:
            assert r.status == 200


# ---- the cache ---------------------------------------------------------------------------------


async def test_cache_hit_miss_and_bypass(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, cache={"enabled": True})
    body = {"model": MODEL, "prompt": "why", "stream": False}
    reordered = b'{"stream": false,  "prompt": "why", "model": "llama3.2:1b"}'
    json_headers = {"Content-Type": "application/json"}
    async with running(gateway) as url:
        endpoint = f"{url}/api/generate"
        async with client.post(endpoint, json=body) as r:
            assert (r.status, r.headers["X-Cache"]) == (200, "MISS")
            first = await r.read()
        async with client.post(endpoint, data=reordered, headers=json_headers) as r:
            assert (r.status, r.headers["X-Cache"]) == (200, "HIT")
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.read() == first
        async with client.post(endpoint, json=body, headers={"Cache-Control": "no-cache"}) as r:
            assert r.headers["X-Cache"] == "MISS"
            fresh = await r.read()
        async with client.post(endpoint, json=body) as r:
            assert r.headers["X-Cache"] == "HIT"
            assert await r.read() == first, "no-cache never overwrites a shared entry"
            assert fresh != first
    assert inference_requests(ollama) == 2
    assert sample(gateway.metrics, "ollama_gateway_cache_hits_total") == 2
    assert sample(gateway.metrics, "ollama_gateway_cache_misses_total") == 2


async def test_streams_errors_and_no_store_are_not_cached(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, cache={"enabled": True})
    non_stream = {**GENERATE, "stream": False}
    async with running(gateway) as url:
        endpoint = f"{url}/api/generate"
        for _ in range(2):
            async with client.post(endpoint, json=GENERATE) as r:
                assert "X-Cache" not in r.headers
                await r.read()
        ollama.fail_next(1, status=500, error="boom")
        async with client.post(endpoint, json=non_stream) as r:
            assert (r.status, r.headers.get("X-Cache")) == (500, "MISS")
        no_store = {"Cache-Control": "no-store"}
        async with client.post(endpoint, json=non_stream, headers=no_store) as r:
            assert (r.status, r.headers.get("X-Cache")) == (200, None)
        async with client.post(endpoint, json=non_stream) as r:
            assert r.headers["X-Cache"] == "MISS"
    assert inference_requests(ollama) == 5


async def test_openai_requests_are_cached_unless_streamed(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    gateway = make_gateway(ollama.url, cache={"enabled": True})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    async with running(gateway) as url:
        for expected in ("MISS", "HIT"):
            async with client.post(f"{url}/v1/chat/completions", json=body) as r:
                assert r.headers["X-Cache"] == expected
        async with client.post(f"{url}/v1/chat/completions", json={**body, "stream": True}) as r:
            assert "X-Cache" not in r.headers
            await r.read()
