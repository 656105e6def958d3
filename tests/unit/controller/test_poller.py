"""The poller: asks sidecars over HTTP, keeps reports, reconciles only on change."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ollama_operator.controller.poller import StatusPoller

KEY = ("ml", "demo")


class FakeSidecar:
    """A /status endpoint on 127.0.0.1 that checks the token, as the real admin port does."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"models": [{"name": "a", "phase": "Pulling"}]}
        self.seen_tokens: list[str | None] = []

    async def status(self, request: web.Request) -> web.Response:
        self.seen_tokens.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(self.document)


@pytest.fixture
async def sidecar() -> AsyncIterator[tuple[FakeSidecar, int]]:
    fake = FakeSidecar()
    app = web.Application()
    app.router.add_get("/status", fake.status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, port
    await runner.cleanup()


async def test_reports_change_triggers_reconcile(sidecar: tuple[FakeSidecar, int]) -> None:
    fake, port = sidecar
    changes: list[tuple[str, str]] = []

    async def on_change(key: tuple[str, str]) -> None:
        changes.append(key)

    async with aiohttp.ClientSession() as session:
        poller = StatusPoller(
            on_change, lambda key: "s3cret", fast=0, slow=0, port=port, session=session
        )
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert poller.reports(KEY) == {"demo-0": fake.document}
        assert changes == [KEY]
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert changes == [KEY], "an unchanged report must not reconcile again"
        fake.document = {"models": [{"name": "a", "phase": "Ready"}]}
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert changes == [KEY, KEY]
        assert fake.seen_tokens[-1] == "Bearer s3cret"
        await poller.poll_due({})
        assert poller.reports(KEY) == {}


async def test_wrong_token_or_dead_pod_gives_no_report(sidecar: tuple[FakeSidecar, int]) -> None:
    _, port = sidecar

    async def on_change(key: tuple[str, str]) -> None:
        raise AssertionError("nothing changed")

    async with aiohttp.ClientSession() as session:
        poller = StatusPoller(
            on_change, lambda key: "wrong", fast=0, port=port, timeout=0.5, session=session
        )
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1", "demo-1": "127.0.0.254"}})
    assert poller.reports(KEY) == {}


async def test_cadence_fast_while_moving_slow_when_converged(
    sidecar: tuple[FakeSidecar, int],
) -> None:
    fake, port = sidecar

    async def on_change(key: tuple[str, str]) -> None:
        return None

    async with aiohttp.ClientSession() as session:
        poller = StatusPoller(
            on_change, lambda key: "s3cret", fast=1, slow=100, port=port, session=session
        )
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert poller._due[KEY] - time.monotonic() < 2
        fake.document = {"models": [{"name": "a", "phase": "Ready"}]}
        poller._due[KEY] = 0
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert poller._due[KEY] - time.monotonic() > 50


async def test_one_missed_answer_keeps_the_last_report(sidecar: tuple[FakeSidecar, int]) -> None:
    fake, port = sidecar
    changes: list[tuple[str, str]] = []

    async def on_change(key: tuple[str, str]) -> None:
        changes.append(key)

    async with aiohttp.ClientSession() as session:
        poller = StatusPoller(
            on_change, lambda key: "s3cret", fast=0, slow=0, port=port, session=session
        )
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert poller.reports(KEY)
        poller._token_for = lambda key: "wrong"  # the sidecar now refuses us
        for _ in range(StatusPoller.KEEP_AFTER_FAILURES - 1):
            poller._due[KEY] = 0
            await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
            assert poller.reports(KEY) == {"demo-0": fake.document}
        poller._due[KEY] = 0
        await poller.poll_due({KEY: {"demo-0": "127.0.0.1"}})
        assert poller.reports(KEY) == {}
    assert changes == [KEY, KEY]


def test_poke_brings_the_next_poll_forward() -> None:
    async def on_change(key: tuple[str, str]) -> None:
        return None

    poller = StatusPoller(on_change, lambda key: None)
    poller._due[KEY] = time.monotonic() + 30
    poller.poke(KEY, delay=1.0)
    assert poller._due[KEY] - time.monotonic() <= 1.0
