"""Fixtures shared by the gateway's tests: an Ollama emulator and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaEmulator]:
    """An emulated Ollama on 127.0.0.1 with the harness's model installed."""
    async with OllamaEmulator(installed=[MODEL]) as emulator:
        yield emulator


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with a 10 s ceiling per request, so a hang fails fast."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session
