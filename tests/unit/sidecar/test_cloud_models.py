"""Cloud models are a policy: refused unless the OllamaServer allows them.

Ollama forwards a request for a cloud model (a tag of ``cloud`` or ``*-cloud``) to
ollama.com: prompts leave the cluster. With ``spec.ollama.cloud`` at its default
(Disabled) the gateway refuses such requests with 403 before anything reaches Ollama,
even for a model that is on disk; with Allowed they pass like any declared model.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import make_gateway, read_json, running

CLOUD = "gpt-oss:20b-cloud"


@pytest.mark.parametrize("name", [CLOUD, "glm-4.6:cloud", "GLM-4.6:Cloud"])
async def test_a_cloud_model_is_refused_by_default_even_when_present(
    ollama: OllamaEmulator, client: aiohttp.ClientSession, name: str
) -> None:
    ollama.install(name)
    gateway = make_gateway(ollama.url, present=[name])
    async with running(gateway) as url:
        async with client.post(f"{url}/api/chat", json={"model": name, "messages": []}) as r:
            assert r.status == 403
            message = (await read_json(r))["error"]
            assert "cloud model" in message
            assert "spec.ollama.cloud" in message
        body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
        async with client.post(f"{url}/v1/chat/completions", json=body) as r:
            assert r.status == 403
            error = (await read_json(r))["error"]
            assert (error["type"], error["code"]) == ("permission_error", "cloud_model_refused")
    assert ollama.requests == [], "nothing reached Ollama"


async def test_a_cloud_model_passes_where_the_server_allows_them(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.install(CLOUD)
    gateway = make_gateway(
        ollama.url,
        sidecar={"cloudModels": "Allowed", "models": [{"name": CLOUD}]},
    )
    body = {"model": CLOUD, "prompt": "hi", "stream": False}
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
        assert r.status == 200, await r.text()
    assert len(ollama.requests_to("/api/generate")) == 1


async def test_a_local_model_with_cloud_in_its_name_is_not_refused(
    ollama: OllamaEmulator, client: aiohttp.ClientSession
) -> None:
    ollama.install("cloudy:7b")
    gateway = make_gateway(ollama.url, present=["cloudy:7b"])
    body = {"model": "cloudy:7b", "prompt": "hi", "stream": False}
    async with running(gateway) as url, client.post(f"{url}/api/generate", json=body) as r:
        assert r.status == 200, await r.text()
