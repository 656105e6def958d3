"""Requests that do not parse: answered and logged without repeating the offending line.

A header line that aiohttp's parser refuses may be the one carrying the key, so neither
the 400 nor the log may quote it. Raw sockets send what no HTTP client would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ollama_operator.sidecar.app import Sidecar
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, body_of, config, raw_exchange, status_of

FAKE_KEY = "sk-FAKE-7f3c9a1e5b"

MALFORMED = {
    "nul in a value": f"X-API-Key: {FAKE_KEY}\x00tail\r\n",
    "control character in a value": f"Authorization: Bearer {FAKE_KEY}\x01\r\n",
    "obs-fold": f"X-API-Key: start\r\n {FAKE_KEY}\r\n",
    "space before the colon": f"X-API-Key : {FAKE_KEY}\r\n",
    "control character in a name": f"X-API\x02-Key: {FAKE_KEY}\r\n",
    "no colon": f"X-API-Key {FAKE_KEY}\r\n",
    "line over 8 KiB": f"X-API-Key: {FAKE_KEY}{'a' * 9000}\r\n",
    "name over 8 KiB": f"X-{'a' * 9000}: {FAKE_KEY}\r\n",
}


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    keys = tmp_path / "keys"
    keys.write_text(f"{FAKE_KEY}\n")
    async with OllamaEmulator(installed=[MODEL]) as ollama:
        sidecar = Sidecar(
            config(ollama.url, apiKeysFile=str(keys)),
            agent=FakeAgent([MODEL]),
            ports=(0, 0),
            host="127.0.0.1",
        )
        await sidecar.start()
        try:
            yield sidecar
        finally:
            await sidecar.stop()


def request_with(header_lines: str, *, newline: str = "\r\n") -> bytes:
    head = f"GET /api/tags HTTP/1.1{newline}Host: x{newline}"
    return (head + header_lines + f"Connection: close{newline}{newline}").encode("latin-1")


@pytest.mark.parametrize("problem", sorted(MALFORMED))
async def test_a_malformed_header_line_is_never_echoed_nor_logged(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture, problem: str
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = await raw_exchange(sidecar.public_url, request_with(MALFORMED[problem]))
    assert status_of(answer) == 400
    assert FAKE_KEY.encode() not in answer
    assert json.loads(body_of(answer))["error"].startswith("malformed HTTP request: ")
    assert FAKE_KEY not in caplog.text
    assert "Traceback" not in caplog.text


async def test_the_admin_port_never_echoes_a_malformed_line_either(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for problem in sorted(MALFORMED):
            line = MALFORMED[problem].replace("X-API-Key", "Authorization")
            answer = await raw_exchange(sidecar.admin_url, request_with(line))
            assert status_of(answer) == 400
            assert FAKE_KEY.encode() not in answer
    assert FAKE_KEY not in caplog.text


async def test_lf_only_lines_never_leak_the_key(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        answer = await raw_exchange(
            sidecar.public_url, request_with(f"X-API-Key: {FAKE_KEY}\n", newline="\n")
        )
    assert status_of(answer) in (200, 400)
    assert FAKE_KEY.encode() not in answer
    assert FAKE_KEY not in caplog.text


async def test_the_log_names_the_problem_and_the_client(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await raw_exchange(sidecar.public_url, request_with(MALFORMED["line over 8 KiB"]))
    lines = [r.getMessage() for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(lines) == 1
    assert "127.0.0.1" in lines[0]
    assert "8190" in lines[0]


async def test_floods_of_malformed_requests_log_a_bounded_number_of_lines(
    sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for _ in range(40):
            answer = await raw_exchange(sidecar.public_url, request_with(MALFORMED["obs-fold"]))
            assert status_of(answer) == 400
    assert len(caplog.records) <= 12, [r.getMessage() for r in caplog.records]
