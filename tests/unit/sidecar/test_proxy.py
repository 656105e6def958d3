"""Forwarding edge cases, against scripted upstreams that misbehave exactly when told."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ollama_operator.sidecar.proxy import Upstream

from .sidecar_harness import MODEL, make_gateway, read_json, running, sample, serve_app

GENERATE = {"model": MODEL, "prompt": "x"}
FAST_RETRIES = {"attempts": 2, "backoff": "1ms"}


class Script:
    """An upstream whose /api/generate behaviour is one handler per call, in order."""

    def __init__(self, *handlers: Any) -> None:
        self.handlers = list(handlers)
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.calls.append((request.path_qs, body, dict(request.headers)))
        handler = self.handlers.pop(0) if len(self.handlers) > 1 else self.handlers[0]
        result: web.StreamResponse = await handler(request)
        return result


async def answer_ok(request: web.Request) -> web.StreamResponse:
    return web.json_response({"model": MODEL, "response": "ok", "done": True})


async def drop_before_headers(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


def first_chunk_then_drop(content_type: str, chunk: bytes) -> Any:
    """A handler that starts a stream, sends one chunk and drops the connection."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = content_type
        await response.prepare(request)
        await response.write(chunk)
        assert request.transport is not None
        request.transport.close()
        return response

    return handler


one_chunk_then_drop = first_chunk_then_drop(
    "application/x-ndjson", b'{"model":"m","response":"The","done":false}\n'
)


async def short_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    response.content_type = "application/json"
    await response.prepare(request)
    await response.write(b'{"model":')
    assert request.transport is not None
    request.transport.close()
    return response


async def test_no_retry_once_the_first_byte_was_sent(client: aiohttp.ClientSession) -> None:
    script = Script(one_chunk_then_drop, answer_ok)
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None, retries=FAST_RETRIES)
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
            assert r.status == 200
            lines = [json.loads(line) async for line in r.content if line.strip()]
    assert len(script.calls) == 1
    assert lines[0]["response"] == "The"
    assert lines[-1]["error"].startswith("Ollama closed the connection mid-answer")
    assert sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="disconnect") == 1
    assert sample(gateway.metrics, "ollama_gateway_upstream_retries_total") == 0


async def test_a_connection_dropped_before_the_answer_is_retried(
    client: aiohttp.ClientSession,
) -> None:
    script = Script(drop_before_headers, answer_ok)
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None, retries=FAST_RETRIES)
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
            assert r.status == 200
            assert (await read_json(r))["response"] == "ok"
    assert len(script.calls) == 2
    assert sample(gateway.metrics, "ollama_gateway_upstream_retries_total") == 1


async def test_a_body_cut_short_is_a_502(client: aiohttp.ClientSession) -> None:
    script = Script(short_body)
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None, retries=FAST_RETRIES)
        body = {**GENERATE, "stream": False}
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
            assert r.status == 502
            assert (await read_json(r))["error"].startswith("Ollama closed the connection")
    assert len(script.calls) == 1


async def test_connect_timeouts_are_retried_then_answered_504(
    client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = make_gateway(
        "http://127.0.0.1:9", present=None, retries=FAST_RETRIES, timeouts={"connect": "2s"}
    )
    attempts = []

    async def never_connects(*args: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        attempts.append(args)
        raise aiohttp.ConnectionTimeoutError("timed out")

    async with running(gateway) as url:
        session = gateway.upstream._session
        assert session is not None
        monkeypatch.setattr(session, "request", never_connects)
        async with client.post(f"{url}/api/generate", json=GENERATE) as r:
            assert r.status == 504
            assert (await read_json(r))["error"] == (
                "Ollama did not accept a connection within 2s (gateway.timeouts.connect)"
            )
    assert len(attempts) == 3
    assert (
        sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="connect_timeout") == 3
    )


async def test_the_original_bytes_and_query_are_forwarded(client: aiohttp.ClientSession) -> None:
    script = Script(answer_ok)
    raw = b'{ "model" : "llama3.2:1b",\n "prompt": "x", "stream": false, "extra": {"a": [1]} }'
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None)
        headers = {
            "Content-Type": "application/json",
            "Authorization": "Bearer nope",
            "Cookie": "c=1",
        }
        async with (
            running(gateway) as url,
            client.post(f"{url}/api/generate?x=1", data=raw, headers=headers) as r,
        ):
            assert r.status == 200
    path, body, forwarded = script.calls[0]
    assert (path, body) == ("/api/generate?x=1", raw)
    assert forwarded["Content-Type"] == "application/json"
    assert "Authorization" not in forwarded
    assert "Cookie" not in forwarded


async def test_a_large_one_document_answer_is_passed_intact(client: aiohttp.ClientSession) -> None:
    embedding = {"model": MODEL, "embeddings": [[0.001 * i for i in range(20000)]]}

    async def big(request: web.Request) -> web.StreamResponse:
        return web.json_response(embedding)

    async with serve_app(Script(big).app()) as upstream:
        gateway = make_gateway(upstream, present=None)
        body = {"model": MODEL, "input": "x"}
        async with running(gateway) as url, client.post(f"{url}/api/embed", json=body) as r:
            assert r.status == 200
            assert await read_json(r) == embedding


async def test_upstream_504_counts_as_a_failure_but_is_not_retried(
    client: aiohttp.ClientSession,
) -> None:
    async def gateway_timeout(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "slow"}, status=504)

    script = Script(gateway_timeout)
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None, retries=FAST_RETRIES)
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
            assert r.status == 504
            assert await read_json(r) == {"error": "slow"}
    assert len(script.calls) == 1
    assert gateway.breaker.failures == 1


async def test_a_closed_upstream_pool_answers_502() -> None:
    gateway = make_gateway("http://127.0.0.1:9", present=None)
    assert isinstance(gateway.upstream, Upstream)
    async with running(gateway) as url:
        await gateway.upstream.close()
        async with aiohttp.ClientSession() as client, client.get(f"{url}/api/tags") as r:
            assert r.status == 502
            assert (await read_json(r))["error"] == "the gateway is shutting down"


def test_urls_of_known_paths_are_parsed_once() -> None:
    gateway = make_gateway("http://127.0.0.1:11434/", present=None)
    first = gateway.upstream.url("/api/tags")
    assert first is gateway.upstream.url("/api/tags")
    assert str(first) == "http://127.0.0.1:11434/api/tags"
    assert str(gateway.upstream.url("/api/tags", "a=1")) == "http://127.0.0.1:11434/api/tags?a=1"


async def test_a_broken_sse_stream_ends_with_an_openai_error_event(
    client: aiohttp.ClientSession,
) -> None:
    one_event_then_drop = first_chunk_then_drop(
        "text/event-stream", b'data: {"choices":[{"delta":{"content":"The"}}]}\n\n'
    )
    async with serve_app(Script(one_event_then_drop).app()) as upstream:
        gateway = make_gateway(upstream, present=None)
        body = {"model": MODEL, "stream": True, "messages": [{"content": "x"}]}
        async with (
            running(gateway) as url,
            client.post(f"{url}/v1/chat/completions", json=body) as r,
        ):
            assert r.status == 200
            events = [line for line in (await r.read()).split(b"\n\n") if line.strip()]
    assert events[0].startswith(b'data: {"choices"')
    error = json.loads(events[-1].removeprefix(b"data: "))["error"]
    assert error["message"].startswith("Ollama closed the connection mid-answer")
    assert error["code"] == "upstream_unavailable"
