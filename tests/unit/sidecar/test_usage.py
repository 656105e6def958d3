"""Token counts read from the end of an answer."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar.usage import Usage, last_line, parse_usage

FINAL = (
    b'{"model":"m","created_at":"2025-01-01T00:00:00Z","response":"","done":true,'
    b'"done_reason":"stop","context":[1,2,3],"total_duration":5000000000,'
    b'"load_duration":1000000,"prompt_eval_count":26,"prompt_eval_duration":130000000,'
    b'"eval_count":40,"eval_duration":2000000000}\n'
)
CHUNK = b'{"model":"m","response":"The","done":false}\n'


def test_the_final_ndjson_line() -> None:
    usage = parse_usage(CHUNK * 3 + FINAL)
    assert usage == Usage(26, 40, 2.0)
    assert usage is not None
    assert usage.tokens_per_second == 20.0


def test_a_non_streaming_body_without_newline() -> None:
    assert parse_usage(FINAL.rstrip()) == Usage(26, 40, 2.0)


def test_openai_usage_in_the_last_sse_event() -> None:
    tail = (
        b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,'
        b'"total_tokens":15}}\n\ndata: [DONE]\n\n'
    )
    usage = parse_usage(tail)
    assert usage == Usage(12, 3, None)
    assert usage is not None
    assert usage.tokens_per_second is None


@pytest.mark.parametrize(
    "tail",
    [
        b"",
        CHUNK * 3,
        FINAL + b'{"error":"boom"}\n',
        b'data: {"choices":[]}\n\ndata: [DONE]\n\n',
    ],
)
def test_answers_without_counts_in_their_last_line(tail: bytes) -> None:
    assert parse_usage(tail) is None


def test_only_the_tail_is_searched() -> None:
    assert parse_usage(b"x" * 100_000 + FINAL + b"\n \n") is not None
    assert parse_usage(FINAL + b" " * 5000) is None


def test_last_line() -> None:
    assert last_line(b"a\nb\n\n") == b"b"
    assert last_line(b"data: x\n\ndata: [DONE]\n\n") == b"data: x"
