"""Error texts name what failed in fixed words: no addresses, ports or exception reprs.

Regression tests for the security review: a refused connection answered
``Ollama is not reachable: Connect call failed ('127.0.0.1', 18001)``, a broken
stream ended with aiohttp's exception repr, and a client that stopped reading
was reported (and counted) as Ollama's idle timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import aiohttp
import pytest
from aiohttp import web

from ollama_operator.sidecar.error_texts import reason

from .sidecar_harness import (
    MODEL,
    eventually,
    free_port,
    make_gateway,
    read_json,
    running,
    sample,
    serve_app,
)
from .test_proxy import Script, one_chunk_then_drop, short_body

GENERATE = {"model": MODEL, "prompt": "x"}


async def test_a_refused_connection_names_no_address(client: aiohttp.ClientSession) -> None:
    port = free_port()
    gateway = make_gateway(f"http://127.0.0.1:{port}", present=None, retries={"attempts": 0})
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
        assert r.status == 502
        text = (await r.read()).decode()
    assert json.loads(text) == {"error": "Ollama is not reachable: connection refused"}
    assert str(port) not in text


async def test_a_stream_cut_short_ends_with_a_fixed_error_line(
    client: aiohttp.ClientSession,
) -> None:
    async with serve_app(Script(one_chunk_then_drop).app()) as upstream:
        gateway = make_gateway(upstream, present=None)
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=GENERATE) as r:
            lines = [json.loads(line) for line in (await r.read()).splitlines() if line]
    assert lines[-1] == {"error": "Ollama closed the connection mid-answer"}


async def test_a_body_cut_short_names_no_exception(client: aiohttp.ClientSession) -> None:
    async with serve_app(Script(short_body).app()) as upstream:
        gateway = make_gateway(upstream, present=None, retries={"attempts": 0})
        body = {**GENERATE, "stream": False}
        async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
            assert r.status == 502
            assert await read_json(r) == {"error": "Ollama closed the connection mid-answer"}


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 18001)"), "refused"),
        (ConnectionResetError(104, "Connection reset by peer ('10.0.0.1', 1)"), "reset"),
        (OSError(113, "No route to host 10.1.2.3"), "connection failed"),
    ],
)
def test_connector_errors_become_fixed_phrases(exc: OSError, text: str) -> None:
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("127.0.0.1", 18001, False, True, None, None, None)
    phrase = reason(aiohttp.ClientConnectorError(key, exc))
    assert text in phrase
    assert "127.0.0.1" not in phrase
    assert "18001" not in phrase
    assert reason(aiohttp.ClientOSError(104, "reset ('10.0.0.1', 5)")) == "connection reset"
    assert reason(aiohttp.ServerDisconnectedError("x")) == "connection closed"


async def test_a_client_that_stops_reading_is_not_an_ollama_idle_timeout() -> None:
    chunk = b'{"model":"m","response":"' + b"x" * 65536 + b'","done":false}\n'

    async def firehose(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/x-ndjson"
        await response.prepare(request)
        for _ in range(4096):
            await response.write(chunk)
        await response.write_eof()
        return response

    async with serve_app(Script(firehose).app()) as upstream:
        gateway = make_gateway(upstream, present=None, timeouts={"idle": "300ms"})
        async with running(gateway) as url:
            host, _, port = url.removeprefix("http://").rpartition(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            reader, writer = await asyncio.open_connection(sock=sock)
            body = json.dumps(GENERATE).encode()
            writer.write(
                b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            # ... and read nothing more: the gateway's writes back up.
            try:
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
                    ),
                    within=20,
                )
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    assert sample(gateway.metrics, "ollama_gateway_upstream_errors_total", kind="idle_timeout") == 0
    assert sample(gateway.metrics, "ollama_gateway_slow_clients_total") == 1
