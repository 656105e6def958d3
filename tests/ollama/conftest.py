"""A real Ollama (built by ``make ollama``) with a real model, and the real sidecar in front.

Everything listens on 127.0.0.1. Ollama gets a temporary model store; the
Gemma 3 270M GGUF is imported with Ollama's own create API (``ollama create``),
since nothing can be pulled from a registry here. Missing binaries skip these
tests on a developer machine and fail them under CI.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BASE_MODEL = "gemma3:270m"
KEY = "test-key-0123456789abcdef"
TOKEN = "internal-token-0123456789"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.ollama)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_http(url: str, timeout: float = 60, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


@dataclass(frozen=True)
class RealOllama:
    url: str
    binary: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=300
        )


@pytest.fixture(scope="session")
def real_ollama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOllama]:
    paths = dict(
        line.split("=", 1)
        for line in subprocess.run(
            [str(REPO / "tools" / "ollama.sh"), "--print"], capture_output=True, text=True
        ).stdout.split()
    )
    binary, model = Path(paths["ollama"]), Path(paths["model"])
    if not (binary.is_file() and model.is_file()):
        reason = "no real Ollama or model: run `make ollama`"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("ollama-home")
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(home / "models"),
        "OLLAMA_NUM_PARALLEL": "1",
    }
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(binary), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/version")
        ollama = RealOllama(f"http://127.0.0.1:{port}", binary, env)
        (home / "Modelfile").write_text(f"FROM {model}\n")
        created = ollama.cli("create", BASE_MODEL, "-f", str(home / "Modelfile"))
        assert created.returncode == 0, created.stderr
        yield ollama
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@dataclass(frozen=True)
class Sidecar:
    public: str
    admin: str
    config_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}


@contextlib.contextmanager
def running_sidecar(
    real_ollama: RealOllama,
    work: Path,
    models: list[dict[str, Any]],
    gateway: dict[str, Any] | None = None,
) -> Iterator[Sidecar]:
    """``ollama-operator sidecar`` in front of the real Ollama, until it is Ready."""
    (work / "keys").write_text(KEY + "\n")
    (work / "token").write_text(TOKEN)
    public, admin = _free_port(), _free_port()
    config: dict[str, Any] = {
        "server": "real",
        "namespace": "test",
        "upstream": real_ollama.url,
        "listenHost": "127.0.0.1",
        "publicPort": public,
        "adminPort": admin,
        "apiKeysFile": str(work / "keys"),
        "internalTokenFile": str(work / "token"),
        "models": models,
    }
    if gateway is not None:
        config["gateway"] = gateway
    path = work / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(work / "sidecar.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollama_operator.cli", "sidecar", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        _wait_http(f"http://127.0.0.1:{admin}/healthz")
        # Ready once the agent has the declared models (created and preloaded if asked).
        _wait_http(f"http://127.0.0.1:{admin}/readyz", timeout=240)
        yield Sidecar(f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}", path)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="session")
def sidecar(real_ollama: RealOllama, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """The sidecar in front of the real Ollama, declaring a created model."""
    models: list[dict[str, Any]] = [
        {"name": BASE_MODEL},
        {
            "name": "support-bot:latest",
            "create": {
                "from": BASE_MODEL,
                "system": "You are a terse support bot.",
                "parameters": {"temperature": "0", "num_predict": "8"},
            },
            "preload": True,
        },
    ]
    with running_sidecar(real_ollama, tmp_path_factory.mktemp("sidecar"), models) as running:
        yield running
