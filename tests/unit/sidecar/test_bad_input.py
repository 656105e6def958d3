"""Bad input is the client's error (4xx), never a 500 with a traceback in the log."""

from __future__ import annotations

import gzip
import json
import logging
import zlib

import pytest

from ollama_operator.sidecar.admin import Admin, InternalToken
from ollama_operator.sidecar.auth import KeyRing
from ollama_operator.sidecar.metrics import GatewayMetrics
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import (
    FakeAgent,
    body_of,
    make_gateway,
    raw_exchange,
    running,
    sample,
    serve,
    status_of,
)

KEY = "sk-test-0123456789"
REQUESTS = "ollama_gateway_requests_total"


def get(path: str, header: bytes) -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\n"
        + header
        + (b"\r\nConnection: close\r\n\r\n")
    )


@pytest.mark.parametrize(
    "header",
    [
        b"Authorization: Bearer \xff\xfe-not-utf-8",
        b"Authorization: Bearer caf\xe9",
        b"X-API-Key: \xc3\x28",
        b"X-API-Key: \xed\xa0\x80",
    ],
)
async def test_a_key_that_is_not_utf8_is_refused_with_401(
    ollama: OllamaEmulator, caplog: pytest.LogCaptureFixture, header: bytes
) -> None:
    gateway = make_gateway(ollama.url, keys=KeyRing.of([KEY]))
    with caplog.at_level(logging.DEBUG):
        async with running(gateway) as url:
            answer = await raw_exchange(url, get("/api/tags", header))
    assert status_of(answer) == 401
    assert json.loads(body_of(answer))["error"] == "invalid API key"
    assert sample(gateway.metrics, REQUESTS, route="tags", model="", code="401") == 1
    assert sample(gateway.metrics, REQUESTS, route="tags", model="", code="500") == 0
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_internal_token_that_is_not_utf8_is_refused_with_401(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = Admin(FakeAgent(), GatewayMetrics(), InternalToken("tok", configured=True))
    with caplog.at_level(logging.DEBUG):
        async with serve(admin.handle) as url:
            answer = await raw_exchange(url, get("/status", b"Authorization: Bearer \xff"))
    assert status_of(answer) == 401
    assert "Traceback" not in caplog.text


def post_generate(encoding: str, body: bytes) -> bytes:
    head = (
        "POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", b'{"model": "llama3.2:1b", "prompt": "not gzip"}', "Content-Encoding gzip"),
        ("deflate", b"\x00\x01\x02 definitely not deflate", "Content-Encoding deflate"),
        # zlib reports no error for a stream cut short: what decoded is not JSON
        ("gzip", gzip.compress(b'{"model": "llama3.2:1b"}')[:12], "invalid JSON"),
    ],
)
async def test_a_body_that_does_not_decode_is_a_400(
    ollama: OllamaEmulator,
    caplog: pytest.LogCaptureFixture,
    encoding: str,
    body: bytes,
    message: str,
) -> None:
    gateway = make_gateway(ollama.url)
    with caplog.at_level(logging.DEBUG):
        async with running(gateway) as url:
            answer = await raw_exchange(url, post_generate(encoding, body))
    assert status_of(answer) == 400
    assert message in json.loads(body_of(answer))["error"]
    assert "Traceback" not in caplog.text
    assert sample(gateway.metrics, REQUESTS, route="generate", model="", code="500") == 0


@pytest.mark.parametrize(
    ("encoding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_a_compressed_body_that_decodes_is_accepted(
    ollama: OllamaEmulator, encoding: str, compress: object
) -> None:
    assert callable(compress)
    body = compress(b'{"model": "llama3.2:1b", "prompt": "x", "stream": false}')
    async with running(make_gateway(ollama.url)) as url:
        answer = await raw_exchange(url, post_generate(encoding, body))
    assert status_of(answer) == 200
