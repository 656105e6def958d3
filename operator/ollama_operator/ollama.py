"""One typed async client for Ollama's HTTP API, and what Ollama means by a model name.

The model agent, the sidecar's health checks and the tests all talk to
Ollama's management API; this module is the only place that knows its wire
format: which route takes which body, that a pull or create streams NDJSON
progress and reports failure *inside* a 200 stream (``{"error": "..."}``),
that ``keep_alive`` is a number of seconds or a Go duration (never ``"300"``),
that model parameters are typed (``0.2``, not ``"0.2"``), and that
``llama3.2`` names the same model as ``registry.ollama.ai/library/llama3.2:latest``.

Every failure surfaces as :class:`OllamaError` carrying Ollama's own message,
so callers can show users what Ollama said. The exception tree::

    OllamaError              Ollama answered with an error (status, or in a stream)
    ├── ModelNotFound        404: the model is not on this server
    └── OllamaUnavailable    no answer: refused, reset, timed out

It proxies nothing: the gateway forwards client traffic itself, byte for byte.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"


# --------------------------------------------------------------------------- names


@dataclass(frozen=True, slots=True)
class ModelName:
    """A model reference split as Ollama splits it, defaults filled in."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, raw: str) -> ModelName:
        """Parse ``[scheme://][host/][namespace/]model[:tag]`` (a tag follows the last ``/``)."""
        rest, tag = raw.strip(), ""
        colon, slash = rest.rfind(":"), rest.rfind("/")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
        host_and_namespace, _, model = rest.rpartition("/")
        host, _, namespace = host_and_namespace.rpartition("/")
        host = host.split("://", 1)[-1]
        return cls(
            host=host or DEFAULT_HOST,
            namespace=namespace or DEFAULT_NAMESPACE,
            model=model,
            tag=tag or DEFAULT_TAG,
        )

    def shortest(self) -> str:
        """Ollama's display form: default host and namespace dropped, tag always kept."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"


def normalize_name(raw: str) -> str:
    """The name as ``/api/tags`` lists it: ``llama3.2`` -> ``llama3.2:latest``.

    Ollama matches names case-insensitively, so this is also lower-cased: two
    references name the same model exactly when their normalised forms are equal.
    """
    return ModelName.parse(raw).shortest().lower()


# --------------------------------------------------------------------------- request values

_PLAIN_SECONDS = re.compile(r"^-?[0-9]+$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$")

#: Parameters Ollama reads as a list of strings (PARAMETER may repeat in a Modelfile).
LIST_PARAMETERS = frozenset({"stop"})


def keep_alive_value(value: str | float | None) -> str | int | float | None:
    """``keep_alive`` as Ollama accepts it: ``"300"`` becomes ``300``, ``"-1"`` becomes ``-1``.

    Ollama parses a JSON string as a Go duration, which needs a unit, so plain
    numbers must travel as JSON numbers.
    """
    if isinstance(value, str) and _PLAIN_SECONDS.match(value.strip()):
        return int(value)
    return value


def keep_alive_seconds(value: str | float | None) -> float | None:
    """Seconds a keep_alive keeps a model loaded; ``math.inf`` for negative; None when unset."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return math.inf if value < 0 else float(value)
    text = value.strip()
    if _PLAIN_SECONDS.match(text):
        return math.inf if int(text) < 0 else float(text)
    negative = text.startswith("-")
    total = 0.0
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for number, unit in re.findall(r"([0-9.]+)(ms|s|m|h)", text):
        total += float(number) * units[unit]
    return math.inf if negative else total


def parameter_value(key: str, raw: str) -> Any:
    """A Modelfile parameter typed as Ollama expects it in the create API."""
    if key in LIST_PARAMETERS:
        return [raw]
    text = raw.strip()
    if _INTEGER.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return raw


def typed_parameters(parameters: Mapping[str, str]) -> dict[str, Any]:
    """All of a model's declared parameters, typed (numbers as numbers)."""
    return {key: parameter_value(key, value) for key, value in parameters.items()}


# --------------------------------------------------------------------------- errors


class OllamaError(Exception):
    """Ollama reported an error; ``message`` is Ollama's own text."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ModelNotFound(OllamaError):
    """Ollama answered 404 for a model."""


class OllamaUnavailable(OllamaError):
    """Ollama did not answer: connection refused or reset, or a timeout."""


# --------------------------------------------------------------------------- responses


class _Wire(BaseModel):
    """Base of response types: Ollama adds fields over time; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ModelDetails(_Wire):
    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListedModel(_Wire):
    """An entry of ``GET /api/tags``: a model on disk."""

    name: str
    model: str = ""
    modified_at: str = ""
    size: int = 0
    digest: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)


class RunningModel(_Wire):
    """An entry of ``GET /api/ps``: a model in memory."""

    name: str
    model: str = ""
    size: int = 0
    digest: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)
    expires_at: str = ""
    size_vram: int = 0
    context_length: int = 0


class ShowResponse(_Wire):
    """``POST /api/show``."""

    modelfile: str = ""
    parameters: str = ""
    template: str = ""
    system: str = ""
    details: ModelDetails = Field(default_factory=ModelDetails)
    model_info: dict[str, Any] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)
    modified_at: str = ""


class ProgressEvent(_Wire):
    """One line of a pull, push or create stream."""

    status: str = ""
    digest: str = ""
    total: int = 0
    completed: int = 0


class GenerateResponse(_Wire):
    """``POST /api/generate`` without streaming (durations in nanoseconds)."""

    model: str = ""
    created_at: str = ""
    response: str = ""
    done: bool = False
    done_reason: str = ""
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0


# --------------------------------------------------------------------------- client


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``request``: a whole short call; ``load``: loading a model into memory;
    ``stream_read``: silence tolerated inside a pull/create stream (the agent's own
    stall detection is stricter)."""

    connect: float = 5.0
    request: float = 30.0
    load: float = 600.0
    stream_read: float = 600.0


class OllamaClient:
    """Async client of one Ollama server.

    Pass an ``aiohttp.ClientSession`` to share a connection pool; otherwise the
    client opens its own on first use and closes it in :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession | None = None,
        *,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts or Timeouts()
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> OllamaClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ---- calls --------------------------------------------------------------------------

    async def version(self) -> str:
        """``GET /api/version``: Ollama's version string."""
        body = await self._call("GET", "/api/version")
        return str(body.get("version", ""))

    async def tags(self) -> list[ListedModel]:
        """``GET /api/tags``: models on disk."""
        body = await self._call("GET", "/api/tags")
        return [ListedModel.model_validate(m) for m in body.get("models") or []]

    async def ps(self) -> list[RunningModel]:
        """``GET /api/ps``: models in memory."""
        body = await self._call("GET", "/api/ps")
        return [RunningModel.model_validate(m) for m in body.get("models") or []]

    async def show(self, model: str) -> ShowResponse:
        """``POST /api/show``; raises :class:`ModelNotFound`."""
        body = await self._call("POST", "/api/show", {"model": model})
        return ShowResponse.model_validate(body)

    async def delete(self, model: str) -> None:
        """``DELETE /api/delete``; raises :class:`ModelNotFound`."""
        await self._call("DELETE", "/api/delete", {"model": model})

    def pull(self, model: str, *, insecure: bool = False) -> AsyncGenerator[ProgressEvent, None]:
        """``POST /api/pull``: progress events; :class:`OllamaError` when the pull fails.

        Close the iterator (``contextlib.aclosing``) to abort the pull.
        """
        body: dict[str, Any] = {"model": model, "stream": True}
        if insecure:
            body["insecure"] = True
        return self._progress("/api/pull", body)

    def create(
        self,
        model: str,
        *,
        from_: str,
        system: str | None = None,
        template: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> AsyncGenerator[ProgressEvent, None]:
        """``POST /api/create`` from an existing model; progress as for :meth:`pull`.

        ``parameters`` are sent as given: type them first (:func:`typed_parameters`).
        """
        body: dict[str, Any] = {"model": model, "from": from_, "stream": True}
        if system is not None:
            body["system"] = system
        if template is not None:
            body["template"] = template
        if parameters:
            body["parameters"] = dict(parameters)
        return self._progress("/api/create", body)

    async def generate(
        self,
        model: str,
        prompt: str = "",
        *,
        keep_alive: str | float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> GenerateResponse:
        """``POST /api/generate`` without streaming.

        An empty prompt only loads the model (``done_reason: load``), or unloads
        it when ``keep_alive`` is 0 — which is how the agent preloads models.
        """
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": False}
        wire_keep_alive = keep_alive_value(keep_alive)
        if wire_keep_alive is not None:
            body["keep_alive"] = wire_keep_alive
        if options:
            body["options"] = dict(options)
        answer = await self._call("POST", "/api/generate", body, seconds=self.timeouts.load)
        return GenerateResponse.model_validate(answer)

    async def load(self, model: str, keep_alive: str | float | None = None) -> GenerateResponse:
        """Load ``model`` into memory (an empty generate)."""
        return await self.generate(model, keep_alive=keep_alive)

    async def unload(self, model: str) -> None:
        """Drop ``model`` from memory now."""
        await self.generate(model, keep_alive=0)

    # ---- plumbing -----------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    def _timeout(self, total: float | None, read: float | None = None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, connect=self.timeouts.connect, sock_read=read)

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """One request with a JSON answer (or none); errors raised as OllamaError."""
        try:
            async with self._http().request(
                method,
                self.base_url + path,
                json=body,
                timeout=self._timeout(seconds or self.timeouts.request),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise error_from_response(response.status, text)
                return parse_object(text)
        except aiohttp.ClientError as exc:
            raise OllamaUnavailable(f"{method} {path}: {describe(exc)}") from exc
        except TimeoutError as exc:
            raise OllamaUnavailable(f"{method} {path}: timed out") from exc

    async def _progress(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncGenerator[ProgressEvent, None]:
        """Stream NDJSON progress; an ``error`` line becomes an OllamaError."""
        timeout = self._timeout(None, self.timeouts.stream_read)
        try:
            async with self._http().post(
                self.base_url + path, json=body, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise error_from_response(response.status, await response.text())
                async for line in response.content:
                    if line.strip():
                        yield progress_from_line(line)
        except aiohttp.ClientError as exc:
            raise OllamaUnavailable(f"POST {path}: {describe(exc)}") from exc
        except TimeoutError as exc:
            raise OllamaUnavailable(f"POST {path}: no data for {timeout.sock_read}s") from exc


# --------------------------------------------------------------------------- parsing


def parse_object(text: str) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object (delete/copy answer nothing)."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OllamaError(f"unexpected answer from Ollama: {text[:200]!r}") from exc
    if not isinstance(value, dict):
        raise OllamaError(f"unexpected answer from Ollama: {text[:200]!r}")
    return value


def error_message(text: str) -> str:
    """Ollama's error text from a body ``{"error": "..."}`` (or OpenAI's nested shape)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip() or "no error message"
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return text.strip()


def error_from_response(status: int, text: str) -> OllamaError:
    message = error_message(text)
    if status == 404:
        return ModelNotFound(message, status=status)
    return OllamaError(message, status=status)


def progress_from_line(line: bytes) -> ProgressEvent:
    """One NDJSON progress line; raises OllamaError for ``{"error": ...}``."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise OllamaError(f"unexpected line from Ollama: {line[:200]!r}") from exc
    if not isinstance(value, dict):
        raise OllamaError(f"unexpected line from Ollama: {line[:200]!r}")
    if "error" in value:
        status = value.get("status")
        raise OllamaError(str(value["error"]), status=status if isinstance(status, int) else None)
    return ProgressEvent.model_validate(value)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a transport error."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "connection closed mid-answer"
    return type(exc).__name__
