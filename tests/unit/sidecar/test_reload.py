"""Hot reload: the file watcher, and keys, models and limits changing under a running sidecar."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ollama_operator.sidecar.agent import AgentSettings
from ollama_operator.sidecar.app import Sidecar
from ollama_operator.sidecar.reload import FileWatcher, identity
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, config, eventually, sample

# ---- the watcher -------------------------------------------------------------------------------


def test_poll_sees_changes_appearance_and_disappearance(tmp_path: Path) -> None:
    path = tmp_path / "f"
    watcher = FileWatcher()
    calls: list[str] = []
    watcher.watch(str(path), lambda: calls.append("x"))
    assert watcher.poll() == []
    path.write_text("one")
    assert [p for p, _ in watcher.poll()] == [str(path)]
    assert watcher.poll() == []
    path.write_text("two, longer")
    assert len(watcher.poll()) == 1
    path.unlink()
    assert len(watcher.poll()) == 1
    assert watcher.poll() == []


def test_poll_sees_a_kubernetes_style_symlink_swap(tmp_path: Path) -> None:
    for version in ("v1", "v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "keys").write_text("same size")
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "keys").symlink_to("..data/keys")
    watcher = FileWatcher()
    watcher.watch(str(tmp_path / "keys"), lambda: None)
    tmp = tmp_path / "..data_tmp"
    tmp.symlink_to("v2")
    os.replace(tmp, tmp_path / "..data")
    assert len(watcher.poll()) == 1


async def test_check_calls_back_and_survives_a_failing_callback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    async def coroutine() -> None:
        seen.append("b")

    watcher = FileWatcher()
    watcher.watch(str(a), broken)
    watcher.watch(str(b), coroutine)
    a.write_text("1")
    b.write_text("1")
    with caplog.at_level(logging.ERROR):
        assert sorted(await watcher.check()) == sorted([str(a), str(b)])
    assert seen == ["b"]
    assert "reloading" in caplog.text


async def test_the_watcher_polls_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "f"
    changed = asyncio.Event()
    watcher = FileWatcher(interval=0.01)
    watcher.watch(str(path), changed.set)
    watcher.start()
    path.write_text("x")
    await asyncio.wait_for(changed.wait(), 5)
    await watcher.stop()
    assert watcher.paths == [str(path)]


def test_identity_of_a_missing_file(tmp_path: Path) -> None:
    assert identity(str(tmp_path / "nope")) is None


# ---- a running sidecar -------------------------------------------------------------------------


def write_config(path: Path, upstream: str, **fields: Any) -> None:
    doc = config(upstream, **fields).to_yaml()
    path.write_text(doc)


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator(installed=[MODEL], registry=["qwen:0.5b"]) as emulator:
        yield emulator


async def test_keys_reload_without_a_restart(tmp_path: Path, ollama: OllamaEmulator) -> None:
    keys, cfg = tmp_path / "keys", tmp_path / "sidecar.yaml"
    keys.write_text("old-key\n")
    write_config(cfg, ollama.url, apiKeysFile=str(keys))
    sidecar = Sidecar(
        config(ollama.url, apiKeysFile=str(keys)),
        config_path=str(cfg),
        agent=FakeAgent(),
        ports=(0, 0),
        host="127.0.0.1",
    )
    await sidecar.start()
    try:
        async with aiohttp.ClientSession() as client:

            async def status(key: str) -> int:
                headers = {"X-API-Key": key}
                async with client.get(f"{sidecar.public_url}/api/tags", headers=headers) as r:
                    return r.status

            assert (await status("old-key"), await status("new-key")) == (200, 401)
            keys.write_text("# rotated\nnew-key\n")
            await sidecar.watcher.check()
            assert (await status("old-key"), await status("new-key")) == (401, 200)
            keys.unlink()
            await sidecar.watcher.check()
            assert await status("new-key") == 401, "an unreadable keys file refuses everyone"
    finally:
        await sidecar.stop()
    assert sample(sidecar.metrics, "ollama_gateway_reloads_total", file="keys", result="ok") == 1
    assert sample(sidecar.metrics, "ollama_gateway_reloads_total", file="keys", result="error") == 1


async def test_config_reload_updates_models_and_live_settings(
    tmp_path: Path, ollama: OllamaEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "sidecar.yaml"
    write_config(cfg, ollama.url)
    ollama.install("qwen:0.5b")
    agent = FakeAgent()
    sidecar = Sidecar(
        config(ollama.url), config_path=str(cfg), agent=agent, ports=(0, 0), host="127.0.0.1"
    )
    await sidecar.start()
    body = {"model": "qwen:0.5b", "prompt": "x", "stream": False}
    try:
        async with aiohttp.ClientSession() as client:
            url = f"{sidecar.public_url}/api/generate"
            async with client.post(url, json=body) as r:
                assert r.status == 404
            write_config(
                cfg,
                ollama.url,
                models=[{"name": MODEL}, {"name": "qwen:0.5b"}],
                modelsPrune=True,
                gateway={"rateLimit": {"requestsPerMinute": 60, "burst": 1}},
            )
            await sidecar.watcher.check()
            assert agent.updates == [([MODEL, "qwen:0.5b"], True)]
            async with client.post(url, json=body) as r:
                assert r.status == 200, "the new model is declared now"
                assert r.headers["x-ratelimit-limit"] == "1"
            async with client.post(url, json=body) as r:
                assert r.status == 429

            cfg.write_text("gateway: {maxQueue: -1}\n")
            with caplog.at_level(logging.ERROR):
                await sidecar.watcher.check()
            assert "keeping the previous one" in caplog.text
            assert len(agent.updates) == 1
    finally:
        await sidecar.stop()
    reloads = "ollama_gateway_reloads_total"
    assert sample(sidecar.metrics, reloads, file="config", result="ok") == 1
    assert sample(sidecar.metrics, reloads, file="config", result="error") == 1


async def test_a_new_model_is_pulled_without_a_restart(
    tmp_path: Path, ollama: OllamaEmulator
) -> None:
    cfg = tmp_path / "sidecar.yaml"
    write_config(cfg, ollama.url)
    sidecar = Sidecar(
        config(ollama.url),
        config_path=str(cfg),
        agent_settings=AgentSettings(poll_interval=0.05, busy_interval=0.02, retry_base=0.05),
        ports=(0, 0),
        host="127.0.0.1",
        reload_interval=0.02,
    )
    await sidecar.start()
    try:
        async with aiohttp.ClientSession() as client:

            async def ready() -> int:
                async with client.get(f"{sidecar.admin_url}/readyz") as r:
                    return r.status

            await eventually(lambda: sidecar.agent.ready())
            write_config(cfg, ollama.url, models=[{"name": MODEL}, {"name": "qwen:0.5b"}])
            await eventually(lambda: "qwen:0.5b" in sidecar.agent.present_models())
            assert await ready() == 200
            body = {"model": "qwen:0.5b", "prompt": "x", "stream": False}
            async with client.post(f"{sidecar.public_url}/api/generate", json=body) as r:
                assert r.status == 200
    finally:
        await sidecar.stop()
    assert sample(sidecar.metrics, "ollama_gateway_model_ready", model="qwen:0.5b") == 1
    assert (
        sample(sidecar.metrics, "ollama_gateway_model_pull_progress_ratio", model="qwen:0.5b") == 1
    )
