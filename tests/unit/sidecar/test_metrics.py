"""Metrics: exact values after a known sequence, the agent's hooks, and the documentation."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from ollama_operator.sidecar.metrics import PREFIX, GatewayMetrics
from ollama_operator.sidecar.usage import Usage
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, make_gateway, running, sample

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


async def test_exact_values_after_a_known_sequence(ollama: OllamaEmulator) -> None:
    ollama.stream_chunks = 3
    ollama.chunk_delay = 0.05  # one chunk per read, so every gap is observed
    gateway = make_gateway(ollama.url)
    m = gateway.metrics
    calls = [
        (
            "/api/generate",
            {"model": MODEL, "prompt": "why is the sky blue"},
        ),  # 5 + 10 prompt, 3 generated
        ("/api/chat", {"model": MODEL, "stream": False, "messages": [{"content": "hi there"}]}),
        ("/api/embed", {"model": MODEL, "input": ["a b", "c"]}),  # 3 prompt tokens
        ("/v1/chat/completions", {"model": MODEL, "messages": [{"content": "hi"}]}),
        ("/api/generate", {"model": "unknown:1b", "prompt": "x"}),  # 404
        ("/api/chat", {"model": 7}),  # 400
    ]
    async with running(gateway) as url, aiohttp.ClientSession() as client:
        for path, body in calls:
            async with client.post(url + path, json=body) as r:
                await r.read()

    def requests(route: str, model: str, code: str) -> float:
        return sample(m, f"{PREFIX}_requests_total", route=route, model=model, code=code)

    assert requests("generate", MODEL, "200") == 1
    assert requests("chat", MODEL, "200") == 1
    assert requests("embed", MODEL, "200") == 1
    assert requests("openai_chat", MODEL, "200") == 1
    assert requests("generate", "", "404") == 1
    assert requests("chat", "", "400") == 1
    assert sample(m, f"{PREFIX}_request_duration_seconds_count", route="generate") == 2
    assert sample(m, f"{PREFIX}_prompt_tokens_total", model=MODEL) == 15 + 12 + 3 + 11
    assert sample(m, f"{PREFIX}_generated_tokens_total", model=MODEL) == 3 + 3 + 3
    assert sample(m, f"{PREFIX}_tokens_per_second_count", model=MODEL) == 2
    assert sample(m, f"{PREFIX}_time_to_first_token_seconds_count", model=MODEL) == 1
    assert sample(m, f"{PREFIX}_inter_token_latency_seconds_count", model=MODEL) == 3
    assert sample(m, f"{PREFIX}_inter_token_latency_seconds_sum", model=MODEL) >= 0.1
    assert sample(m, f"{PREFIX}_in_flight") == 0
    assert sample(m, f"{PREFIX}_queue_depth") == 0
    assert sample(m, f"{PREFIX}_cache_hits_total") == 0
    assert sample(m, f"{PREFIX}_circuit_state") == 0


def test_usage_counts_and_speed() -> None:
    m = GatewayMetrics()
    m.usage("a", Usage(10, 20, 0.5))
    m.usage("a", Usage(5, None, None))
    assert sample(m, f"{PREFIX}_prompt_tokens_total", model="a") == 15
    assert sample(m, f"{PREFIX}_generated_tokens_total", model="a") == 20
    assert sample(m, f"{PREFIX}_tokens_per_second_sum", model="a") == 40
    assert sample(m, f"{PREFIX}_tokens_per_second_count", model="a") == 1


def test_request_children_are_reused() -> None:
    m = GatewayMetrics()
    m.request("tags", "", 200, 0.01)
    m.request("tags", "", 200, 0.02)
    m.request("tags", "", 500, 0.03)
    assert sample(m, f"{PREFIX}_requests_total", route="tags", model="", code="200") == 2
    assert sample(m, f"{PREFIX}_requests_total", route="tags", model="", code="500") == 1
    assert sample(m, f"{PREFIX}_request_duration_seconds_sum", route="tags") == pytest.approx(0.06)


def test_the_agents_hooks() -> None:
    m = GatewayMetrics()
    m.on_pull_progress("llama3.2:1b", 50, 200)
    assert sample(m, f"{PREFIX}_model_pull_completed_bytes", model="llama3.2:1b") == 50
    assert sample(m, f"{PREFIX}_model_pull_total_bytes", model="llama3.2:1b") == 200
    assert sample(m, f"{PREFIX}_model_pull_progress_ratio", model="llama3.2:1b") == 0.25
    m.on_model_state("llama3.2:1b", "Pulling")
    assert sample(m, f"{PREFIX}_model_ready", model="llama3.2:1b") == 0
    m.on_model_state("llama3.2:1b", "Failed")
    m.on_model_state("llama3.2:1b", "Pulling")
    m.on_model_state("llama3.2:1b", "Failed")
    assert sample(m, f"{PREFIX}_model_pull_failures_total", model="llama3.2:1b") == 2
    m.on_model_state("llama3.2:1b", "Ready")
    assert sample(m, f"{PREFIX}_model_ready", model="llama3.2:1b") == 1
    assert sample(m, f"{PREFIX}_model_pull_progress_ratio", model="llama3.2:1b") == 1
    m.forget_model("llama3.2:1b")
    m.forget_model("never-seen")
    assert m.registry.get_sample_value(f"{PREFIX}_model_ready", {"model": "llama3.2:1b"}) is None


def test_a_pull_of_unknown_size_reports_no_progress() -> None:
    m = GatewayMetrics()
    m.on_pull_progress("m", 10, 0)
    assert sample(m, f"{PREFIX}_model_pull_progress_ratio", model="m") == 0


def test_each_gateway_has_its_own_registry() -> None:
    a, b = GatewayMetrics(), GatewayMetrics()
    a.rate_limited.inc()
    assert sample(a, f"{PREFIX}_rate_limited_total") == 1
    assert sample(b, f"{PREFIX}_rate_limited_total") == 0


def test_every_metric_is_prefixed_and_documented() -> None:
    docs = DOCS.read_text()
    families = [f.name for f in GatewayMetrics().registry.collect()]
    assert len(families) >= 20
    for name in families:
        assert name.startswith(f"{PREFIX}_")
        counter = name + "_total"
        assert f"`{name}`" in docs or f"`{counter}`" in docs, f"{name} is not in docs/metrics.md"


def test_exposition_is_prometheus_text() -> None:
    m = GatewayMetrics()
    m.request("generate", "m", 200, 0.1)
    text = m.exposition().decode()
    assert 'ollama_gateway_requests_total{code="200",model="m",route="generate"} 1.0' in text
