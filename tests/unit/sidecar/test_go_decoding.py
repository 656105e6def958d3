"""Bodies are read as Ollama's Go decoder reads them, so the gateway checks what Ollama serves.

Go's ``encoding/json`` matches keys to struct fields case-insensitively (the last match
wins), merges repeated objects, refuses numbers its types cannot hold, and repairs broken
text instead of refusing it. Each case here is one where a plain JSON parser would see
another request than Ollama.
"""

from __future__ import annotations

import pytest

from ollama_operator.sidecar import validation as v
from ollama_operator.sidecar.errors import BadRequest, InvalidField


def reject(schema: type[v.RequestBody], body: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        v.parse_body(schema, body)
    return caught.value


@pytest.mark.parametrize(
    ("schema", "body", "field"),
    [
        (v.GenerateRequest, b'{"model": "allowed", "MODEL": "other"}', "model"),
        (v.GenerateRequest, b'{"MODEL": "other", "model": "allowed"}', "model"),
        (v.GenerateRequest, b'{"Model": "other"}', "model"),
        (v.ChatRequest, b'{"model": "m", "stream": false, "STREAM": true}', "stream"),
        # U+017F LONG S folds to "s" in Go (Unicode simple case folding)
        (v.ChatRequest, '{"model": "m", "\u017ftream": true}'.encode(), "stream"),
        # U+212A KELVIN SIGN folds to "k"
        (v.ChatRequest, '{"model": "m", "\u212aeep_alive": true}'.encode(), "keep_alive"),
        (v.ShowRequest, b'{"name": "allowed", "NAME": "other"}', "name"),
        (v.OpenAIChatRequest, b'{"model": "allowed", "mOdEl": "other"}', "model"),
        (v.GenerateRequest, b'{"model": "m", "Options": {"num_ctx": 1e30}}', "options"),
        (
            v.ChatRequest,
            b'{"model": "m", "messages": [{"role": "user", "Content": 5}]}',
            "messages[0].content",
        ),
    ],
)
def test_a_key_that_differs_from_a_field_only_in_case_is_refused(
    schema: type[v.RequestBody], body: bytes, field: str
) -> None:
    err = reject(schema, body)
    assert isinstance(err, InvalidField)
    assert err.message.startswith(f"{field}: ")
    assert "case" in err.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "options": {"num_ctx": 1e30}, "options": {"temperature": 1}}',
        b'{"model": "m", "messages": [{"images": 5}], "messages": [{"role": "user"}]}',
        b'{"model": "m", "\\u006fptions": {"num_ctx": 1e30}, "options": {}}',
    ],
)
def test_a_field_whose_repeats_go_would_merge_is_refused(body: bytes) -> None:
    err = reject(v.ChatRequest, body)
    assert isinstance(err, InvalidField)
    assert "given more than once" in err.message


def test_repeated_scalars_are_read_as_go_reads_them_the_last_one() -> None:
    parsed = v.parse_body(v.GenerateRequest, b'{"model": "a", "model": "b"}')
    assert parsed.requested_model() == "b"


@pytest.mark.parametrize(
    ("schema", "body", "field"),
    [
        (v.GenerateRequest, b'{"model": "m", "format": {"x": [1e400]}}', "format.x[0]"),
        (v.OpenAIChatRequest, b'{"model": "m", "temperature": -1e400}', "temperature"),
        (v.GenerateRequest, b'{"model": "m", "z": 1' + b"0" * 400 + b"}", "z"),
        (v.GenerateRequest, b'{"model": "m", "context": [9223372036854775808]}', "context[0]"),
        (v.OpenAIChatRequest, b'{"model": "m", "seed": -9223372036854775809}', "seed"),
        (v.OpenAIChatRequest, b'{"model": "m", "max_tokens": 99999999999999999999}', "max_tokens"),
        (v.EmbedRequest, b'{"model": "m", "dimensions": 18446744073709551616}', "dimensions"),
        (
            v.GenerateRequest,
            b'{"model": "m", "options": {"num_predict": 1e30}}',
            "options.num_predict",
        ),
        (
            v.GenerateRequest,
            b'{"model": "m", "options": {"num_ctx": 9223372036854775807}}',
            "options.num_ctx",
        ),
        (v.ChatRequest, b'{"model": "m", "options": {"seed": -1e19}}', "options.seed"),
    ],
)
def test_numbers_go_cannot_hold_are_refused(
    schema: type[v.RequestBody], body: bytes, field: str
) -> None:
    err = reject(schema, body)
    assert isinstance(err, InvalidField)
    assert err.message.startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (
            v.GenerateRequest,
            b'{"model": "m", "context": [9223372036854775807, -9223372036854775808]}',
        ),
        (v.OpenAIChatRequest, b'{"model": "m", "seed": 9223372036854775807}'),
        (v.GenerateRequest, b'{"model": "m", "options": {"seed": -9223372036854775808}}'),
        (v.GenerateRequest, b'{"model": "m", "options": {"num_ctx": 4096, "temperature": 1e300}}'),
        (v.GenerateRequest, b'{"model": "m", "format": {"x": 1e308, "y": 1e-400}}'),
    ],
)
def test_numbers_go_holds_are_accepted(schema: type[v.RequestBody], body: bytes) -> None:
    v.parse_body(schema, body)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b'"\\ud800"', "\ufffd"),
        (b'"a\\udc00b"', "a\ufffdb"),
        (b'"\\ud800\\ud83d\\ude00"', "\ufffd\U0001f600"),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\\\ud800"', "\\ud800"),
        (b'"a\xffb"', "a\ufffdb"),
        (b'"\xe2\x82x"', "\ufffd\ufffdx"),
        (b'"\xed\xa0\x80"', "\ufffd\ufffd\ufffd"),
    ],
)
def test_broken_text_is_repaired_as_go_repairs_it(raw: bytes, decoded: str) -> None:
    parsed = v.parse_body(v.GenerateRequest, b'{"model": "m", "prompt": ' + raw + b"}")
    assert isinstance(parsed, v.GenerateRequest)
    assert parsed.prompt == decoded


def test_a_lone_surrogate_in_the_model_is_the_model_go_reads() -> None:
    parsed = v.parse_body(v.GenerateRequest, b'{"model": "m\\udfff"}')
    assert parsed.requested_model() == "m\ufffd"


@pytest.mark.parametrize("body", [b'{"model": "m", "x": "\\ud800', b'{"model": "\xff}'])
def test_broken_text_that_is_also_broken_json_is_still_refused(body: bytes) -> None:
    assert reject(v.GenerateRequest, body).status == 400
