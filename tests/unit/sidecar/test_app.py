"""Assembling the sidecar: both ports, the agent, startup warnings, graceful shutdown, main()."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from ollama_operator.sidecar.app import Sidecar, main
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, config, free_port

REPO = Path(__file__).resolve().parents[3]


async def test_both_ports_and_the_agent_run_together(
    ollama: OllamaEmulator, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("tok\n")
    agent = FakeAgent([MODEL])
    sidecar = Sidecar(
        config(ollama.url, internalTokenFile=str(token)),
        agent=agent,
        ports=(0, 0),
        host="127.0.0.1",
    )
    assert agent.observers == [sidecar.metrics]
    await sidecar.start()
    try:
        assert agent.started
        assert sidecar.public_port != sidecar.admin_port
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{sidecar.public_url}/api/version") as r:
                assert (r.status, await r.json()) == (200, {"version": "0.11.4"})
            async with client.get(f"{sidecar.admin_url}/status") as r:
                assert r.status == 401
            async with client.get(
                f"{sidecar.admin_url}/status", headers={"Authorization": "Bearer tok"}
            ) as r:
                assert r.status == 200
            async with client.get(f"{sidecar.admin_url}/metrics") as r:
                assert 'route="version"' in await r.text()
            async with client.get(f"{sidecar.public_url}/metrics") as r:
                assert r.status == 404, "metrics are on the admin port only"
    finally:
        await sidecar.stop()
    assert agent.stopped


async def test_auth_off_is_announced_loudly(
    ollama: OllamaEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar = Sidecar(config(ollama.url), agent=FakeAgent(), ports=(0, 0), host="127.0.0.1")
    with caplog.at_level(logging.WARNING):
        await sidecar.start()
        await sidecar.stop()
    assert "AUTH IS OFF" in caplog.text


async def test_an_unreadable_keys_file_refuses_everyone(
    ollama: OllamaEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "keys"
    with caplog.at_level(logging.ERROR):
        sidecar = Sidecar(
            config(ollama.url, apiKeysFile=str(missing)),
            agent=FakeAgent(),
            ports=(0, 0),
            host="127.0.0.1",
        )
    assert "cannot read the API keys file" in caplog.text
    await sidecar.start()
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"{sidecar.public_url}/api/tags", headers={"X-API-Key": "anything"}) as r,
        ):
            assert r.status == 401
    finally:
        await sidecar.stop()


async def test_keys_never_reach_the_log(
    ollama: OllamaEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("super-secret-key-1\nsuper-secret-key-2\n")
    with caplog.at_level(logging.DEBUG):
        sidecar = Sidecar(
            config(ollama.url, apiKeysFile=str(keys)),
            agent=FakeAgent(),
            ports=(0, 0),
            host="127.0.0.1",
        )
        await sidecar.start()
        async with aiohttp.ClientSession() as client:
            for key in ("super-secret-key-1", "super-secret-key-3"):
                async with client.get(
                    f"{sidecar.public_url}/api/tags", headers={"Authorization": f"Bearer {key}"}
                ) as r:
                    await r.read()
        keys.write_text("super-secret-key-4\n")
        await sidecar.watcher.check()
        await sidecar.stop()
    assert "super-secret" not in caplog.text


async def test_stop_lets_a_stream_in_flight_finish(ollama: OllamaEmulator) -> None:
    ollama.stream_chunks = 5
    ollama.chunk_delay = 0.1
    sidecar = Sidecar(config(ollama.url), agent=FakeAgent(), ports=(0, 0), host="127.0.0.1")
    await sidecar.start()
    async with aiohttp.ClientSession() as client:
        body = {"model": MODEL, "prompt": "x"}
        async with client.post(f"{sidecar.public_url}/api/generate", json=body) as r:
            await r.content.readline()
            stopping = asyncio.create_task(sidecar.stop())
            rest = [json.loads(line) async for line in r.content if line.strip()]
        await stopping
    assert rest[-1]["done"] is True
    assert ollama.cancelled_streams == 0


def test_main_refuses_an_invalid_config(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "sidecar.yaml"
    bad.write_text("gateway: {maxConcurrent: 0}\n")
    with caplog.at_level(logging.ERROR):
        assert main(str(bad)) == 2
        assert main(str(tmp_path / "missing.yaml")) == 2
    assert "maxConcurrent" in caplog.text


def test_the_command_serves_until_sigterm(tmp_path: Path) -> None:
    public, admin = free_port(), free_port()
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_text(
        config(
            f"http://127.0.0.1:{free_port()}",
            listenHost="127.0.0.1",
            publicPort=public,
            adminPort=admin,
        ).to_yaml()
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ollama_operator.cli", "sidecar", "--config", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the sidecar did not come up"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{public}/", timeout=1) as r:
            assert r.read() == b"Ollama is running"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        output = process.stdout.read().decode() if process.stdout else ""
        assert "shutting down" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
