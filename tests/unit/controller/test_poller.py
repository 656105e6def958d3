"""The poller: asks sidecars over HTTP, keeps reports, reconciles only on change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from ollama_operator.api.report import PodReport
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


F = TypeVar("F", bound=FakeSidecar)


@contextlib.asynccontextmanager
async def serving(fake: F) -> AsyncIterator[tuple[F, int]]:
    """``fake`` answering GET /status on 127.0.0.1 (an ephemeral port)."""
    app = web.Application()
    app.router.add_get("/status", fake.status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield fake, runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def sidecar() -> AsyncIterator[tuple[FakeSidecar, int]]:
    async with serving(FakeSidecar()) as served:
        yield served


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
        assert poller.reports(KEY) == {"demo-0": PodReport.model_validate(fake.document)}
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
            assert poller.reports(KEY) == {"demo-0": PodReport.model_validate(fake.document)}
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


class TwoServersSidecar(FakeSidecar):
    """Answers per token: server ``bad``'s pods send a malformed report, ``good``'s a valid one."""

    def __init__(self) -> None:
        super().__init__()
        self.bad_document: Any = {"models": ["x"]}

    async def status(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == "Bearer bad":
            return web.json_response(self.bad_document)
        return web.json_response(self.document)


@pytest.fixture
async def two_servers() -> AsyncIterator[tuple[TwoServersSidecar, int]]:
    async with serving(TwoServersSidecar()) as served:
        yield served


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"models": ["x"]}, "models[0]"),
        # A phase the status schema does not know would get every status write refused.
        ({"models": [{"name": "a", "phase": "Downloading"}]}, "models[0].phase"),
        ({"models": [{"name": "a", "progress": "5"}]}, "models[0].progress"),
    ],
)
async def test_a_malformed_report_is_a_failed_poll_logged_once(
    two_servers: tuple[TwoServersSidecar, int],
    caplog: pytest.LogCaptureFixture,
    document: Any,
    field: str,
) -> None:
    """A report that does not validate, from one pod, must not end polling for everyone."""
    fake, port = two_servers
    fake.bad_document = document
    bad, good = ("ml", "bad"), ("ml", "good")
    changes: list[tuple[str, str]] = []

    async def on_change(key: tuple[str, str]) -> None:
        changes.append(key)

    targets = {bad: {"bad-0": "127.0.0.1"}, good: {"good-0": "127.0.0.1"}}
    async with aiohttp.ClientSession() as session:
        poller = StatusPoller(
            on_change, lambda key: key[1], fast=0, slow=0, port=port, session=session
        )
        with caplog.at_level(logging.WARNING, logger="ollama_operator.controller.poller"):
            await poller.poll_due(targets)
            await poller.poll_due(targets)
    assert poller.reports(bad) == {}
    assert poller._failures[(bad, "bad-0")] == 2
    assert poller.reports(good) == {"good-0": PodReport.model_validate(fake.document)}
    assert changes == [good]
    warnings = [r for r in caplog.records if "bad-0" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert f"{field}:" in warnings[0].getMessage()


async def test_the_poll_loop_survives_a_failing_pass(
    sidecar: tuple[FakeSidecar, int],
) -> None:
    """A pass that raises is logged; the next pass still polls."""
    fake, port = sidecar
    polled = asyncio.Event()
    calls = 0

    async def on_change(key: tuple[str, str]) -> None:
        polled.set()

    def targets() -> dict[tuple[str, str], dict[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bad pass")
        return {KEY: {"demo-0": "127.0.0.1"}}

    poller = StatusPoller(on_change, lambda key: "s3cret", fast=0, slow=0, port=port)
    task = asyncio.create_task(poller.run(targets, tick=0.01))
    try:
        await asyncio.wait_for(polled.wait(), timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert poller.reports(KEY) == {"demo-0": PodReport.model_validate(fake.document)}
