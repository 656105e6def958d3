"""Request bodies: what Ollama's Go structs would refuse is refused first, naming the field."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar import validation as v
from ollama_operator.sidecar.errors import BadRequest, InvalidBody, InvalidField, InvalidJSON


def reject(schema: type[v.RequestBody], body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        v.parse_body(schema, body)
    return caught.value


@pytest.mark.parametrize(
    ("schema", "body", "message"),
    [
        (v.GenerateRequest, b'{"model": 1}', "model: must be a string"),
        (v.GenerateRequest, b'{"model": "m", "stream": 1}', "stream: must be a boolean"),
        (v.GenerateRequest, b'{"model": "m", "raw": "true"}', "raw: must be a boolean"),
        (v.GenerateRequest, b'{"model": "m", "context": [1.5]}', "context[0]: must be an integer"),
        (v.GenerateRequest, b'{"model": "m", "images": "a"}', "images: must be an array"),
        (v.GenerateRequest, b'{"model": "m", "options": []}', "options: must be an object"),
        (v.GenerateRequest, b'{"model": "m", "think": 1}', "think: must be a boolean or a string"),
        (v.ChatRequest, b'{"model": "m", "messages": {}}', "messages: must be an array"),
        (v.ChatRequest, b'{"model": "m", "messages": [1]}', "messages[0]: must be an object"),
        (
            v.ChatRequest,
            b'{"model": "m", "messages": [{"role": "user", "content": null}, {"content": 2}]}',
            "messages[1].content: must be a string",
        ),
        (v.ChatRequest, b'{"model": "m", "tools": [1]}', "tools[0]: must be an object"),
        (v.EmbedRequest, b'{"model": "m", "input": [1]}', "input: must be a string or an array"),
        (v.EmbedRequest, b'{"model": "m", "dimensions": true}', "dimensions: must be an integer"),
        (v.ShowRequest, b'{"name": 3}', "name: must be a string"),
        (v.OpenAIChatRequest, b'{"model": "m", "temperature": "hot"}', "temperature: must be a"),
        (v.OpenAIChatRequest, b'{"model": "m", "temperature": true}', "temperature: must be a"),
        (v.OpenAIChatRequest, b'{"model": "m", "stop": [1]}', "stop: must be a string or"),
        (v.OpenAIChatRequest, b'{"model": "m", "max_tokens": 1.5}', "max_tokens: must be an int"),
        (v.OpenAICompletionRequest, b'{"model": "m", "prompt": ["a"]}', "prompt: must be a str"),
        (v.OpenAIEmbeddingRequest, b'{"model": "m", "input": 5}', "input: must be a string or"),
    ],
)
def test_wrong_types_name_the_field(schema: type[v.RequestBody], body: bytes, message: str) -> None:
    err = reject(schema, body)
    assert isinstance(err, InvalidField)
    assert err.message.startswith(message)
    assert err.status == 400


@pytest.mark.parametrize("body", [b"{", b"nope", b'{"a": 1} {}', b'{"a": NaN}', b'{"a": Infinity}'])
def test_malformed_json(body: bytes) -> None:
    err = reject(v.GenerateRequest, body)
    assert isinstance(err, InvalidJSON)
    assert err.message.startswith("invalid JSON in request body: ")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"1", b"null", b"true"])
def test_a_body_that_is_not_an_object(body: bytes) -> None:
    err = reject(v.ChatRequest, body)
    assert isinstance(err, InvalidBody)
    assert err.message == "request body must be a JSON object"


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_a_missing_body(body: bytes) -> None:
    assert reject(v.ChatRequest, body).message == "missing request body: send a JSON object"


def test_deep_nesting_is_refused_not_crashed_on() -> None:
    body = b'{"model": "m", "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert isinstance(reject(v.GenerateRequest, body), InvalidJSON)


def test_unknown_fields_are_kept_and_known_ones_typed() -> None:
    parsed = v.parse_body(
        v.GenerateRequest,
        b'{"model": "m", "prompt": "p", "keep_alive": "5m", "newer_option": {"x": [1]}}',
    )
    assert isinstance(parsed, v.GenerateRequest)
    assert parsed.prompt == "p"
    assert parsed.model_extra == {"newer_option": {"x": [1]}}


@pytest.mark.parametrize(
    ("schema", "body", "streams"),
    [
        (v.GenerateRequest, b'{"model": "m"}', True),
        (v.GenerateRequest, b'{"model": "m", "stream": null}', True),
        (v.GenerateRequest, b'{"model": "m", "stream": false}', False),
        (v.ChatRequest, b'{"model": "m"}', True),
        (v.ChatRequest, b'{"model": "m", "stream": false}', False),
        (v.OpenAIChatRequest, b'{"model": "m"}', False),
        (v.OpenAIChatRequest, b'{"model": "m", "stream": true}', True),
        (v.OpenAICompletionRequest, b'{"model": "m", "stream": true}', True),
        (v.EmbedRequest, b'{"model": "m", "stream": true}', False),
    ],
)
def test_stream_defaults_follow_ollama_and_openai(
    schema: type[v.RequestBody], body: bytes, streams: bool
) -> None:
    assert v.parse_body(schema, body).streams() is streams


@pytest.mark.parametrize(
    ("value", "ok"),
    [(b'"5m"', True), (b"300", True), (b"-1", True), (b"1.5", True), (b"true", False)],
)
def test_keep_alive_is_a_duration_or_a_number(value: bytes, ok: bool) -> None:
    body = b'{"model": "m", "keep_alive": ' + value + b"}"
    if ok:
        v.parse_body(v.ChatRequest, body)
    else:
        assert reject(v.ChatRequest, body).message.startswith("keep_alive: must be")


def test_require_model() -> None:
    assert v.require_model(v.parse_body(v.ShowRequest, b'{"name": "legacy"}')) == "legacy"
    for body in (b"{}", b'{"model": ""}', b'{"model": null}'):
        with pytest.raises(InvalidField, match="model: is required"):
            v.require_model(v.parse_body(v.GenerateRequest, body))


@pytest.mark.parametrize(
    ("loc", "path"),
    [(("model",), "model"), (("messages", 0, "content"), "messages[0].content"), ((1,), "[1]")],
)
def test_field_path(loc: tuple[int | str, ...], path: str) -> None:
    assert v.field_path(loc) == path
