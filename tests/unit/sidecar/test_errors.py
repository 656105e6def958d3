"""The catalogue of errors: every class documented, statuses, and both body shapes."""

from __future__ import annotations

import json

import pytest

from ollama_operator.sidecar import errors
from ollama_operator.sidecar.errors import GatewayError


def _all_errors() -> list[type[GatewayError]]:
    found: list[type[GatewayError]] = []
    todo = [GatewayError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _all_errors(), ids=lambda c: c.__name__)
def test_every_error_is_listed_with_its_status_in_the_module_docstring(
    cls: type[GatewayError],
) -> None:
    doc = errors.__doc__ or ""
    lines = [line for line in doc.splitlines() if f" {cls.__name__} " in f"{line} "]
    assert lines, f"{cls.__name__} is missing from the catalogue"
    if cls is not GatewayError:
        assert str(cls.status) in lines[0]


def test_ollama_shape() -> None:
    err = errors.model_not_found("mistral")
    assert json.loads(err.body()) == {
        "error": 'model "mistral" not found: it is not declared in the OllamaServer\'s spec.models'
    }
    assert err.status == 404


def test_openai_shape() -> None:
    err = errors.InvalidField("model: must be a string")
    assert json.loads(err.body(openai=True)) == {
        "error": {
            "message": "model: must be a string",
            "type": "invalid_request_error",
            "code": "invalid_field",
        }
    }


def test_non_ascii_messages_stay_readable() -> None:
    assert "é" in errors.route_not_found("GET", "/é").body().decode()


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (29.5, "30")]
)
def test_retry_after_rounds_up_to_whole_seconds(seconds: float, header: str) -> None:
    assert errors.retry_after(seconds) == header


def test_unauthorized_carries_www_authenticate_and_a_reason() -> None:
    missing, invalid = errors.missing_key(), errors.invalid_key()
    assert missing.headers == {"WWW-Authenticate": "Bearer"}
    assert (missing.reason, invalid.reason) == ("missing", "invalid")
    assert (missing.status, invalid.status) == (401, 401)


def test_rate_limited_keeps_the_bucket_headers() -> None:
    err = errors.rate_limited(2.5, {"x-ratelimit-limit": "10"})
    assert err.headers == {"x-ratelimit-limit": "10", "Retry-After": "3"}
    assert err.status == 429


def test_helpers_carry_the_headers_clients_need() -> None:
    assert errors.method_not_allowed("PUT", "/api/tags", frozenset({"GET", "HEAD"})).headers == {
        "Allow": "GET, HEAD"
    }
    assert errors.queue_full(8, 64).headers == {"Retry-After": "1"}
    assert errors.circuit_open(5, 12.2).headers == {"Retry-After": "13"}
    assert errors.body_too_large(1024).status == 413
    assert errors.management_refused("/api/pull").status == 403
