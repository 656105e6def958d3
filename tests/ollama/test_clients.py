"""The client libraries people call, through the sidecar, in front of the real Ollama.

The official ``ollama`` package and the ``openai`` package, each pointed at the gateway the
way a user points it at a Service: chat, streamed chat, generate, embeddings, a tool call,
a JSON-schema answer, thinking, model listing, and each library's own error on 401, 404
(an undeclared model) and 429. Where the model cannot do something (Gemma 3 270M has no
tools, no thinking and, in this Ollama, no embeddings), the test asks Ollama directly
too and checks that the client sees Ollama's own refusal, unchanged by the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ollama
import openai
import pytest

from tests.ollama.conftest import BASE_MODEL, KEY, RealOllama, Sidecar, running_sidecar

OPTIONS = {"num_predict": 6, "temperature": 0}
TIMEOUT = 180
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
}
HELLO = [{"role": "user", "content": "Hello"}]


def native(url: str, key: str | None = KEY) -> ollama.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return ollama.Client(host=url, headers=headers, timeout=TIMEOUT)


def oai(url: str, key: str = KEY) -> openai.OpenAI:
    # No retries: the test wants to see the first answer, 429 included.
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def limited(
    real_ollama: RealOllama, sidecar: Sidecar, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    """A second sidecar in front of the same Ollama with a bucket of one request an hour."""
    with running_sidecar(
        real_ollama,
        tmp_path_factory.mktemp("limited"),
        [{"name": BASE_MODEL}],
        gateway={"rateLimit": {"requestsPerMinute": 1, "burst": 1}},
    ) as running:
        yield running


def _refusal(call: Any) -> ollama.ResponseError:
    with pytest.raises(ollama.ResponseError) as info:
        call()
    return info.value


# ---- the ollama package --------------------------------------------------------------------


def test_ollama_chat_generate_and_stream(sidecar: Sidecar) -> None:
    client = native(sidecar.public)
    chat = client.chat(model=BASE_MODEL, messages=HELLO, options=OPTIONS)
    assert chat.message.role == "assistant"
    assert chat.done is True
    assert chat.eval_count is not None
    assert 0 < chat.eval_count <= 6
    generated = client.generate(model=BASE_MODEL, prompt="Say hi.", options=OPTIONS)
    assert isinstance(generated.response, str)
    assert generated.done is True
    chunks = list(client.chat(model=BASE_MODEL, messages=HELLO, options=OPTIONS, stream=True))
    assert len(chunks) >= 2
    assert all(c.done is False for c in chunks[:-1])
    assert chunks[-1].done is True
    assert chunks[-1].eval_count is not None
    assert chunks[-1].eval_count > 0


def test_ollama_structured_answer_follows_the_schema(sidecar: Sidecar) -> None:
    answer = native(sidecar.public).chat(
        model=BASE_MODEL,
        messages=[{"role": "user", "content": "Is water wet? Answer as JSON."}],
        format=ANSWER_SCHEMA,
        options={"num_predict": 24, "temperature": 0},
    )
    data = json.loads(answer.message.content or "")
    assert isinstance(data["ok"], bool)


def test_ollama_lists_and_shows_models(sidecar: Sidecar) -> None:
    client = native(sidecar.public)
    names = {m.model for m in client.list().models}
    assert {BASE_MODEL, "support-bot:latest"} <= names
    shown = client.show(BASE_MODEL)
    assert shown.details is not None
    assert shown.details.family == "gemma3"
    running = {m.model for m in client.ps().models}
    assert "support-bot:latest" in running, "the agent preloaded it"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.chat(model=BASE_MODEL, messages=HELLO, tools=TOOLS), id="tools"),
        pytest.param(lambda c: c.chat(model=BASE_MODEL, messages=HELLO, think=True), id="think"),
        pytest.param(lambda c: c.embed(model=BASE_MODEL, input="hello"), id="embed"),
    ],
)
def test_ollama_sees_ollamas_own_refusal_of_what_the_model_cannot_do(
    sidecar: Sidecar, real_ollama: RealOllama, call: Any
) -> None:
    direct = _refusal(lambda: call(native(real_ollama.url, key=None)))
    via = _refusal(lambda: call(native(sidecar.public)))
    assert via.status_code == direct.status_code
    assert via.status_code >= 400  # 400 for tools and think; Ollama 0.11.4 says 500 for embed
    assert via.error == direct.error, "the gateway passed Ollama's answer on unchanged"


def test_ollama_errors_for_a_missing_key_and_an_undeclared_model(sidecar: Sidecar) -> None:
    unauthorized = _refusal(lambda: native(sidecar.public, key=None).list())
    assert unauthorized.status_code == 401
    assert "missing API key" in unauthorized.error
    wrong = _refusal(lambda: native(sidecar.public, key="not-a-key").list())
    assert wrong.status_code == 401
    missing = _refusal(lambda: native(sidecar.public).chat(model="llama3.2:1b", messages=HELLO))
    assert missing.status_code == 404
    assert "llama3.2:1b" in missing.error


def test_ollama_error_when_rate_limited(limited: Sidecar) -> None:
    client = native(limited.public)
    client.list()
    throttled = _refusal(client.list)
    assert throttled.status_code == 429
    assert "rate limit" in throttled.error


# ---- the openai package --------------------------------------------------------------------


def test_openai_chat_and_stream(sidecar: Sidecar) -> None:
    client = oai(sidecar.public)
    answer = client.chat.completions.create(model=BASE_MODEL, messages=HELLO, max_tokens=6)
    assert answer.choices[0].message.role == "assistant"
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=BASE_MODEL, messages=HELLO, max_tokens=6, stream=True
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(text, str)


def test_openai_legacy_completion_and_structured_answer(sidecar: Sidecar) -> None:
    client = oai(sidecar.public)
    completion = client.completions.create(model=BASE_MODEL, prompt="Say hi.", max_tokens=6)
    assert completion.choices[0].text is not None
    answer = client.chat.completions.create(
        model=BASE_MODEL,
        messages=[{"role": "user", "content": "Is water wet? Answer as JSON."}],
        max_tokens=24,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": ANSWER_SCHEMA},
        },
    )
    data = json.loads(answer.choices[0].message.content or "")
    assert isinstance(data["ok"], bool)


def test_openai_lists_models(sidecar: Sidecar) -> None:
    client = oai(sidecar.public)
    ids = {m.id for m in client.models.list()}
    assert {BASE_MODEL, "support-bot:latest"} <= ids
    assert client.models.retrieve(BASE_MODEL).id == BASE_MODEL


def test_openai_tool_call_and_embeddings_get_ollamas_refusal(
    sidecar: Sidecar, real_ollama: RealOllama
) -> None:
    for client in (oai(real_ollama.url, key="unused"), oai(sidecar.public)):
        with pytest.raises(openai.BadRequestError) as tools:
            client.chat.completions.create(
                model=BASE_MODEL, messages=HELLO, tools=TOOLS, max_tokens=6
            )
        assert "does not support tools" in str(tools.value)
        with pytest.raises(openai.APIStatusError) as embed:
            client.embeddings.create(model=BASE_MODEL, input="hello")
        assert 400 <= embed.value.status_code < 600


def test_openai_errors_for_a_wrong_key_an_undeclared_model_and_the_rate_limit(
    sidecar: Sidecar, limited: Sidecar
) -> None:
    with pytest.raises(openai.AuthenticationError):
        oai(sidecar.public, key="not-a-key").models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        oai(sidecar.public).chat.completions.create(model="llama3.2:1b", messages=HELLO)
    assert "llama3.2:1b" in str(missing.value)
    client = oai(limited.public)
    errors: list[openai.APIError] = []
    for _ in range(2):  # the bucket holds one request: the second call at the latest is refused
        try:
            client.models.list()
        except openai.APIError as exc:
            errors.append(exc)
            break
    assert errors, "never rate limited"
    assert isinstance(errors[0], openai.RateLimitError), errors[0]
