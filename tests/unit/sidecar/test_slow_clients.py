"""Slow and idle clients are cut off, connections are capped, and probes still get in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ollama_operator.sidecar import fdlimit
from ollama_operator.sidecar.app import Sidecar
from ollama_operator.sidecar.settings import ConnectionSettings, GatewaySettings
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, body_of, config, eventually, sample, status_of

CLIENTS = {
    "maxConnections": 20,
    "timeouts": {"header": "250ms", "body": "250ms", "keepAlive": "250ms"},
}
PARTIAL = b"GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Partial: "


@pytest.fixture
async def sidecar() -> AsyncIterator[Sidecar]:
    async with OllamaEmulator(installed=[MODEL]) as ollama:
        sidecar = Sidecar(
            config(ollama.url, clients=CLIENTS),
            agent=FakeAgent([MODEL]),
            ports=(0, 0),
            host="127.0.0.1",
        )
        await sidecar.start()
        try:
            yield sidecar
        finally:
            await sidecar.stop()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(port: int, first: bytes = b"") -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def read_until_closed(reader: asyncio.StreamReader, within: float = 5.0) -> bytes:
    async with asyncio.timeout(within):
        return await reader.read()


def close(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()


async def test_a_flood_of_partial_headers_is_capped_cut_off_and_probes_still_answer(
    sidecar: Sidecar,
) -> None:
    server = sidecar.public_server
    opened = time.monotonic()
    taken = [await connect(sidecar.public_port, PARTIAL) for _ in range(20)]
    await eventually(lambda: len(server.open) == 20)
    over = [await connect(sidecar.public_port, PARTIAL) for _ in range(10)]
    try:
        for reader, _ in over:
            answer = await read_until_closed(reader, within=2.0)
            assert status_of(answer) == 503
            assert "clients.maxConnections" in json.loads(body_of(answer))["error"]

        async with aiohttp.ClientSession() as client:
            probe = time.monotonic()
            async with client.get(f"{sidecar.admin_url}/readyz") as r:
                assert r.status == 200
            assert time.monotonic() - probe < 1.0, "the admin port answered at once"

        for reader, _ in taken:
            assert await read_until_closed(reader) == b"", "closed without an answer"
        assert time.monotonic() - opened >= 0.25, "closed by the header timeout, not at once"
        await eventually(lambda: not server.open)
    finally:
        close(taken + over)
    assert sample(sidecar.metrics, "ollama_gateway_refused_connections_total") == 10
    assert sample(sidecar.metrics, "ollama_gateway_open_connections") == 0


async def test_headers_trickled_byte_by_byte_are_cut_off_at_the_header_timeout(
    sidecar: Sidecar,
) -> None:
    reader, writer = await connect(sidecar.public_port)
    trickle = PARTIAL + b"x" * 100  # at the client's pace below, over 7 s: far past 250 ms
    sent = 0
    with contextlib.suppress(ConnectionError):
        for byte in trickle:
            if reader.at_eof():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.05)  # the client's pace, not a wait for the server
    assert sent < len(trickle), "cut off although bytes kept coming"
    assert await read_until_closed(reader) == b"", "closed without an answer"
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout(
    sidecar: Sidecar,
) -> None:
    reader, writer = await connect(sidecar.public_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answered = time.monotonic()
    answer = await read_until_closed(reader)
    writer.close()
    assert status_of(answer) == 200
    assert answer.endswith(b"Ollama is running")
    assert time.monotonic() - answered >= 0.25, "kept alive until the timeout"


async def test_a_body_that_does_not_arrive_in_time_is_a_408(sidecar: Sidecar) -> None:
    head = (
        b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\nConnection: close\r\n\r\n{"model": '
    )
    reader, writer = await connect(sidecar.public_port, head)
    answer = await read_until_closed(reader)
    writer.close()
    assert status_of(answer) == 408
    error = json.loads(body_of(answer))["error"]
    assert "clients.timeouts.body" in error


def test_the_defaults_are_safe() -> None:
    cfg = config("http://127.0.0.1:11434")
    assert ConnectionSettings.from_config(cfg, capped=True) == ConnectionSettings(10.0, 75.0, 1024)
    assert ConnectionSettings.from_config(cfg, capped=False).max_connections is None
    assert GatewaySettings.from_config(cfg).body_timeout == 60.0
    assert "clients" not in cfg.to_yaml(), "not rendered unless set"


class FakeLimits:
    def __init__(self, soft: int, hard: int, *, fails: bool = False) -> None:
        self.limits = (soft, hard)
        self.fails = fails

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if self.fails:
            raise ValueError("not allowed")
        self.limits = limits


@pytest.mark.parametrize(
    ("soft", "hard", "fails", "after"),
    [
        (1024, 524288, False, 524288),
        (1024, resource.RLIM_INFINITY, False, fdlimit.UNLIMITED),
        (4096, 4096, False, 4096),
        (1024, 524288, True, 1024),
    ],
)
def test_the_soft_open_files_limit_is_raised_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, fails: bool, after: int
) -> None:
    fake = FakeLimits(soft, hard, fails=fails)
    monkeypatch.setattr(fdlimit, "resource", _module(fake))
    assert fdlimit.raise_open_files_limit() == after
    assert fdlimit.open_files_limit() == after


def test_the_cap_stays_below_the_open_files_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fdlimit, "resource", _module(FakeLimits(1024, 1024)))
    cfg = config("http://127.0.0.1:11434", clients={"maxConnections": 5000})
    assert fdlimit.public_connections(cfg).max_connections == 1024 - fdlimit.RESERVED
    cfg = config("http://127.0.0.1:11434", clients={"maxConnections": 100})
    assert fdlimit.public_connections(cfg).max_connections == 100


def _module(fake: FakeLimits) -> Any:
    """A stand-in for the ``resource`` module backed by ``fake``."""

    class Module:
        RLIMIT_NOFILE = resource.RLIMIT_NOFILE
        RLIM_INFINITY = resource.RLIM_INFINITY
        getrlimit = staticmethod(fake.getrlimit)
        setrlimit = staticmethod(fake.setrlimit)

    return Module
