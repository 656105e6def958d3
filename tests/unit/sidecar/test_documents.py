"""One-document (non-streamed) answers: bounded buffering, and the idle timeout between chunks.

Regression tests for the security review: a 300 MiB non-streamed answer was
read whole into memory (671 MB RSS), and the ``idle`` timeout bounded the whole
body, so an answer flowing steadily for longer than it got a 504.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from ollama_operator.sidecar.proxy import BUFFER_BYTES

from .sidecar_harness import MODEL, make_gateway, running, serve_app
from .test_proxy import Script

EMBED = {"model": MODEL, "input": "x"}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def test_an_answer_flowing_longer_than_the_idle_timeout_is_not_cut(
    client: aiohttp.ClientSession,
) -> None:
    pieces = [b'{"model":"m","embeddings":[[0'] + [b",0"] * 20 + [b"]]}"]

    async def steady(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.05)  # the upstream's pace: 1.1 s in all, 50 ms apart
        await response.write_eof()
        return response

    async with serve_app(Script(steady).app()) as upstream:
        gateway = make_gateway(upstream, present=None, timeouts={"idle": "500ms"})
        async with running(gateway) as url, client.post(f"{url}/api/embed", json=EMBED) as r:
            assert r.status == 200
            assert await r.read() == b"".join(pieces)


async def test_a_large_answer_is_relayed_without_being_buffered_whole(
    client: aiohttp.ClientSession,
) -> None:
    half = 2 * BUFFER_BYTES
    release = asyncio.Event()

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(2 * half)})
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"x" * half)
        await release.wait()  # the rest only once the client has the first half
        await response.write(b"y" * half)
        await response.write_eof()
        return response

    async with serve_app(Script(huge).app()) as upstream:
        gateway = make_gateway(upstream, present=None, cache={"enabled": True})
        async with running(gateway) as url, client.post(f"{url}/api/embed", json=EMBED) as r:
            assert r.status == 200
            assert r.headers["Content-Length"] == str(2 * half)
            first = await r.content.readexactly(half)
            release.set()
            rest = await r.read()
    assert first == b"x" * half
    assert rest == b"y" * half


async def test_a_small_answer_is_still_one_response_and_cached(
    client: aiohttp.ClientSession,
) -> None:
    async def small(request: web.Request) -> web.StreamResponse:
        return web.json_response({"model": MODEL, "embeddings": [[0.5]]})

    script = Script(small)
    async with serve_app(script.app()) as upstream:
        gateway = make_gateway(upstream, present=None, cache={"enabled": True})
        async with running(gateway) as url:
            for expected in ("MISS", "HIT"):
                async with client.post(f"{url}/api/embed", json=EMBED) as r:
                    assert (r.status, r.headers["X-Cache"]) == (200, expected)
    assert len(script.calls) == 1
