"""The public port's map: which paths exist and how the gateway treats each.

One table decides everything per path (methods, body schema, whether a model
is checked, whether the concurrency limit and the cache apply, which error
shape clients expect), so the request pipeline does one dictionary lookup and
no string matching on the hot path. The ``name`` of a route is also its
metric label, which keeps label values bounded whatever paths clients send.
This module is pure data.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import validation as v

GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})

#: Paths of Ollama's model management API: refused, models are declared.
MANAGEMENT_PATHS = frozenset({"/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete"})

#: Prefix of OpenAI's "retrieve model" path (``/v1/models/{model}``).
OPENAI_MODEL_PREFIX = "/v1/models/"


@dataclass(frozen=True, slots=True)
class Route:
    """How the gateway handles one path."""

    #: Metric label and log name.
    name: str
    path: str
    methods: frozenset[str]
    #: Schema of the JSON body; None: the route takes no body.
    schema: type[v.RequestBody] | None = None
    #: Inference work for Ollama: goes through the concurrency limit and queue.
    inference: bool = False
    #: Non-streaming answers may come from the response cache.
    cacheable: bool = False
    #: OpenAI-compatible route: errors use OpenAI's shape.
    openai: bool = False


def _routes(*routes: Route) -> dict[str, Route]:
    return {r.path: r for r in routes}


#: Every passthrough route, by exact path.
ROUTES: dict[str, Route] = _routes(
    Route("generate", "/api/generate", POST, v.GenerateRequest, inference=True, cacheable=True),
    Route("chat", "/api/chat", POST, v.ChatRequest, inference=True, cacheable=True),
    Route("embed", "/api/embed", POST, v.EmbedRequest, inference=True, cacheable=True),
    Route(
        "embeddings", "/api/embeddings", POST, v.EmbeddingsRequest, inference=True, cacheable=True
    ),
    Route("show", "/api/show", POST, v.ShowRequest),
    Route("tags", "/api/tags", GET),
    Route("ps", "/api/ps", GET),
    Route("version", "/api/version", GET),
    Route(
        "openai_chat",
        "/v1/chat/completions",
        POST,
        v.OpenAIChatRequest,
        inference=True,
        cacheable=True,
        openai=True,
    ),
    Route(
        "openai_completions",
        "/v1/completions",
        POST,
        v.OpenAICompletionRequest,
        inference=True,
        cacheable=True,
        openai=True,
    ),
    Route(
        "openai_embeddings",
        "/v1/embeddings",
        POST,
        v.OpenAIEmbeddingRequest,
        inference=True,
        cacheable=True,
        openai=True,
    ),
    Route("openai_models", "/v1/models", GET, openai=True),
)

#: ``/v1/models/{model}``: matched by prefix.
OPENAI_MODEL = Route("openai_model", OPENAI_MODEL_PREFIX, GET, openai=True)

#: The label used for requests that matched no route (404, 403).
UNMATCHED = "unmatched"

#: Every value the ``route`` metric label can take.
ROUTE_NAMES = (*(r.name for r in ROUTES.values()), OPENAI_MODEL.name, "root", UNMATCHED)


def match(path: str) -> Route | None:
    """The route for a path, or None (then: refused or not found)."""
    route = ROUTES.get(path)
    if route is None and path.startswith(OPENAI_MODEL_PREFIX) and len(path) > 11:
        return OPENAI_MODEL
    return route


def is_openai_path(path: str) -> bool:
    """Whether errors for this path use OpenAI's shape."""
    return path.startswith("/v1/")
