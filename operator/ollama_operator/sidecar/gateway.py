"""The public port's request pipeline: from a client's request to Ollama's answer.

Every request takes the same path, each step able to end it with an error
from :mod:`.errors`::

    route lookup → failed-auth limit of the address → API key → rate limit
    → refused / unknown path → method
    → upstream path built from the route (the model segment of
    /v1/models/{model} checked) → body (size, encoding, JSON, field types)
    → model declared or present
    → cache lookup → concurrency slot (queue) → Ollama (retries, breaker,
    timeouts, streaming) → cache store → metrics

``GET /`` answers "Ollama is running" without a key, as Ollama does, for
clients that probe the server. Everything else needs a key when keys are
configured.

The pipeline is the hot path of the pod, so it is one method that creates few
objects of its own: the route table is a dictionary, settings are precomputed
(:mod:`.settings`), the body is parsed once, and requests that need no slot, no
cache and no rate limit skip those steps entirely. Settings
and keys are swapped live by the reloader (:meth:`Gateway.configure`,
:meth:`Gateway.set_keys`); a request in flight keeps what it started with.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping

from aiohttp import web
from multidict import istr

from ..api.types import is_cloud_model
from ..ollama import normalize_name
from .auth import KeyRing
from .auth_guard import AuthFailureGuard
from .body import read_body
from .breaker import CircuitBreaker
from .cache import SHARED, ResponseCache, cache_key, directives
from .concurrency import AdmissionGate
from .errors import (
    GatewayError,
    InternalError,
    Unauthorized,
    auth_throttled,
    cloud_model_refused,
    management_refused,
    method_not_allowed,
    model_not_found,
    rate_limited,
    route_not_found,
)
from .limits import RateLimiter
from .metrics import GatewayMetrics
from .paths import split_target, upstream_path, upstream_query
from .proxy import CLIENT_CLOSED, Upstream
from .routes import GET, MANAGEMENT_PATHS, UNMATCHED, is_openai_path, match
from .settings import GatewaySettings
from .throttled_log import ThrottledLog
from .validation import parse_body, require_model

log = logging.getLogger(__name__)

CACHE_CONTROL = istr("Cache-Control")
CONTENT_TYPE = istr("Content-Type")
X_CACHE = "X-Cache"
JSON_TYPE = "application/json; charset=utf-8"
#: Model names remembered with their normalised form (bounded: clients choose them).
MODEL_KEY_CACHE = 4096
ROOT_BODY = b"Ollama is running"


class Gateway:
    """Auth, limits, validation, cache and forwarding for the public port."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        keys: KeyRing | None = None,
        metrics: GatewayMetrics | None = None,
        present_models: Callable[[], Collection[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """``present_models`` lists the models Ollama has (normalised names); None: no check."""
        self.settings = settings
        self.keys = keys if keys is not None else KeyRing.disabled()
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self._present = present_models
        self._clock = clock
        self.breaker = CircuitBreaker(
            settings.breaker_threshold, settings.breaker_open_for, clock=clock
        )
        self.gate = AdmissionGate(settings.max_concurrent, settings.max_queue)
        self.limiter: RateLimiter | None = None
        self.auth_guard = AuthFailureGuard(
            settings.auth_failures_per_minute, settings.auth_failures_burst, clock=clock
        )
        self.cache: ResponseCache | None = None
        self.upstream = Upstream(settings, self.breaker, self.metrics, rand=rand)
        self._model_keys: dict[str, str] = {}
        #: Tracebacks of gateway bugs, bounded: a client that found one could repeat it.
        self._errors = ThrottledLog(log, "unexpected errors", clock=clock)
        self.configure(settings)
        self.set_keys(self.keys)
        self.metrics.watch(
            in_flight=lambda: self.gate.in_flight,
            queue_depth=lambda: self.gate.queued,
            circuit_state=lambda: self.breaker.state,
        )

    # ---- lifecycle and live settings ---------------------------------------------------------

    async def start(self) -> None:
        """Open the connection pool to Ollama."""
        await self.upstream.start()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.upstream.close()

    def configure(self, settings: GatewaySettings) -> None:
        """Apply settings from a reloaded config (limits, cache, timeouts, retries, models)."""
        self.settings = settings
        self.gate.configure(settings.max_concurrent, settings.max_queue)
        self.breaker.configure(settings.breaker_threshold, settings.breaker_open_for)
        self.upstream.configure(settings)
        self.auth_guard.configure(settings.auth_failures_per_minute, settings.auth_failures_burst)
        rate = settings.rate_limit
        if rate is None:
            self.limiter = None
        elif self.limiter is None:
            self.limiter = RateLimiter(
                rate.requests_per_minute, rate.burst, per_key=rate.per_key, clock=self._clock
            )
        else:
            self.limiter.configure(rate.requests_per_minute, rate.burst, per_key=rate.per_key)
        if not settings.cache_enabled:
            self.cache = None
        elif self.cache is None:
            self.cache = ResponseCache(
                settings.cache_max_entries,
                settings.cache_ttl,
                max_bytes=settings.cache_max_bytes,
                timer=self._clock,
            )
        else:
            self.cache.configure(
                settings.cache_max_entries, settings.cache_ttl, max_bytes=settings.cache_max_bytes
            )

    def set_keys(self, keys: KeyRing) -> None:
        """Swap the API keys (a reloaded keys file)."""
        self.keys = keys
        self.metrics.api_keys.set(len(keys))

    # ---- the pipeline ------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request of the public port."""
        started = asyncio.get_running_loop().time()
        path = request.path
        method = request.method
        route = match(path)
        if route is not None:
            name, openai = route.name, route.openai
        elif path == "/":
            name, openai = "root", False
        else:
            name, openai = UNMATCHED, is_openai_path(path)
        model = ""
        code = 500
        extra: dict[str, str] | None = None
        try:
            if route is None and path == "/":
                if method not in GET:
                    raise method_not_allowed(method, path, GET)
                code = 200
                return web.Response(body=ROOT_BODY, content_type="text/plain")

            keys = self.keys
            if keys.enabled:
                # Before the key is looked at: a refused address learns nothing about it.
                address = request.remote or ""
                wait = self.auth_guard.retry_after(address)
                if wait > 0.0:
                    self.metrics.auth_throttled.inc()
                    raise auth_throttled(wait)
            try:
                client = keys.authenticate(request.headers)
            except Unauthorized as err:
                self.auth_guard.failed(request.remote or "")
                self.metrics.auth_failures.labels(err.reason).inc()
                raise
            tenant = client
            limiter = self.limiter
            if limiter is not None:
                if client is None:
                    client = (request.remote or "").encode()
                decision = limiter.take(client)
                extra = decision.headers()
                if not decision.allowed:
                    self.metrics.rate_limited.inc()
                    raise rate_limited(decision.retry_after, extra)

            if route is None:
                if path in MANAGEMENT_PATHS:
                    raise management_refused(path)
                raise route_not_found(method, path)
            if method not in route.methods:
                raise method_not_allowed(method, path, route.methods)
            raw_path, raw_query = split_target(request.raw_path)
            target = upstream_path(route, raw_path)
            query = upstream_query(raw_query) if raw_query else ""

            body: bytes | None = None
            streams = False
            if route.schema is not None:
                body = await read_body(
                    request, self.settings.max_body_bytes, self.settings.body_timeout
                )
                parsed = parse_body(route.schema, body)
                model = self._allowed_model(require_model(parsed))
                streams = parsed.streams()

            key: bytes | None = None
            replace = True
            cache = self.cache
            if cache is not None and route.cacheable and not streams and body is not None:
                lookup, store = directives(request.headers.get(CACHE_CONTROL))
                if lookup or store:
                    partition = SHARED if self.settings.cache_shared else (tenant or SHARED)
                    # A no-cache answer may refresh the client's own entry, never a
                    # shared one: that would let one key re-roll what all keys get.
                    replace = lookup or partition is not SHARED
                    key = cache_key(method, target, body, partition)
                    hit = cache.get(key) if lookup else None
                    if hit is not None:
                        self.metrics.cache_hits.inc()
                        headers = {**extra} if extra else {}
                        headers[X_CACHE] = "HIT"
                        headers[CONTENT_TYPE] = hit.content_type
                        code = 200
                        return web.Response(body=hit.body, headers=headers)
                    self.metrics.cache_misses.inc()
                    if not store:
                        key = None
                    extra = {**extra} if extra else {}
                    extra[X_CACHE] = "MISS"

            if route.inference:
                gate = self.gate
                if not gate.try_enter():
                    await gate.enter()
                try:
                    response = await self.upstream.forward(
                        request,
                        target,
                        query,
                        body,
                        model=model,
                        headers=extra,
                        usage=True,
                        started=started,
                    )
                finally:
                    gate.leave()
            else:
                response = await self.upstream.forward(
                    request,
                    target,
                    query,
                    body,
                    model=model,
                    headers=extra,
                    usage=False,
                    started=started,
                )
            code = response.status
            if key is not None and code == 200 and isinstance(response, web.Response):
                data = response.body
                if isinstance(data, bytes) and cache is not None:
                    cache.put(
                        key,
                        response.headers.get(CONTENT_TYPE, JSON_TYPE),
                        data,
                        replace=replace,
                    )
            return response
        except GatewayError as err:
            code = err.status
            return error_response(err, openai=openai, extra=extra)
        except asyncio.CancelledError:
            code = CLIENT_CLOSED
            raise
        except ConnectionError:
            # The client left mid-answer (the upstream answer was closed in forward()):
            # nothing to report to anyone, and no traceback in the log.
            code = CLIENT_CLOSED
            return web.Response(status=CLIENT_CLOSED)
        except Exception:
            self._errors.log(
                logging.ERROR, "unexpected error answering %s %s", method, name, exc_info=True
            )
            return error_response(
                InternalError("internal gateway error; the sidecar's log has the details"),
                openai=openai,
                extra=extra,
            )
        finally:
            self.metrics.request(name, model, code, asyncio.get_running_loop().time() - started)

    def _allowed_model(self, raw: str) -> str:
        """The model's normalised name, if declared or present; 404 otherwise (403 for a
        cloud model where they are not allowed, whatever is on disk)."""
        key = self._model_keys.get(raw)
        if key is None:
            key = normalize_name(raw)
            if len(self._model_keys) < MODEL_KEY_CACHE:
                self._model_keys[raw] = key
        if not self.settings.cloud_allowed and is_cloud_model(key):
            raise cloud_model_refused(raw)
        if key in self.settings.declared_models:
            return key
        present = self._present
        if present is None or key in present():
            return key
        raise model_not_found(raw)


def error_response(
    err: GatewayError, *, openai: bool, extra: Mapping[str, str] | None = None
) -> web.Response:
    """The JSON answer for a gateway error, with its headers (and the rate-limit ones)."""
    headers = {**extra, **err.headers} if extra else {**err.headers}
    headers[CONTENT_TYPE] = JSON_TYPE
    headers.pop(X_CACHE, None)
    return web.Response(status=err.status, body=err.body(openai=openai), headers=headers)
