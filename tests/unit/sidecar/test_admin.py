"""The admin port: probes, the token-protected status, metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ollama_operator.sidecar.admin import Admin, InternalToken
from ollama_operator.sidecar.metrics import GatewayMetrics

from .sidecar_harness import FakeAgent, serve

TOKEN = "internal-token-value"


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent(["llama3.2:1b"])


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_healthz(agent: FakeAgent, client: aiohttp.ClientSession) -> None:
    agent.is_ready = False
    app = Admin(agent, GatewayMetrics()).handle
    async with serve(app) as url, client.get(f"{url}/healthz") as r:
        assert (r.status, await r.json()) == (200, {"status": "ok"})


async def test_readyz_follows_the_agent(agent: FakeAgent, client: aiohttp.ClientSession) -> None:
    async with serve(Admin(agent, GatewayMetrics()).handle) as url:
        async with client.get(f"{url}/readyz") as r:
            assert (r.status, await r.json()) == (200, {"ready": True})
        agent.is_ready = False
        async with client.get(f"{url}/readyz") as r:
            assert (r.status, await r.json()) == (503, {"ready": False})


async def test_status_wants_the_internal_token(
    agent: FakeAgent, client: aiohttp.ClientSession
) -> None:
    admin = Admin(agent, GatewayMetrics(), InternalToken(TOKEN, configured=True))
    async with serve(admin.handle) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            async with client.get(f"{url}/status", headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"] == "Bearer"
                body = await r.json()
                assert "internal token" in body["error"]
                assert TOKEN not in str(body)
        async with client.get(f"{url}/status", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 200
            assert await r.json() == {"ready": True, "models": ["llama3.2:1b"]}


async def test_status_is_open_without_a_token_file(
    agent: FakeAgent, client: aiohttp.ClientSession
) -> None:
    app = Admin(agent, GatewayMetrics()).handle
    async with serve(app) as url, client.get(f"{url}/status") as r:
        assert r.status == 200


async def test_metrics(agent: FakeAgent, client: aiohttp.ClientSession) -> None:
    metrics = GatewayMetrics()
    metrics.rate_limited.inc(3)
    async with serve(Admin(agent, metrics).handle) as url, client.get(f"{url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "ollama_gateway_rate_limited_total 3.0" in await r.text()


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    token = InternalToken.load(str(path))
    assert token.allows(f"Bearer {TOKEN}")
    assert token.allows(f"bearer   {TOKEN} ")
    assert not token.allows(f"Basic {TOKEN}")
    assert not token.allows(None)
    path.write_text("")
    assert not InternalToken.load(str(path)).allows("Bearer ")
    assert InternalToken.load(None).allows(None)
    with pytest.raises(FileNotFoundError):
        InternalToken.load(str(tmp_path / "missing"))


def test_the_port_has_only_the_four_endpoints(agent: FakeAgent) -> None:
    assert set(Admin(agent, GatewayMetrics()).endpoints) == {
        "/healthz",
        "/readyz",
        "/status",
        "/metrics",
    }


async def test_other_paths_and_methods_are_json_errors(
    agent: FakeAgent, client: aiohttp.ClientSession
) -> None:
    async with serve(Admin(agent, GatewayMetrics()).handle) as url:
        async with client.get(f"{url}/nope") as r:
            assert r.status == 404
            assert "error" in await r.json()
        async with client.post(f"{url}/healthz") as r:
            assert (r.status, r.headers["Allow"]) == (405, "GET, HEAD")
        async with client.head(f"{url}/readyz") as r:
            assert r.status == 200
