"""Every error a client of the gateway can receive, with its HTTP status.

The gateway answers in Ollama's own error shape, ``{"error": "<message>"}``, so
existing Ollama clients show the message; on the OpenAI-compatible routes
(``/v1/...``) it uses OpenAI's shape, ``{"error": {"message", "type", "code"}}``.
Errors that Ollama itself returns are passed through unchanged; the classes
below are the ones the gateway produces on its own::

    GatewayError                     (base; never raised itself)
    ├── BadRequest              400  the body is not what the endpoint accepts
    │   ├── InvalidJSON         400  the body is not JSON
    │   ├── InvalidBody         400  the body is JSON but not an object, or its
    │   │                            Content-Encoding does not decode
    │   ├── InvalidField        400  a field has the wrong type, is missing, is given
    │   │                            twice, or holds a number Go cannot hold ("model: ...")
    │   ├── InvalidPath         400  the model segment of /v1/models/{model} could leave
    │   │                            its route ('/', '..', '?', '#', control characters)
    │   └── MalformedRequest    400  the request line or a header line does not parse
    │                                (the answer never repeats the line)
    ├── Unauthorized            401  no API key, or one that is not in the keys file;
    │                                carries ``WWW-Authenticate: Bearer``
    ├── ModelManagementRefused  403  /api/pull, /api/push, /api/create, /api/copy,
    │                                /api/delete: models are declared in spec.models
    ├── CloudModelRefused       403  a cloud model where spec.ollama.cloud is Disabled
    ├── RouteNotFound           404  a path that is not part of the API
    ├── ModelNotFound           404  a model neither declared nor present in the pod
    ├── MethodNotAllowed        405  a known path with another method; carries ``Allow``
    ├── RequestTimeout          408  the body did not arrive within clients.timeouts.body
    ├── BodyTooLarge            413  the body is over gateway.maxBodyBytes
    ├── RateLimited             429  the key's token bucket is empty; carries
    │                                ``Retry-After`` and ``x-ratelimit-*``
    ├── AuthThrottled           429  too many failed authentications from the client's
    │                                address (any key refused); carries ``Retry-After``
    ├── InternalError           500  a bug in the gateway (logged with its traceback)
    ├── UpstreamUnavailable     502  Ollama refused or dropped the connection
    ├── QueueFull               503  every slot and every queue place is taken;
    │                                carries ``Retry-After``
    ├── CircuitOpen             503  Ollama failed repeatedly; the gateway fails fast
    │                                until the probe after circuitBreaker.openFor
    └── UpstreamTimeout         504  Ollama did not connect / answer / send in time

A stream that already started cannot change its status: a failure after the
first byte closes the connection instead (the client sees a truncated stream).

This module is pure: it builds messages and bodies; the gateway turns them into
responses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar


class GatewayError(Exception):
    """An error the gateway answers itself, with a status and a message for the client."""

    status: ClassVar[int] = 500
    #: Machine-readable code, used as OpenAI's ``error.code``.
    code: ClassVar[str] = "internal_error"
    #: OpenAI's ``error.type``.
    openai_type: ClassVar[str] = "api_error"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: Mapping[str, str] = headers or {}

    def body(self, *, openai: bool = False) -> bytes:
        """The JSON body: Ollama's shape, or OpenAI's for the ``/v1`` routes."""
        if openai:
            doc: object = {
                "error": {"message": self.message, "type": self.openai_type, "code": self.code}
            }
        else:
            doc = {"error": self.message}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


class BadRequest(GatewayError):
    """The request body is not what the endpoint accepts."""

    status = 400
    code = "bad_request"
    openai_type = "invalid_request_error"


class InvalidJSON(BadRequest):
    """The body does not parse as JSON."""

    code = "invalid_json"


class InvalidBody(BadRequest):
    """The body is valid JSON, but not an object."""

    code = "invalid_body"


class InvalidField(BadRequest):
    """A field has the wrong type, or a required one is missing; the message names it."""

    code = "invalid_field"


class InvalidPath(BadRequest):
    """A path segment the gateway would have to pass on to Ollama is not a plain name."""

    code = "invalid_path"


class MalformedRequest(BadRequest):
    """The HTTP request itself does not parse; answered without repeating any of it."""

    code = "malformed_request"


class Unauthorized(GatewayError):
    """No API key was presented, or an unknown one."""

    status = 401
    code = "invalid_api_key"
    openai_type = "authentication_error"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, {"WWW-Authenticate": "Bearer"})
        #: ``missing`` or ``invalid`` (the auth_failures_total label).
        self.reason = reason


class ModelManagementRefused(GatewayError):
    """A model management call: the OllamaServer declares models, clients do not pull them."""

    status = 403
    code = "model_management_refused"
    openai_type = "permission_error"


class CloudModelRefused(GatewayError):
    """A cloud model (Ollama forwards it to ollama.com) on a server that does not allow them."""

    status = 403
    code = "cloud_model_refused"
    openai_type = "permission_error"


class RouteNotFound(GatewayError):
    """A path outside the Ollama and OpenAI-compatible APIs."""

    status = 404
    code = "not_found"
    openai_type = "invalid_request_error"


class ModelNotFound(GatewayError):
    """A model that is neither declared in spec.models nor present in the pod."""

    status = 404
    code = "model_not_found"
    openai_type = "invalid_request_error"


class MethodNotAllowed(GatewayError):
    """A known path with a method it does not take."""

    status = 405
    code = "method_not_allowed"
    openai_type = "invalid_request_error"


class RequestTimeout(GatewayError):
    """The client did not send its whole body in time."""

    status = 408
    code = "request_timeout"
    openai_type = "invalid_request_error"


class BodyTooLarge(GatewayError):
    """The body is larger than gateway.maxBodyBytes."""

    status = 413
    code = "body_too_large"
    openai_type = "invalid_request_error"


class RateLimited(GatewayError):
    """The client's token bucket is empty."""

    status = 429
    code = "rate_limit_exceeded"
    openai_type = "rate_limit_error"


class AuthThrottled(GatewayError):
    """The client's address failed to authenticate too often; refused until it refills."""

    status = 429
    code = "too_many_auth_failures"
    openai_type = "rate_limit_error"


class InternalError(GatewayError):
    """A bug in the gateway; the traceback is logged, the client gets a generic message."""


class UpstreamUnavailable(GatewayError):
    """Ollama refused or dropped the connection before answering."""

    status = 502
    code = "upstream_unavailable"


class QueueFull(GatewayError):
    """Every concurrency slot and every queue place is taken."""

    status = 503
    code = "queue_full"


class CircuitOpen(GatewayError):
    """Ollama failed repeatedly; requests fail fast until a probe succeeds."""

    status = 503
    code = "circuit_open"


class UpstreamTimeout(GatewayError):
    """Ollama did not connect, answer, or send the next chunk in time."""

    status = 504
    code = "upstream_timeout"


def retry_after(seconds: float) -> str:
    """``Retry-After`` value: whole seconds, rounded up, at least 1."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return str(max(1, whole))


def method_not_allowed(method: str, path: str, allowed: frozenset[str]) -> MethodNotAllowed:
    """405 for a known path; ``Allow`` lists what it takes."""
    allow = ", ".join(sorted(allowed))
    return MethodNotAllowed(f"{method} is not allowed on {path}; use {allow}", {"Allow": allow})


def route_not_found(method: str, path: str) -> RouteNotFound:
    """404 for a path outside the API."""
    return RouteNotFound(f"{method} {path} is not an endpoint of the Ollama API")


def management_refused(path: str) -> ModelManagementRefused:
    """403 for /api/pull and friends."""
    return ModelManagementRefused(
        f"{path} is not available through the gateway: models are declared on the "
        "OllamaServer (spec.models) and pulled by the operator"
    )


def cloud_model_refused(model: str) -> CloudModelRefused:
    """403 for a cloud model on a server that does not allow them."""
    return CloudModelRefused(
        f'model "{model}" is a cloud model: Ollama would forward the request to ollama.com, '
        "and this OllamaServer does not allow that (spec.ollama.cloud is Disabled)"
    )


def model_not_found(model: str) -> ModelNotFound:
    """404 for a model the pod neither declares nor has."""
    return ModelNotFound(
        f'model "{model}" not found: it is not declared in the OllamaServer\'s spec.models'
    )


def body_too_large(limit: int) -> BodyTooLarge:
    """413 naming the limit."""
    return BodyTooLarge(f"request body is larger than {limit} bytes (gateway.maxBodyBytes)")


def missing_key() -> Unauthorized:
    """401 without any key."""
    return Unauthorized(
        "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'", "missing"
    )


def invalid_key() -> Unauthorized:
    """401 with a key that is not configured (the key itself is never repeated)."""
    return Unauthorized("invalid API key", "invalid")


def rate_limited(retry_after_s: float, headers: Mapping[str, str]) -> RateLimited:
    """429 with the bucket's headers and ``Retry-After``."""
    wait = retry_after(retry_after_s)
    return RateLimited(
        f"rate limit exceeded: retry in {wait}s",
        {**headers, "Retry-After": wait},
    )


def auth_throttled(retry_after_s: float) -> AuthThrottled:
    """429 for an address that guessed keys too often (the key, if any, is not looked at)."""
    wait = retry_after(retry_after_s)
    return AuthThrottled(
        f"too many failed authentications from this address: retry in {wait}s",
        {"Retry-After": wait},
    )


def queue_full(max_concurrent: int, max_queue: int) -> QueueFull:
    """503 when the queue in front of Ollama is full."""
    return QueueFull(
        f"gateway is busy: {max_concurrent} requests in flight and {max_queue} queued "
        "(gateway.maxConcurrent, gateway.maxQueue); retry later",
        {"Retry-After": "1"},
    )


def circuit_open(failures: int, retry_after_s: float) -> CircuitOpen:
    """503 while the circuit breaker is open."""
    wait = retry_after(retry_after_s)
    return CircuitOpen(
        f"Ollama failed {failures} times in a row; the gateway retries it in {wait}s",
        {"Retry-After": wait},
    )
