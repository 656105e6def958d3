"""Shared pieces of the gateway tests: a fake model agent, scripted upstreams, servers.

The gateway is tested over real sockets on 127.0.0.1: the emulator (or a
scripted aiohttp app) plays Ollama, the gateway runs on aiohttp's low-level
server exactly as in the pod, and tests talk to it with an aiohttp client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from ollama_operator.api.sidecar_config import SidecarConfig
from ollama_operator.api.spec import ModelSpec
from ollama_operator.ollama import normalize_name
from ollama_operator.sidecar.agent import AgentObserver
from ollama_operator.sidecar.gateway import Gateway
from ollama_operator.sidecar.metrics import GatewayMetrics
from ollama_operator.sidecar.protocol import GatewayServer
from ollama_operator.sidecar.settings import GatewaySettings

MODEL = "llama3.2:1b"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeAgent:
    """The model agent's surface, steered by the test."""

    def __init__(self, present: Sequence[str] = (), *, ready: bool = True) -> None:
        self.present = {normalize_name(m) for m in present}
        self.is_ready = ready
        self.updates: list[tuple[list[str], bool]] = []
        self.observers: list[AgentObserver] = []
        self.started = False
        self.stopped = False

    def subscribe(self, observer: AgentObserver) -> None:
        self.observers.append(observer)

    def update(self, models: Sequence[ModelSpec], prune: bool) -> None:
        self.updates.append(([m.name for m in models], prune))

    def present_models(self) -> set[str]:
        return set(self.present)

    def ready(self) -> bool:
        return self.is_ready

    def status(self) -> dict[str, Any]:
        return {"ready": self.is_ready, "models": sorted(self.present)}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


def config(upstream: str, **fields: Any) -> SidecarConfig:
    """A sidecar config (camelCase keys as in the ConfigMap) pointing at ``upstream``."""
    doc: dict[str, Any] = {"upstream": upstream, "models": [{"name": MODEL}], **fields}
    if doc.get("apiKeysFile") is None:
        # Most gateway tests are about something else than auth: they say it is off, as a
        # config must (tests of auth pass a KeyRing or an apiKeysFile).
        doc["gateway"] = {"auth": {"mode": "Disabled"}, **(doc.get("gateway") or {})}
    return SidecarConfig.from_mapping(doc)


def settings(
    upstream: str, *, sidecar: dict[str, Any] | None = None, **gateway: Any
) -> GatewaySettings:
    """Gateway settings from a config with these ``gateway`` fields (camelCase).

    ``sidecar`` holds top-level fields of the config file (``cache``, ``clients``).
    """
    return GatewaySettings.from_config(config(upstream, gateway=gateway, **(sidecar or {})))


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def listening(runner: web.BaseRunner) -> AsyncIterator[str]:
    """Set a runner up on a free port of 127.0.0.1; yields its base URL."""
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serve(handler: Callable[[web.BaseRequest], Any]) -> AsyncIterator[str]:
    """Run a low-level handler (the gateway's, the admin port's) as the pod does."""
    server = GatewayServer(handler, handler_cancellation=True, access_log=None)
    async with listening(web.ServerRunner(server, shutdown_timeout=0.5)) as url:
        yield url


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp application (a scripted upstream, the admin port)."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.2)
    async with listening(runner) as url:
        yield url


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[str]:
    """Start a gateway (its connection pool and a listener); yields its base URL."""
    await gateway.start()
    try:
        async with serve(gateway.handle) as url:
            yield url
    finally:
        await gateway.close()


def make_gateway(
    upstream: str,
    *,
    keys: Any = None,
    present: Sequence[str] | None = (),
    clock: Callable[[], float] | None = None,
    sidecar: dict[str, Any] | None = None,
    **gateway: Any,
) -> Gateway:
    """A gateway in front of ``upstream``; ``present=None`` turns the model check off.

    ``sidecar`` holds top-level fields of the config file (``cache``, ``clients``).
    """
    kwargs: dict[str, Any] = {"rand": lambda: 0.0}
    if clock is not None:
        kwargs["clock"] = clock
    present_set = None if present is None else {normalize_name(m) for m in present}
    return Gateway(
        settings(upstream, sidecar=sidecar, **gateway),
        keys=keys,
        metrics=GatewayMetrics(),
        present_models=None if present_set is None else (lambda: present_set),
        **kwargs,
    )


def breaker_gateway(upstream: str, clock: FakeClock, *, threshold: int = 1) -> Gateway:
    """A gateway whose circuit opens after ``threshold`` failures for 30 s of ``clock``,
    with no retries, so each failing request counts once."""
    return make_gateway(
        upstream,
        clock=clock,
        retries={"attempts": 0},
        circuitBreaker={"failureThreshold": threshold, "openFor": "30s"},
    )


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    """A metric's current value (0 when the series does not exist yet)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds; the test fails after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling state owned by another component
            await asyncio.sleep(0.01)


async def read_json(response: aiohttp.ClientResponse) -> Any:
    """The JSON body, whatever the content type says."""
    return json.loads(await response.read())


async def raw_exchange(url: str, request: bytes, *, within: float = 5.0) -> bytes:
    """Send ``request`` byte for byte over a fresh connection; everything read until EOF.

    For what an HTTP client would refuse to send or would normalise first (dot
    segments, control characters, malformed header lines). A request that the
    server answers and keeps alive should carry ``Connection: close``.
    """
    host, _, port = url.removeprefix("http://").rpartition(":")
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer."""
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    """The body of a raw HTTP/1.1 answer (not chunked)."""
    return answer.partition(b"\r\n\r\n")[2]
