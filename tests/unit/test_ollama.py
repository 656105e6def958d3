"""The Ollama client: name rules, request values, and every call against the emulator."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_operator.ollama import (
    ModelName,
    ModelNotFound,
    OllamaClient,
    OllamaError,
    OllamaUnavailable,
    Timeouts,
    error_message,
    keep_alive_seconds,
    keep_alive_value,
    normalize_name,
    progress_from_line,
    typed_parameters,
)
from tests.support.ollama_emulator import OllamaEmulator, display_name

# ----------------------------------------------------------------------------- names

HOSTS = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}\.[a-z]{2,4}(:[0-9]{2,5})?", fullmatch=True)
PARTS = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,12}", fullmatch=True)
TAGS = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,10}", fullmatch=True)


@st.composite
def model_refs(draw: st.DrawFn) -> str:
    """References in every form Ollama accepts: [host/][namespace/]model[:tag]."""
    name = draw(PARTS)
    namespace = draw(st.none() | PARTS)
    host = draw(st.none() | HOSTS) if namespace else None
    tag = draw(st.none() | TAGS)
    ref = name if namespace is None else f"{namespace}/{name}"
    ref = ref if host is None else f"{host}/{ref}"
    return ref if tag is None else f"{ref}:{tag}"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("llama3.2", "llama3.2:latest"),
        ("Llama3.2:1B", "llama3.2:1b"),
        ("library/llama3.2:1b", "llama3.2:1b"),
        ("registry.ollama.ai/library/llama3.2", "llama3.2:latest"),
        ("https://registry.ollama.ai/library/qwen3:0.6b", "qwen3:0.6b"),
        ("user/model:q4", "user/model:q4"),
        ("registry.local:5000/ns/m:tag", "registry.local:5000/ns/m:tag"),
        ("registry.local:5000/ns/m", "registry.local:5000/ns/m:latest"),
        ("hf.co/library/m", "hf.co/library/m:latest"),
    ],
)
def test_normalize_name_examples(raw: str, normal: str) -> None:
    assert normalize_name(raw) == normal


@given(model_refs())
def test_normalize_name_agrees_with_an_independent_reading_of_ollamas_rules(ref: str) -> None:
    assert normalize_name(ref) == display_name(ref).lower()


@given(model_refs())
def test_normalize_name_is_idempotent_and_case_blind(ref: str) -> None:
    once = normalize_name(ref)
    assert normalize_name(once) == once
    assert normalize_name(ref.upper()) == once


@given(PARTS, st.none() | TAGS)
def test_default_registry_and_namespace_are_implied(model: str, tag: str | None) -> None:
    short = model if tag is None else f"{model}:{tag}"
    long = f"registry.ollama.ai/library/{short}"
    assert normalize_name(short) == normalize_name(long)
    assert normalize_name(short).endswith(f":{(tag or 'latest').lower()}")


def test_model_name_parts() -> None:
    assert ModelName.parse("h.io:5000/ns/m:t") == ModelName("h.io:5000", "ns", "m", "t")
    assert ModelName.parse("m") == ModelName("registry.ollama.ai", "library", "m", "latest")


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("given_", "sent"),
    [("300", 300), ("-1", -1), ("5m", "5m"), ("1h30m", "1h30m"), (0, 0), (None, None)],
)
def test_keep_alive_numbers_travel_as_numbers(given_: str | int | None, sent: object) -> None:
    assert keep_alive_value(given_) == sent


def test_keep_alive_seconds() -> None:
    assert keep_alive_seconds("1h30m") == 5400
    assert keep_alive_seconds("300") == 300
    assert keep_alive_seconds("-1") == math.inf
    assert keep_alive_seconds(-1) == math.inf
    assert keep_alive_seconds(None) is None


def test_parameters_are_typed_for_the_create_api() -> None:
    typed = typed_parameters(
        {
            "temperature": "0.2",
            "num_ctx": "4096",
            "seed": "-3",
            "use_mmap": "true",
            "stop": "<|end|>",
            "mirostat_eta": "1e-3",
            "note": "hello",
        }
    )
    assert typed == {
        "temperature": 0.2,
        "num_ctx": 4096,
        "seed": -3,
        "use_mmap": True,
        "stop": ["<|end|>"],
        "mirostat_eta": 0.001,
        "note": "hello",
    }
    assert isinstance(typed["num_ctx"], int)


def test_error_messages_are_ollamas_own() -> None:
    assert error_message('{"error":"model \'x\' not found"}') == "model 'x' not found"
    assert error_message('{"error":{"message":"boom","type":"api_error"}}') == "boom"
    assert error_message("404 page not found") == "404 page not found"
    with pytest.raises(OllamaError, match="file does not exist") as caught:
        progress_from_line(b'{"error":"pull model manifest: file does not exist"}\n')
    assert caught.value.message == "pull model manifest: file does not exist"
    with pytest.raises(OllamaError, match="neither") as caught:
        progress_from_line(b'{"error":"neither \'from\' or \'files\' was specified","status":400}')
    assert caught.value.status == 400


# ----------------------------------------------------------------------------- against Ollama


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator(installed=["llama3.2:1b"], registry=["qwen3:0.6b"]) as emulator:
        yield emulator


@pytest.fixture
async def client(ollama: OllamaEmulator) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(ollama.url, timeouts=Timeouts(request=5, load=5)) as c:
        yield c


async def test_version_tags_show(client: OllamaClient, ollama: OllamaEmulator) -> None:
    assert await client.version() == "0.11.4"
    [listed] = await client.tags()
    assert listed.name == "llama3.2:1b"
    assert listed.digest == ollama.installed["llama3.2:1b"].digest
    assert listed.size == 4_000_000
    assert listed.details.family == "llama"
    shown = await client.show("llama3.2:1b")
    assert "completion" in shown.capabilities
    with pytest.raises(ModelNotFound, match="model 'ghost' not found") as caught:
        await client.show("ghost")
    assert caught.value.status == 404


async def test_pull_yields_progress_until_success(
    client: OllamaClient, ollama: OllamaEmulator
) -> None:
    ollama.set_pull("qwen3:0.6b", chunks=2)
    events = [event async for event in client.pull("qwen3:0.6b")]
    assert events[0].status == "pulling manifest"
    assert events[-1].status == "success"
    layer_events = [e for e in events if e.digest]
    assert layer_events
    assert all(e.total == 2_000_000 for e in layer_events)
    assert [e.completed for e in layer_events] == [1_000_000, 2_000_000] * 2
    assert ollama.requests_to("/api/pull")[0].body == {"model": "qwen3:0.6b", "stream": True}


async def test_pull_error_in_stream_raises_with_ollamas_message(client: OllamaClient) -> None:
    with pytest.raises(OllamaError) as caught:
        async for _ in client.pull("missing:1b"):
            pass
    assert caught.value.message == "pull model manifest: file does not exist"


async def test_insecure_pull_says_so(client: OllamaClient, ollama: OllamaEmulator) -> None:
    async for _ in client.pull("qwen3:0.6b", insecure=True):
        pass
    assert ollama.requests_to("/api/pull")[0].body["insecure"] is True


async def test_create_sends_typed_parameters(client: OllamaClient, ollama: OllamaEmulator) -> None:
    params = typed_parameters({"temperature": "0.2"})
    events = [
        e
        async for e in client.create(
            "helper", from_="llama3.2:1b", system="Be terse.", parameters=params
        )
    ]
    assert events[-1].status == "success"
    [request] = ollama.requests_to("/api/create")
    assert request.body == {
        "model": "helper",
        "from": "llama3.2:1b",
        "stream": True,
        "system": "Be terse.",
        "parameters": {"temperature": 0.2},
    }
    loaded = await client.load("helper")
    assert loaded.done_reason == "load"


async def test_delete_and_its_404(client: OllamaClient, ollama: OllamaEmulator) -> None:
    await client.delete("llama3.2:1b")
    assert ollama.installed == {}
    with pytest.raises(ModelNotFound, match=r"model 'llama3\.2:1b' not found"):
        await client.delete("llama3.2:1b")


async def test_load_with_keep_alive_then_ps_then_unload(
    client: OllamaClient, ollama: OllamaEmulator
) -> None:
    answer = await client.load("llama3.2:1b", keep_alive="-1")
    assert answer.done is True
    assert answer.done_reason == "load"
    assert ollama.requests_to("/api/generate")[0].body["keep_alive"] == -1
    [running] = await client.ps()
    assert running.name == "llama3.2:1b"
    await client.unload("llama3.2:1b")
    assert await client.ps() == []


async def test_generate_reports_nanosecond_metrics(client: OllamaClient) -> None:
    answer = await client.generate("llama3.2:1b", "hello")
    assert answer.response == "The sky is"
    assert answer.eval_count == 3
    assert answer.total_duration > 0


async def test_server_errors_keep_status_and_message(
    client: OllamaClient, ollama: OllamaEmulator
) -> None:
    ollama.fail_next(1, status=500, error="llama runner process has terminated")
    with pytest.raises(OllamaError) as caught:
        await client.tags()
    assert (caught.value.status, caught.value.message) == (
        500,
        "llama runner process has terminated",
    )
    assert not isinstance(caught.value, OllamaUnavailable)


async def test_a_server_that_is_down_is_unavailable(
    client: OllamaClient, ollama: OllamaEmulator
) -> None:
    await ollama.stop()
    with pytest.raises(OllamaUnavailable, match="cannot connect"):
        await client.version()
    with pytest.raises(OllamaUnavailable):
        async for _ in client.pull("qwen3:0.6b"):
            pass


async def test_a_slow_server_times_out(ollama: OllamaEmulator) -> None:
    ollama.first_byte_delay = 1.0
    async with OllamaClient(ollama.url, timeouts=Timeouts(load=0.1)) as client:
        with pytest.raises(OllamaUnavailable, match="timed out"):
            await client.generate("llama3.2:1b", "hi")


async def test_a_shared_session_is_not_closed(ollama: OllamaEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with OllamaClient(ollama.url, session) as client:
            assert await client.version() == "0.11.4"
        assert not session.closed
