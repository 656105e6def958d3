"""An in-process stand-in for Ollama's HTTP API, faithful to its wire format.

Tests of the gateway and the model agent need an Ollama that answers exactly
as the real server does (same routes, same JSON field names and order, same
NDJSON and SSE framing, nanosecond durations, the same error texts, errors of
a pull arriving *inside* a 200 stream) and that a test can steer: slow or
broken streams, failing requests, pulls that crawl, hang or fail, a server
that restarts and forgets what it had loaded. Real Ollama cannot be built
here, so this module is the contract. The reference is Ollama v0.11.4
(``server/routes.go``, ``server/images.go``, ``api/types.go``,
``openai/openai.go``); where the real server is odd (generate says
``model 'x' not found`` while chat says ``model "x" not found, try pulling it
first``) the emulator is odd in the same way, on purpose.

It listens on 127.0.0.1 only, on a free port::

    async with OllamaEmulator() as ollama:
        ollama.add_to_registry("llama3.2:1b")
        ... talk to ollama.url ...

No inference happens: replies are words from :attr:`OllamaEmulator.reply`,
embeddings are derived from a hash of the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from aiohttp import web

OLLAMA_VERSION = "0.11.4"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
DEFAULT_KEEP_ALIVE = 300.0
#: What Ollama's Duration becomes for a negative keep_alive: "forever".
FOREVER = float("inf")
LOCALHOST = "127.0.0.1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = dict[str, Any]


# --------------------------------------------------------------------------- names


def parse_name(raw: str) -> tuple[str, str, str, str]:
    """Split ``[scheme://][host/][namespace/]model[:tag]`` the way Ollama's ParseName does.

    Missing parts get Ollama's defaults (registry.ollama.ai, library, latest).
    """
    rest, tag = raw, ""
    if rest.rfind(":") > rest.rfind("/"):
        rest, _, tag = rest.rpartition(":")
    parts = rest.split("/")
    model = parts[-1]
    namespace = parts[-2] if len(parts) >= 2 else ""
    host = "/".join(parts[:-2]) if len(parts) >= 3 else ""
    if "://" in host:
        host = host.split("://", 1)[1]
    return (host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG)


def display_name(raw: str) -> str:
    """The shortest form Ollama shows (DisplayShortest): ``llama3.2`` -> ``llama3.2:latest``."""
    host, namespace, model, tag = parse_name(raw)
    if host.lower() != DEFAULT_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.lower() != DEFAULT_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def name_key(raw: str) -> str:
    """Identity of a model name: Ollama matches names case-insensitively."""
    return display_name(raw).lower()


def valid_name(raw: str) -> bool:
    """Whether Ollama would accept the name at all (non-empty model, sane characters)."""
    if not raw or len(raw) > 350:
        return False
    _, namespace, model, tag = parse_name(raw)
    part = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
    return all(part.match(p) for p in (namespace, model, tag))


# --------------------------------------------------------------------------- time & durations


def go_time(moment: datetime) -> str:
    """RFC 3339 with fractional seconds and trailing zeros trimmed, like Go's time.Time JSON."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def now() -> datetime:
    return datetime.now(UTC)


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError with Go's message otherwise."""
    sign, body = (-1.0, text[1:]) if text.startswith("-") else (1.0, text.lstrip("+"))
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        if body and re.fullmatch(r"[0-9.]+", body):
            raise ValueError(f'time: missing unit in duration "{text}"')
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def keep_alive_seconds(value: Any) -> float:
    """Ollama's api.Duration: a number of seconds or a Go duration; negative means forever."""
    if value is None:
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, bool):
        raise ValueError("Unsupported type: 'bool'")
    if isinstance(value, int | float):
        return FOREVER if value < 0 else float(int(value))
    if isinstance(value, str):
        seconds = parse_go_duration(value)
        return FOREVER if seconds < 0 else seconds
    raise ValueError(f"Unsupported type: '{type(value).__name__}'")


def ns(seconds: float) -> int:
    """Nanoseconds, as Ollama reports every *_duration field."""
    return max(1, int(seconds * 1e9))


# --------------------------------------------------------------------------- options

#: Option types as Ollama's Options.FromMap checks them when a model is used.
_INT_OPTIONS = frozenset(
    {
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "mirostat",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
    }
)
_FLOAT_OPTIONS = frozenset(
    {
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat_tau",
        "mirostat_eta",
    }
)
_BOOL_OPTIONS = frozenset({"numa", "use_mmap", "penalize_newline"})


def option_error(options: Mapping[str, Any]) -> str | None:
    """Ollama's message for the first option of the wrong JSON type, or None."""
    for key, value in options.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in _INT_OPTIONS and not number:
            return f'option "{key}" must be of type integer'
        if key in _FLOAT_OPTIONS and not number:
            return f'option "{key}" must be of type float32'
        if key in _BOOL_OPTIONS and not isinstance(value, bool):
            return f'option "{key}" must be of type boolean'
        if key == "stop" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return f'option "{key}" must be of type array'
    return None


# --------------------------------------------------------------------------- models


@dataclass
class Layer:
    """One blob of a model manifest."""

    digest: str
    size: int
    media_type: str = "application/vnd.ollama.image.model"


@dataclass
class EmulatedModel:
    """A model as the registry serves it and as Ollama stores it once pulled or created."""

    name: str
    layers: list[Layer]
    family: str = "llama"
    parameter_size: str = "1.2B"
    quantization_level: str = "Q8_0"
    system: str = ""
    template: str = "{{ .Prompt }}"
    parameters: dict[str, Any] = field(default_factory=dict)
    parent_model: str = ""
    capabilities: list[str] = field(default_factory=lambda: ["completion"])
    modified_at: datetime = field(default_factory=now)

    @classmethod
    def fake(
        cls, name: str, *, size: int = 4_000_000, layers: int = 2, revision: int = 0, **kw: Any
    ) -> EmulatedModel:
        """A model of ``size`` bytes spread over ``layers`` blobs, with stable digests."""
        sizes = [size // layers] * layers
        sizes[0] += size - sum(sizes)
        blobs = [
            Layer(blob_digest(f"{name_key(name)}/{revision}/{i}"), n) for i, n in enumerate(sizes)
        ]
        return cls(name=display_name(name), layers=blobs, **kw)

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def digest(self) -> str:
        """Manifest digest as /api/tags shows it: 64 hex characters, no ``sha256:`` prefix."""
        manifest = json.dumps([[layer.digest, layer.size] for layer in self.layers])
        config = json.dumps([self.system, self.template, self.parameters], sort_keys=True)
        return hashlib.sha256((manifest + config).encode()).hexdigest()

    def details(self) -> JSON:
        return {
            "parent_model": self.parent_model,
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization_level,
        }

    def clone(self, name: str) -> EmulatedModel:
        return EmulatedModel(
            name=display_name(name),
            layers=list(self.layers),
            family=self.family,
            parameter_size=self.parameter_size,
            quantization_level=self.quantization_level,
            system=self.system,
            template=self.template,
            parameters=dict(self.parameters),
            parent_model=self.parent_model,
            capabilities=list(self.capabilities),
        )


def blob_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class PullPlan:
    """How pulls of one model behave.

    ``chunks``: progress events per layer; ``delay``: seconds between events;
    ``stalls``: how many of the next pulls hang (no more bytes, connection
    kept open) after ``stall_after`` progress events; ``error`` with
    ``failures``: how many of the next pulls end with that in-stream error
    after the manifest (``failures=-1``: every pull).
    """

    chunks: int = 4
    delay: float = 0.0
    stalls: int = 0
    stall_after: int = 1
    error: str | None = None
    failures: int = -1


@dataclass
class Loaded:
    """A model in memory, as /api/ps reports it."""

    model: EmulatedModel
    expires_at: datetime
    context_length: int = 4096


@dataclass
class RecordedRequest:
    """A request the emulator received (for assertions on what the gateway forwarded)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Failure:
    remaining: int
    status: int
    error: str
    path: str | None


# --------------------------------------------------------------------------- emulator


class OllamaEmulator:
    """State and knobs of one emulated Ollama server; also its aiohttp app and listener."""

    def __init__(
        self,
        *,
        registry: Iterable[str | EmulatedModel] = (),
        installed: Iterable[str | EmulatedModel] = (),
        version: str = OLLAMA_VERSION,
    ) -> None:
        self.version = version
        #: What pulls can fetch, keyed by :func:`name_key`.
        self.registry: dict[str, EmulatedModel] = {}
        #: What /api/tags lists.
        self.installed: dict[str, EmulatedModel] = {}
        #: What /api/ps lists.
        self.loaded: dict[str, Loaded] = {}
        #: Bytes of each blob already on disk (partial pulls resume from here).
        self.blobs: dict[str, int] = {}
        self.pull_plans: dict[str, PullPlan] = {}
        #: Words the fake model answers with, one per stream chunk, cycling.
        self.reply = "The sky is blue because of Rayleigh scattering ."
        #: Content chunks in a streamed generate/chat answer (plus the final done chunk).
        self.stream_chunks = 3
        #: Seconds between two chunks of a streamed answer.
        self.chunk_delay = 0.0
        #: Seconds before an inference route sends its status line.
        self.first_byte_delay = 0.0
        #: Seconds a model takes to load into memory (reported as load_duration).
        self.load_delay = 0.0
        self.embedding_size = 8
        self.requests: list[RecordedRequest] = []
        #: Streams whose client went away before the last chunk.
        self.cancelled_streams = 0
        #: Inference requests being served right now, and the most seen at once.
        self.in_flight = 0
        self.max_in_flight = 0
        self.restarts = 0
        self._failures: list[_Failure] = []
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        for item in registry:
            self.add_to_registry(item)
        for item in installed:
            self.install(item)

    # ---- steering -------------------------------------------------------------------------

    def add_to_registry(self, model: str | EmulatedModel, **kw: Any) -> EmulatedModel:
        """Make ``model`` pullable; extra keywords go to :meth:`EmulatedModel.fake`."""
        record = model if isinstance(model, EmulatedModel) else EmulatedModel.fake(model, **kw)
        self.registry[name_key(record.name)] = record
        return record

    def publish_new_revision(self, name: str, **kw: Any) -> EmulatedModel:
        """Move the registry's tag to new content (a new digest), as a re-pushed tag does."""
        current = self.registry.get(name_key(name))
        revision = 1 + (int(current.parameters.get("_revision", 0)) if current else 0)
        record = EmulatedModel.fake(name, revision=revision, **kw)
        record.parameters["_revision"] = revision
        return self.add_to_registry(record)

    def remove_from_registry(self, name: str) -> None:
        self.registry.pop(name_key(name), None)

    def install(self, model: str | EmulatedModel, **kw: Any) -> EmulatedModel:
        """Put a model on disk as if it had been pulled (it need not be in the registry)."""
        record = model if isinstance(model, EmulatedModel) else EmulatedModel.fake(model, **kw)
        self.installed[name_key(record.name)] = record
        for layer in record.layers:
            self.blobs[layer.digest] = layer.size
        return record

    def uninstall(self, name: str) -> None:
        """Delete a model behind everyone's back (like ``ollama rm`` from a shell)."""
        self.installed.pop(name_key(name), None)
        self.loaded.pop(name_key(name), None)

    def set_pull(self, name: str, **kw: Any) -> PullPlan:
        """Steer pulls of ``name``; keywords are :class:`PullPlan` fields."""
        plan = PullPlan(**kw)
        self.pull_plans[name_key(name)] = plan
        return plan

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        error: str = "internal error",
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` only, if given) with an error."""
        self._failures.append(_Failure(count, status, error, path))

    def release_stalls(self) -> None:
        """End every hanging pull (their streams close without ``success``)."""
        self._released.set()
        self._released = asyncio.Event()

    def restart(self) -> None:
        """What an Ollama restart looks like from outside: every loaded model is gone."""
        self.loaded.clear()
        self.restarts += 1

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def is_loaded(self, name: str) -> bool:
        self._expire()
        return name_key(name) in self.loaded

    # ---- listening ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the emulator is not listening; use 'async with' or start()")
        return f"http://{LOCALHOST}:{self._port}"

    async def start(self) -> None:
        """Listen on 127.0.0.1: a free port the first time, the same port after stop()."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOCALHOST, self._port))
        self._port = sock.getsockname()[1]
        runner = web.AppRunner(
            self.make_app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening (connections are refused, as when Ollama is down). Idempotent."""
        runner, self._runner = self._runner, None
        self.release_stalls()
        if runner is not None:
            await runner.cleanup()

    async def crash(self, downtime: float = 0.0) -> None:
        """Go down for ``downtime`` seconds and come back with nothing loaded."""
        await self.stop()
        self.restart()
        if downtime:
            await asyncio.sleep(downtime)
        await self.start()

    async def __aenter__(self) -> OllamaEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- app ------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._inject_failures, self._not_found])
        r = app.router
        r.add_get("/", self._root)
        r.add_get("/api/version", self._version)
        r.add_get("/api/tags", self._tags)
        r.add_get("/api/ps", self._ps)
        r.add_post("/api/show", self._show)
        r.add_post("/api/generate", self._generate)
        r.add_post("/api/chat", self._chat)
        r.add_post("/api/embed", self._embed)
        r.add_post("/api/embeddings", self._embeddings)
        r.add_post("/api/pull", self._pull)
        r.add_post("/api/push", self._push)
        r.add_post("/api/create", self._create)
        r.add_delete("/api/delete", self._delete)
        r.add_post("/api/copy", self._copy)
        r.add_post("/v1/chat/completions", self._openai_chat)
        r.add_post("/v1/completions", self._openai_completions)
        r.add_post("/v1/embeddings", self._openai_embeddings)
        r.add_get("/v1/models", self._openai_models)
        r.add_get("/v1/models/{model:.+}", self._openai_model)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        return await handler(request)

    @web.middleware
    async def _inject_failures(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for failure in self._failures:
            if failure.remaining and failure.path in (None, request.path):
                failure.remaining -= 1
                self._failures = [f for f in self._failures if f.remaining]
                return _json({"error": failure.error}, failure.status)
        return await handler(request)

    @web.middleware
    async def _not_found(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(status=404, text="404 page not found")
        except web.HTTPMethodNotAllowed:
            return web.Response(status=405, text="405 method not allowed")

    # ---- helpers --------------------------------------------------------------------------

    def _expire(self) -> None:
        moment = now()
        for key in [k for k, v in self.loaded.items() if v.expires_at <= moment]:
            del self.loaded[key]

    def _find(self, raw: str) -> EmulatedModel | None:
        return self.installed.get(name_key(raw)) if valid_name(raw) else None

    async def _load(self, model: EmulatedModel, keep_alive: float, options: JSON) -> str | None:
        """Load ``model`` for ``keep_alive`` seconds; Ollama's error text if it cannot."""
        error = option_error({**model.parameters, **options})
        if error:
            return error
        self._expire()
        key = name_key(model.name)
        if key not in self.loaded and self.load_delay:
            await asyncio.sleep(self.load_delay)
        if keep_alive == 0:
            self.loaded.pop(key, None)
            return None
        expires = (
            datetime(2318, 1, 1, tzinfo=UTC)
            if math.isinf(keep_alive)
            else now() + timedelta(seconds=keep_alive)
        )
        self.loaded[key] = Loaded(model, expires)
        return None

    def _words(self, count: int) -> list[str]:
        words = self.reply.split() or ["ok"]
        return [(" " if i else "") + words[i % len(words)] for i in range(count)]

    def _embedding(self, text: str) -> list[float]:
        seed = hashlib.sha256(text.encode()).digest()
        raw = [(seed[i % len(seed)] - 127.5) / 127.5 for i in range(self.embedding_size)]
        norm = math.sqrt(sum(v * v for v in raw)) or 1.0
        return [v / norm for v in raw]

    @contextlib.asynccontextmanager
    async def _inference(self) -> AsyncIterator[None]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.first_byte_delay:
                await asyncio.sleep(self.first_byte_delay)
            yield
        finally:
            self.in_flight -= 1

    async def _stream(
        self, request: web.Request, items: AsyncIterator[JSON], *, sse: bool = False
    ) -> web.StreamResponse:
        """Write ``items`` as NDJSON (or SSE), counting a client that left mid-stream."""
        response = web.StreamResponse()
        response.content_type = "text/event-stream" if sse else "application/x-ndjson"
        finished = False
        try:
            await response.prepare(request)
            async for item in items:
                line = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
                await response.write((f"data: {line}\n\n" if sse else line + "\n").encode())
            if sse:
                await response.write(b"data: [DONE]\n\n")
            finished = True
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            if not finished:
                self.cancelled_streams += 1
            raise
        return response

    # ---- native routes ----------------------------------------------------------------------

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return _json({"version": self.version})

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        models = sorted(self.installed.values(), key=lambda m: m.modified_at, reverse=True)
        return _json({"models": [_list_entry(m) for m in models]})

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        self._expire()
        loaded = sorted(self.loaded.values(), key=lambda m: m.expires_at, reverse=True)
        return _json({"models": [_ps_entry(m) for m in loaded]})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model") or body.get("name") or "")
        if not name:
            return _json({"error": "model is required"}, 400)
        model = self._find(name)
        if model is None:
            return _json({"error": f"model '{name}' not found"}, 404)
        return _json(_show_entry(model))

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model", ""))
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        model = self._find(name)
        if model is None:
            return _json({"error": f"model '{name}' not found"}, 404)
        prompt = str(body.get("prompt") or "")
        if not prompt and body.get("keep_alive") is not None and keep_alive == 0:
            self.loaded.pop(name_key(name), None)
            return _json(_generate_chunk(name, "", done=True, done_reason="unload"))
        async with self._inference():
            failed = await self._load(model, keep_alive, dict(body.get("options") or {}))
            if failed:
                return _json({"error": failed}, 500)
            loaded_at = time.monotonic()
            if not prompt:
                return _json(_generate_chunk(name, "", done=True, done_reason="load"))
            words = self._words(self.stream_chunks)
            stats = _Stats(started, loaded_at, len(prompt.split()) + 10, len(words))
            if body.get("stream") is False:
                await asyncio.sleep(self.chunk_delay * len(words))
                final = _generate_chunk(name, "".join(words), done=True, done_reason="stop")
                return _json({**final, "context": list(range(1, 12)), **stats.done()})
            return await self._stream(request, self._generate_stream(name, words, stats))

    async def _generate_stream(
        self, name: str, words: list[str], stats: _Stats
    ) -> AsyncIterator[JSON]:
        for i, word in enumerate(words):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield _generate_chunk(name, word, done=False)
        if self.chunk_delay:
            await asyncio.sleep(self.chunk_delay)
        final = _generate_chunk(name, "", done=True, done_reason="stop")
        yield {**final, "context": list(range(1, 12)), **stats.done()}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model", ""))
        try:
            keep_alive = keep_alive_seconds(body.get("keep_alive"))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        messages = body.get("messages") or []
        if not messages and body.get("keep_alive") is not None and keep_alive == 0:
            if self._find(name) is None:
                return _json({"error": f"model '{name}' not found"}, 404)
            self.loaded.pop(name_key(name), None)
            return _json(_chat_chunk(name, "", done=True, done_reason="unload"))
        if not valid_name(name):
            return _json({"error": "model is required"}, 400)
        model = self._find(name)
        if model is None:
            return _json({"error": f'model "{name}" not found, try pulling it first'}, 404)
        async with self._inference():
            failed = await self._load(model, keep_alive, dict(body.get("options") or {}))
            if failed:
                return _json({"error": failed}, 500)
            loaded_at = time.monotonic()
            if not messages:
                return _json(_chat_chunk(name, "", done=True, done_reason="load"))
            words = self._words(self.stream_chunks)
            prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages)
            stats = _Stats(started, loaded_at, prompt_words + 10, len(words))
            if body.get("stream") is False:
                await asyncio.sleep(self.chunk_delay * len(words))
                final = _chat_chunk(name, "".join(words), done=True, done_reason="stop")
                return _json({**final, **stats.done()})
            return await self._stream(request, self._chat_stream(name, words, stats))

    async def _chat_stream(self, name: str, words: list[str], stats: _Stats) -> AsyncIterator[JSON]:
        for i, word in enumerate(words):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield _chat_chunk(name, word, done=False)
        if self.chunk_delay:
            await asyncio.sleep(self.chunk_delay)
        yield {**_chat_chunk(name, "", done=True, done_reason="stop"), **stats.done()}

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model", ""))
        raw = body.get("input")
        if isinstance(raw, list) and not all(isinstance(v, str) for v in raw):
            return _json({"error": "invalid input type"}, 400)
        if raw is not None and not isinstance(raw, str | list):
            return _json({"error": "invalid input type"}, 400)
        inputs = [raw] if isinstance(raw, str) and raw else list(raw or [])
        model = self._find(name)
        if model is None:
            return _json({"error": f'model "{name}" not found, try pulling it first'}, 404)
        async with self._inference():
            try:
                keep_alive = keep_alive_seconds(body.get("keep_alive"))
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            failed = await self._load(model, keep_alive, dict(body.get("options") or {}))
            if failed:
                return _json({"error": failed}, 500)
            loaded_at = time.monotonic()
            if not inputs:
                return _json({"model": name, "embeddings": []})
            return _json(
                {
                    "model": name,
                    "embeddings": [self._embedding(text) for text in inputs],
                    "total_duration": ns(time.monotonic() - started),
                    "load_duration": ns(loaded_at - started),
                    "prompt_eval_count": sum(len(t.split()) for t in inputs),
                }
            )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model", ""))
        if not valid_name(name):
            return _json({"error": "model is required"}, 400)
        model = self._find(name)
        if model is None:
            return _json({"error": f'model "{name}" not found, try pulling it first'}, 404)
        async with self._inference():
            try:
                keep_alive = keep_alive_seconds(body.get("keep_alive"))
            except ValueError as exc:
                return _json({"error": str(exc)}, 400)
            failed = await self._load(model, keep_alive, dict(body.get("options") or {}))
            if failed:
                return _json({"error": failed}, 500)
            prompt = str(body.get("prompt") or "")
            return _json({"embedding": self._embedding(prompt) if prompt else []})

    # ---- model management -------------------------------------------------------------------

    async def _pull(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model") or body.get("name") or "")
        if not valid_name(name):
            return _json({"error": "invalid model name"}, 400)
        events = self._pull_events(name)
        if body.get("stream") is False:
            return await _wait_for_stream(events)
        return await self._stream(request, events)

    async def _pull_events(self, name: str) -> AsyncIterator[JSON]:
        """PullModel's progress: manifest, per-layer bytes, verify, write, success."""
        key = name_key(name)
        plan = self.pull_plans.get(key, PullPlan())
        yield {"status": "pulling manifest"}
        source = self.registry.get(key)
        if source is None:
            yield {"error": "pull model manifest: file does not exist"}
            return
        if plan.error is not None and plan.failures != 0:
            plan.failures -= 1 if plan.failures > 0 else 0
            yield {"error": plan.error}
            return
        stall = plan.stalls > 0
        if stall:
            plan.stalls -= 1
        sent = 0
        for layer in source.layers:
            progress = self._pull_layer(layer, plan)
            while True:
                if stall and sent >= plan.stall_after:
                    await self._released.wait()
                    return
                try:
                    event = await anext(progress)
                except StopAsyncIteration:
                    break
                sent += 1
                yield event
        yield {"status": "verifying sha256 digest"}
        yield {"status": "writing manifest"}
        self.installed[key] = source.clone(source.name)
        self.installed[key].modified_at = now()
        yield {"status": "success"}

    async def _pull_layer(self, layer: Layer, plan: PullPlan) -> AsyncIterator[JSON]:
        status = f"pulling {layer.digest[7:19]}"
        have = self.blobs.get(layer.digest, 0)
        if have >= layer.size:
            yield _progress(status, layer, layer.size)
            return
        step = max(1, math.ceil(layer.size / max(1, plan.chunks)))
        while have < layer.size:
            if plan.delay:
                await asyncio.sleep(plan.delay)
            have = min(layer.size, have + step)
            self.blobs[layer.digest] = have
            yield _progress(status, layer, have)

    async def _push(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model") or body.get("name") or "")
        if not name:
            return _json({"error": "model is required"}, 400)

        async def events() -> AsyncIterator[JSON]:
            model = self._find(name)
            yield {"status": "retrieving manifest"}
            if model is None:
                yield {"error": "open : no such file or directory"}
                return
            for layer in model.layers:
                yield _progress(f"pushing {layer.digest[7:19]}", layer, layer.size)
            yield {"status": "pushing manifest"}
            yield {"status": "success"}

        if body.get("stream") is False:
            return await _wait_for_stream(events())
        return await self._stream(request, events())

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model") or body.get("name") or "")
        if not valid_name(name):
            return _json({"error": "invalid model name"}, 400)
        events = self._create_events(name, body)
        if body.get("stream") is False:
            return await _wait_for_stream(events)
        return await self._stream(request, events)

    async def _create_events(self, name: str, body: JSON) -> AsyncIterator[JSON]:
        source_name = str(body.get("from") or "")
        if not source_name:
            yield {"error": "neither 'from' or 'files' was specified", "status": 400}
            return
        if not valid_name(source_name):
            yield {"error": "invalid model name", "status": 400}
            return
        base = self._find(source_name)
        if base is None:
            async for event in self._pull_events(source_name):
                yield event
                if "error" in event:
                    return
            base = self._find(source_name)
            if base is None:
                return
        derived = base.clone(name)
        derived.parent_model = base.name
        for layer in base.layers:
            yield {"status": f"using existing layer {layer.digest}"}
        extras = [
            (key, body.get(key), media)
            for key, media in (
                ("template", "template"),
                ("system", "system"),
                ("parameters", "params"),
            )
            if body.get(key)
        ]
        for key, value, media in extras:
            digest = blob_digest(json.dumps(value, sort_keys=True))
            derived.layers.append(Layer(digest, len(json.dumps(value)), f"{_MEDIA}.{media}"))
            yield {"status": f"creating new layer {digest}"}
            if key == "parameters" and isinstance(value, dict):
                derived.parameters = {**base.parameters, **value}
            else:
                setattr(derived, key, str(value))
        yield {"status": "writing manifest"}
        derived.modified_at = now()
        self.installed[name_key(name)] = derived
        yield {"status": "success"}

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        name = str(body.get("model") or body.get("name") or "")
        if not valid_name(name):
            return _json({"error": f'name "{name}" is invalid'}, 400)
        if self._find(name) is None:
            return _json({"error": f"model '{name}' not found"}, 404)
        self.uninstall(name)
        return web.Response(status=200)

    async def _copy(self, request: web.Request) -> web.StreamResponse:
        body, error = await _body(request)
        if error:
            return error
        source, destination = str(body.get("source", "")), str(body.get("destination", ""))
        if not valid_name(source):
            return _json({"error": f'source "{source}" is invalid'}, 400)
        if not valid_name(destination):
            return _json({"error": f'destination "{destination}" is invalid'}, 400)
        model = self._find(source)
        if model is None:
            return _json({"error": f'model "{source}" not found'}, 404)
        self.installed[name_key(destination)] = model.clone(destination)
        return web.Response(status=200)

    # ---- OpenAI-compatible routes -------------------------------------------------------------

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body, error = await _openai_body(request)
        if error:
            return error
        if not body.get("messages"):
            return _openai_error(400, "[] is too short - 'messages'")
        name = str(body.get("model", ""))
        model = self._find(name)
        if model is None:
            return _openai_error(404, f'model "{name}" not found, try pulling it first', 500)
        async with self._inference():
            failed = await self._load(model, DEFAULT_KEEP_ALIVE, _openai_options(body))
            if failed:
                return _openai_error(500, failed)
            words = self._words(self.stream_chunks)
            prompt = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            usage = _usage(prompt + 10, len(words))
            ident = f"chatcmpl-{random.randrange(999)}"
            if not body.get("stream"):
                await asyncio.sleep(self.chunk_delay * len(words))
                return _json(_chat_completion(ident, name, "".join(words), usage))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._openai_chat_stream(ident, name, words, usage, include_usage)
            return await self._stream(request, chunks, sse=True)

    async def _openai_chat_stream(
        self, ident: str, name: str, words: list[str], usage: JSON, include_usage: bool
    ) -> AsyncIterator[JSON]:
        for i, word in enumerate(words):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield _chat_completion_chunk(ident, name, word, None)
        final = _chat_completion_chunk(ident, name, "", "stop")
        yield final
        if include_usage:
            yield {**final, "choices": [], "usage": usage}

    async def _openai_completions(self, request: web.Request) -> web.StreamResponse:
        body, error = await _openai_body(request)
        if error:
            return error
        name = str(body.get("model", ""))
        model = self._find(name)
        if model is None:
            return _openai_error(404, f"model '{name}' not found", 500)
        async with self._inference():
            failed = await self._load(model, DEFAULT_KEEP_ALIVE, _openai_options(body))
            if failed:
                return _openai_error(500, failed)
            words = self._words(self.stream_chunks)
            usage = _usage(len(str(body.get("prompt", "")).split()) + 10, len(words))
            ident = f"cmpl-{random.randrange(999)}"
            if not body.get("stream"):
                await asyncio.sleep(self.chunk_delay * len(words))
                return _json(_completion(ident, name, "".join(words), usage))
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = self._openai_completion_stream(ident, name, words, usage, include_usage)
            return await self._stream(request, chunks, sse=True)

    async def _openai_completion_stream(
        self, ident: str, name: str, words: list[str], usage: JSON, include_usage: bool
    ) -> AsyncIterator[JSON]:
        empty = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for i, word in enumerate(words):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            chunk = _completion_chunk(ident, name, word, None)
            yield {**chunk, "usage": empty} if include_usage else chunk
        final = _completion_chunk(ident, name, "", "stop")
        yield {**final, "usage": empty} if include_usage else final
        if include_usage:
            yield {**final, "choices": [], "usage": usage}

    async def _openai_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, error = await _openai_body(request)
        if error:
            return error
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            return _openai_error(400, "invalid input")
        if not isinstance(raw, str | list):
            return _openai_error(400, "invalid input")
        inputs = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        name = str(body.get("model", ""))
        model = self._find(name)
        if model is None:
            return _openai_error(404, f'model "{name}" not found, try pulling it first', 500)
        async with self._inference():
            failed = await self._load(model, DEFAULT_KEEP_ALIVE, {})
            if failed:
                return _openai_error(500, failed)
            tokens = sum(len(t.split()) for t in inputs)
            data = [
                {"object": "embedding", "embedding": self._embedding(t), "index": i}
                for i, t in enumerate(inputs)
            ]
            return _json(
                {
                    "object": "list",
                    "data": data,
                    "model": name,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )

    async def _openai_models(self, request: web.Request) -> web.StreamResponse:
        models = sorted(self.installed.values(), key=lambda m: m.modified_at, reverse=True)
        data = [_openai_model_entry(m.name, m) for m in models]
        return _json({"object": "list", "data": data or None})

    async def _openai_model(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        model = self._find(name)
        if model is None:
            return _openai_error(404, f"model '{name}' not found", 500)
        return _json(_openai_model_entry(name, model))


# --------------------------------------------------------------------------- wire shapes

_MEDIA = "application/vnd.ollama.image"


@dataclass
class _Stats:
    """The metrics Ollama appends to the final chunk of an answer."""

    started: float
    loaded_at: float
    prompt_tokens: int
    eval_tokens: int

    def done(self) -> JSON:
        finished = time.monotonic()
        eval_seconds = finished - self.loaded_at
        return {
            "total_duration": ns(finished - self.started),
            "load_duration": ns(self.loaded_at - self.started),
            "prompt_eval_count": self.prompt_tokens,
            "prompt_eval_duration": ns(eval_seconds / 10 or 1e-4),
            "eval_count": self.eval_tokens,
            "eval_duration": ns(eval_seconds or 1e-3),
        }


def _json(payload: Any, status: int = 200) -> web.Response:
    """A JSON response with gin's content type and compact encoding."""
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
        content_type="application/json",
        charset="utf-8",
    )


async def _body(request: web.Request) -> tuple[JSON, web.Response | None]:
    """The JSON object body, or the 400 Ollama answers for a missing or broken one."""
    raw = await request.read()
    if not raw.strip():
        return {}, _json({"error": "missing request body"}, 400)
    try:
        body = json.loads(raw)
    except ValueError:
        char = raw.strip()[:1].decode("utf-8", "replace")
        return {}, _json(
            {"error": f"invalid character '{char}' looking for beginning of value"}, 400
        )
    if not isinstance(body, dict):
        kind = "array" if isinstance(body, list) else type(body).__name__
        return {}, _json({"error": f"json: cannot unmarshal {kind} into Go value"}, 400)
    return body, None


async def _openai_body(request: web.Request) -> tuple[JSON, web.Response | None]:
    body, error = await _body(request)
    if error is not None:
        message = json.loads(error.body)["error"]  # type: ignore[arg-type]
        return body, _openai_error(400, message)
    return body, None


def _openai_error(status: int, message: str, kind_code: int | None = None) -> web.Response:
    """OpenAI's error envelope; Ollama types errors from its own handlers as api_error."""
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(kind_code or status)
    payload = {"message": message, "type": kind or "api_error", "param": None, "code": None}
    return _json({"error": payload}, status)


def _openai_options(body: JSON) -> JSON:
    options: JSON = {}
    for key in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    if body.get("max_tokens") is not None:
        options["num_predict"] = body["max_tokens"]
    return options


async def _wait_for_stream(events: AsyncIterator[JSON]) -> web.Response:
    """stream=false for pull/push/create: the last status, or the error with its status."""
    latest: JSON = {}
    async for event in events:
        if "error" in event:
            return _json({"error": event["error"]}, int(event.get("status", 500)))
        latest = event
    return _json(latest)


def _progress(status: str, layer: Layer, completed: int) -> JSON:
    event: JSON = {"status": status, "digest": layer.digest, "total": layer.size}
    if completed:
        event["completed"] = completed
    return event


def _list_entry(model: EmulatedModel) -> JSON:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": go_time(model.modified_at),
        "size": model.size,
        "digest": model.digest,
        "details": model.details(),
    }


def _ps_entry(loaded: Loaded) -> JSON:
    model = loaded.model
    return {
        "name": model.name,
        "model": model.name,
        "size": model.size * 2,
        "digest": model.digest,
        "details": model.details(),
        "expires_at": go_time(loaded.expires_at),
        "size_vram": model.size * 2,
        "context_length": loaded.context_length,
    }


def _show_entry(model: EmulatedModel) -> JSON:
    params = "\n".join(
        f"{key:<30} {json.dumps(value)}"
        for key, value in model.parameters.items()
        if not key.startswith("_")
    )
    modelfile = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {model.name}\n\nFROM {model.layers[0].digest}\n"
        f'TEMPLATE """{model.template}"""\n'
    )
    if model.system:
        modelfile += f'SYSTEM """{model.system}"""\n'
    entry: JSON = {"modelfile": modelfile}
    if params:
        entry["parameters"] = params
    entry["template"] = model.template
    if model.system:
        entry["system"] = model.system
    entry["details"] = model.details()
    entry["model_info"] = {
        "general.architecture": model.family,
        "general.parameter_count": 1_235_814_432,
        f"{model.family}.context_length": 131072,
    }
    entry["capabilities"] = model.capabilities
    entry["modified_at"] = go_time(model.modified_at)
    return entry


def _generate_chunk(name: str, text: str, *, done: bool, done_reason: str = "") -> JSON:
    chunk: JSON = {"model": name, "created_at": go_time(now()), "response": text, "done": done}
    if done_reason:
        chunk["done_reason"] = done_reason
    return chunk


def _chat_chunk(name: str, text: str, *, done: bool, done_reason: str = "") -> JSON:
    chunk: JSON = {
        "model": name,
        "created_at": go_time(now()),
        "message": {"role": "assistant", "content": text},
    }
    if done_reason:
        chunk["done_reason"] = done_reason
    chunk["done"] = done
    return chunk


def _usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chat_completion(ident: str, name: str, text: str, usage: JSON) -> JSON:
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _chat_completion_chunk(ident: str, name: str, text: str, finish: str | None) -> JSON:
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_ollama",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
    }


def _completion(ident: str, name: str, text: str, usage: JSON) -> JSON:
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()),
        "model": name,
        "system_fingerprint": "fp_ollama",
        "choices": [{"text": text, "index": 0, "finish_reason": "stop"}],
        "usage": usage,
    }


def _completion_chunk(ident: str, name: str, text: str, finish: str | None) -> JSON:
    return {
        "id": ident,
        "object": "text_completion",
        "created": int(time.time()),
        "choices": [{"text": text, "index": 0, "finish_reason": finish}],
        "model": name,
        "system_fingerprint": "fp_ollama",
    }


def _openai_model_entry(name: str, model: EmulatedModel) -> JSON:
    return {
        "id": name,
        "object": "model",
        "created": int(model.modified_at.timestamp()),
        "owned_by": parse_name(name)[1],
    }
