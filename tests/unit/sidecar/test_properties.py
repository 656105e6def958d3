"""Properties of request handling: no input makes the gateway crash or answer 5xx.

A real gateway runs (in a background event loop) in front of an upstream that
is healthy and answers anything, so every 5xx would be the gateway's own. The
pure pieces get the same treatment with many more examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import string
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ollama_operator.sidecar import validation as v
from ollama_operator.sidecar.auth import KeyRing
from ollama_operator.sidecar.cache import cache_key
from ollama_operator.sidecar.errors import BadRequest, GatewayError
from ollama_operator.sidecar.limits import RateLimiter
from ollama_operator.sidecar.routes import MANAGEMENT_PATHS, ROUTES
from ollama_operator.sidecar.usage import parse_usage

from .sidecar_harness import MODEL, FakeClock, make_gateway, running, serve_app

KEY = "prop-key"

# ---- a gateway in a background loop ------------------------------------------------------------


async def healthy_upstream(request: web.Request) -> web.StreamResponse:
    """Answers anything with 200: a stream where Ollama would stream, else one JSON object."""
    body = await request.read()
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = {}
    streams = isinstance(doc, dict) and doc.get("stream") is not False
    if request.path in ("/api/generate", "/api/chat") and streams:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        await response.write(b'{"response":"a","done":false}\n')
        await response.write(b'{"done":true,"prompt_eval_count":1,"eval_count":1}\n')
        return response
    return web.json_response({"ok": True})


class Background:
    """An event loop in a thread, running the upstream and the gateway."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _start(stack: contextlib.AsyncExitStack) -> str:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", healthy_upstream)
    upstream = await stack.enter_async_context(serve_app(app))
    gateway = make_gateway(
        upstream,
        keys=KeyRing.of([KEY]),
        present=[MODEL, "qwen:0.5b"],
        cache={"enabled": True},
        rateLimit={"requestsPerMinute": 1_000_000},
        maxBodyBytes=4096,
        # Random headers are wrong keys; the brute-force limit is tested in test_auth_guard.
        sidecar={"clients": {"authFailures": {"burst": 10_000, "failuresPerMinute": 10_000}}},
    )
    return await stack.enter_async_context(running(gateway))


@pytest.fixture(scope="module")
def gateway_url() -> Iterator[str]:
    bg = Background()
    stack = contextlib.AsyncExitStack()
    try:
        yield bg.run(_start(stack))
    finally:
        try:
            bg.run(stack.aclose())
        finally:
            bg.close()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# ---- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
fields = ["stream", "prompt", "messages", "options", "input", "keep_alive", "context", "format"]
request_like = st.fixed_dictionaries(
    {"model": st.sampled_from([MODEL, "qwen:0.5b", "QWEN:0.5B", "nope", "", 3, None])},
    optional={name: json_values for name in fields},
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),
    request_like.map(lambda value: json.dumps(value).encode()),
    st.just(b"x" * 5000),
)
known_paths = [*ROUTES, *MANAGEMENT_PATHS, "/", "/v1/models/llama3.2:1b"]
path_text = st.text(
    alphabet=string.ascii_letters + string.digits + "-._~/:@!$&'()*+,;= %\u00e9", max_size=30
)
paths = st.one_of(
    st.sampled_from(known_paths),
    path_text.map(lambda text: "/" + text),
    st.sampled_from(known_paths).flatmap(lambda p: path_text.map(lambda text: p + text)),
)
header_text = st.text(alphabet=string.printable.strip() + " ", max_size=40).map(str.strip)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.one_of(
            st.just(f"Bearer {KEY}"), header_text.map(lambda t: f"Bearer {t}".strip()), header_text
        ),
        "X-API-Key": st.one_of(st.just(KEY), header_text),
        "Cache-Control": st.one_of(st.sampled_from(["no-cache", "no-store"]), header_text),
        "Content-Type": header_text,
    },
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=methods, path=paths, body=bodies, sent_headers=headers)
def test_no_request_makes_the_gateway_fail(
    gateway_url: str,
    http: httpx.Client,
    method: str,
    path: str,
    body: bytes,
    sent_headers: dict[str, str],
) -> None:
    url = gateway_url + urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~")
    response = http.request(method, url, content=body, headers=sent_headers)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and method != "HEAD":
        assert "error" in response.json()
    # the gateway is still there and still well
    assert http.get(gateway_url + "/").status_code == 200


post_routes = sorted(path for path, route in ROUTES.items() if "POST" in route.methods)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(post_routes), body=bodies, cache_control=st.sampled_from(["", "no-cache"])
)
def test_any_body_on_any_route_is_answered_below_500(
    gateway_url: str, http: httpx.Client, path: str, body: bytes, cache_control: str
) -> None:
    sent = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    if cache_control:
        sent["Cache-Control"] = cache_control
    response = http.post(gateway_url + path, content=body, headers=sent)
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 400, 404, 413)
    if response.status_code != 200:
        error = response.json()["error"]
        assert (error["message"] if path.startswith("/v1/") else error).strip()


# ---- pure pieces, many examples ----------------------------------------------------------------

schemas = st.sampled_from([r.schema for r in ROUTES.values() if r.schema is not None])


@settings(max_examples=400)
@given(schema=schemas, body=bodies)
def test_validation_answers_400_or_a_model_never_anything_else(
    schema: type[v.RequestBody], body: bytes
) -> None:
    error: GatewayError | None = None
    try:
        parsed = v.parse_body(schema, body)
        parsed.streams()
        cache_key("POST", "/api/chat", body)
        v.require_model(parsed)
    except BadRequest as exc:
        error = exc
    if error is not None:
        assert error.status == 400
        assert json.loads(error.body())["error"]
        assert json.loads(error.body(openai=True))["error"]["message"]


@settings(max_examples=500)
@given(tail=st.binary(max_size=4000))
def test_usage_parsing_never_raises(tail: bytes) -> None:
    usage = parse_usage(tail)
    if usage is not None:
        assert usage.prompt_tokens is None or usage.prompt_tokens >= 0


@settings(max_examples=300)
@given(
    rpm=st.integers(min_value=1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    steps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=60),
)
def test_a_bucket_never_allows_more_than_burst_plus_refill(
    rpm: int, burst: int, steps: list[float]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rpm, burst, clock=clock)
    allowed = 0
    for step in steps:
        clock.advance(step)
        decision = limiter.take(b"k")
        assert 0 <= decision.remaining <= burst
        assert decision.allowed or decision.retry_after > 0
        allowed += decision.allowed
    assert allowed <= burst + rpm / 60 * sum(steps) + 1e-9
