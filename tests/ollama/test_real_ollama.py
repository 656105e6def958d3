"""The sidecar and its model agent in front of a real Ollama serving a real model.

Generation on two CPU cores is slow, so every request asks for a handful of
tokens; the assertions are about the wire (shapes, streaming, counts), not
about what the model says.
"""

from __future__ import annotations

import json
import time

import httpx

from tests.ollama.conftest import BASE_MODEL, TOKEN, RealOllama, Sidecar

OPTIONS = {"num_predict": 6, "temperature": 0}
TIMEOUT = 180


def test_generate_non_streaming(sidecar: Sidecar) -> None:
    body = {"model": BASE_MODEL, "prompt": "Say hi.", "stream": False, "options": OPTIONS}
    resp = httpx.post(
        f"{sidecar.public}/api/generate", json=body, headers=sidecar.auth, timeout=TIMEOUT
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["done"] is True
    assert isinstance(data["response"], str)
    assert 0 < data["eval_count"] <= 6
    assert data["eval_duration"] > 0


def test_generate_streams_chunk_by_chunk(sidecar: Sidecar) -> None:
    body = {"model": BASE_MODEL, "prompt": "Count: one, two,", "options": OPTIONS}
    lines = []
    with httpx.stream(
        "POST", f"{sidecar.public}/api/generate", json=body, headers=sidecar.auth, timeout=TIMEOUT
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        for line in resp.iter_lines():
            if line:
                lines.append(json.loads(line))
    assert len(lines) >= 2
    assert all(chunk["done"] is False for chunk in lines[:-1])
    assert lines[-1]["done"] is True
    assert lines[-1]["eval_count"] == len(lines) - 1 or lines[-1]["eval_count"] > 0


def test_chat_native_and_openai(sidecar: Sidecar) -> None:
    messages = [{"role": "user", "content": "Hello"}]
    native = httpx.post(
        f"{sidecar.public}/api/chat",
        json={"model": BASE_MODEL, "messages": messages, "stream": False, "options": OPTIONS},
        headers=sidecar.auth,
        timeout=TIMEOUT,
    )
    assert native.status_code == 200, native.text
    assert native.json()["message"]["role"] == "assistant"
    openai = httpx.post(
        f"{sidecar.public}/v1/chat/completions",
        json={"model": BASE_MODEL, "messages": messages, "max_tokens": 6},
        headers=sidecar.auth,
        timeout=TIMEOUT,
    )
    assert openai.status_code == 200, openai.text
    choice = openai.json()["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert openai.json()["usage"]["completion_tokens"] > 0


def test_embeddings_relay_ollamas_own_answer(sidecar: Sidecar, real_ollama: RealOllama) -> None:
    """Gemma 3 has no embedding head in this Ollama: the gateway relays Ollama's refusal as is."""
    body = {"model": BASE_MODEL, "input": "hello"}
    direct = httpx.post(f"{real_ollama.url}/api/embed", json=body, timeout=TIMEOUT)
    via = httpx.post(
        f"{sidecar.public}/api/embed", json=body, headers=sidecar.auth, timeout=TIMEOUT
    )
    assert via.status_code == direct.status_code
    assert via.json() == direct.json()


def test_agent_created_and_preloaded_the_declared_model(
    sidecar: Sidecar, real_ollama: RealOllama
) -> None:
    show = httpx.post(f"{real_ollama.url}/api/show", json={"model": "support-bot"}, timeout=30)
    assert show.status_code == 200
    assert show.json()["system"] == "You are a terse support bot."
    assert "temperature" in show.json()["parameters"]
    loaded = [
        m["name"] for m in httpx.get(f"{real_ollama.url}/api/ps", timeout=10).json()["models"]
    ]
    assert "support-bot:latest" in loaded
    status = httpx.get(
        f"{sidecar.admin}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()
    entry = {m["name"]: m for m in status["models"]}["support-bot:latest"]
    assert entry["phase"] == "Ready"
    assert entry["loaded"] is True
    assert entry["digest"]


def test_a_model_deleted_behind_its_back_is_made_again(
    sidecar: Sidecar, real_ollama: RealOllama
) -> None:
    """The agent notices on its next pass and re-creates the model.

    Re-creating a derived model from a local base takes milliseconds here, so the
    moment /readyz says 503 is too short to sample reliably; the emulator tests,
    whose pulls take seconds, assert that readiness drop.
    """
    token = {"Authorization": f"Bearer {TOKEN}"}

    def entry() -> dict[str, object]:
        doc = httpx.get(f"{sidecar.admin}/status", headers=token, timeout=10).json()
        models: dict[str, dict[str, object]] = {m["name"]: m for m in doc["models"]}
        return models["support-bot:latest"]

    assert entry()["phase"] == "Ready"
    deleted = real_ollama.cli("rm", "support-bot:latest")
    assert deleted.returncode == 0, deleted.stderr
    listed = {
        m["name"] for m in httpx.get(f"{real_ollama.url}/api/tags", timeout=10).json()["models"]
    }
    assert "support-bot:latest" not in listed
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        tags = httpx.get(f"{real_ollama.url}/api/tags", timeout=10).json()["models"]
        if "support-bot:latest" in {m["name"] for m in tags}:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the agent did not make the deleted model again")
    current = entry()
    assert current["phase"] == "Ready"
    assert httpx.get(f"{sidecar.admin}/readyz", timeout=10).status_code == 200


def test_metrics_count_real_tokens(sidecar: Sidecar) -> None:
    body = {"model": BASE_MODEL, "prompt": "Hi", "stream": False, "options": OPTIONS}
    resp = httpx.post(
        f"{sidecar.public}/api/generate", json=body, headers=sidecar.auth, timeout=TIMEOUT
    )
    assert resp.status_code == 200
    text = httpx.get(f"{sidecar.admin}/metrics", timeout=10).text
    generated = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f'ollama_gateway_generated_tokens_total{{model="{BASE_MODEL}"}}')
    ]
    assert generated
    assert generated[0] >= resp.json()["eval_count"]
