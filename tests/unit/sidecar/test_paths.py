"""Only paths the route table names reach Ollama, whatever the client writes in the request line.

Requests go over raw sockets: an HTTP client would normalise ``..`` or refuse control
characters before sending, and what matters is what the gateway does with them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ollama_operator.sidecar.errors import InvalidPath
from ollama_operator.sidecar.paths import model_segment

from .sidecar_harness import body_of, make_gateway, raw_exchange, running, serve_app, status_of


class Recorder:
    """An upstream that answers everything and remembers what reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.raw_path))
        return web.json_response({"object": "model"})


@pytest.fixture
async def gateway_url() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    async with (
        serve_app(recorder.app()) as upstream,
        running(make_gateway(upstream, present=None)) as url,
    ):
        yield url, recorder


def request_line(method: str, target: str) -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("method", "target", "problem"),
    [
        ("GET", "/v1/models/../../api/pull", "'/'"),
        ("GET", "/v1/models/%2e%2e/%2e%2e/api/pull", "'/'"),
        ("GET", "/v1/models/..%2F..%2Fapi%2Fpull", "'/'"),
        ("GET", "/v1/models/..", "'..'"),
        ("GET", "/v1/models/%2E%2E", "'..'"),
        ("GET", "/v1/models/.", "'.'"),
        ("HEAD", "/v1/models/../../api/blobs/sha256:0123abcd", "'/'"),
        ("GET", "/v1/models/llama%3Fx=1", "'?'"),
        ("GET", "/v1/models/llama%23x", "'#'"),
        ("GET", "/v1/models/llama%00x", "control character"),
        ("GET", "/v1/models/llama%0Ax", "control character"),
        ("GET", "/v1/models/llama%7Fx", "control character"),
        ("GET", "/v1/models/llama%FFx", "UTF-8"),
    ],
)
async def test_a_model_segment_that_could_leave_its_route_is_refused(
    gateway_url: tuple[str, Recorder], method: str, target: str, problem: str
) -> None:
    url, recorder = gateway_url
    answer = await raw_exchange(url, request_line(method, target))
    assert status_of(answer) == 400
    if method != "HEAD":
        error = json.loads(body_of(answer))["error"]
        assert error["code"] == "invalid_path"
        assert problem in error["message"]
    assert recorder.seen == [], "nothing reached Ollama"


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/v1/models/llama3.2:1b", "/v1/models/llama3.2:1b"),
        ("/v1/models/llama3.2%3A1b", "/v1/models/llama3.2:1b"),
        ("/v1/models/hf.co%2Fx", None),
        ("/v1/models/llama3.2:1b?a=%23b&c=%2F", "/v1/models/llama3.2:1b?a=%23b&c=%2F"),
        ("/api/%74ags", "/api/tags"),
        ("/api/tags?x=%3F%23", "/api/tags?x=%3F%23"),
    ],
)
async def test_what_reaches_ollama_is_built_from_the_route(
    gateway_url: tuple[str, Recorder], target: str, forwarded: str | None
) -> None:
    url, recorder = gateway_url
    answer = await raw_exchange(url, request_line("GET", target))
    if forwarded is None:
        assert status_of(answer) == 400
        assert recorder.seen == []
    else:
        assert status_of(answer) == 200
        assert recorder.seen == [("GET", forwarded)]


@pytest.mark.parametrize("segment", ["llama3.2:1b", "qwen2.5-coder:7b-q4_K_M", "a..b", "x.y"])
def test_ordinary_model_names_are_segments(segment: str) -> None:
    if ".." in segment:
        with pytest.raises(InvalidPath):
            model_segment(segment)
    else:
        assert model_segment(segment) == segment
