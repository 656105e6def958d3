"""The gateway's Prometheus metrics: what Ollama itself does not export.

Ollama has no ``/metrics``. The gateway sees every request, so it counts them
(by route, model and status), times them (total, time to first token, time
between stream chunks), reads the token counts Ollama reports at the end of
each answer, and exposes its own state (slots in use, queue, cache, circuit
breaker) and the model agent's (pull progress, readiness). Every name starts
with ``ollama_gateway_``; ``docs/metrics.md`` lists them all.

Each :class:`GatewayMetrics` owns a private ``CollectorRegistry`` (tests build
as many gateways as they like). Label children are looked up once and kept in
plain dictionaries, so recording a request costs a dictionary probe and an
increment; gauges of live state are read at scrape time (``set_function``),
costing the hot path nothing. Label values are bounded: routes come from the
route table, models are those the gateway let through (declared or present).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .usage import Usage

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

PREFIX = "ollama_gateway"

#: Request durations: from a cached answer to a long generation.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Time to first token: dominated by model loading and prompt evaluation.
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
#: Time between stream chunks: one token at a few to a few hundred per second.
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1)
#: Generation speed.
TPS_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """Every metric of one gateway, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        p = PREFIX
        self.requests = Counter(
            f"{p}_requests",
            "Requests answered, by route, model and status code.",
            ("route", "model", "code"),
            registry=r,
        )
        self.duration = Histogram(
            f"{p}_request_duration_seconds",
            "Time from receiving a request to the end of its answer (streams included).",
            ("route",),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            f"{p}_time_to_first_token_seconds",
            "Time from receiving a streamed request to its first chunk from Ollama.",
            ("model",),
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            f"{p}_inter_token_latency_seconds",
            "Time between two consecutive chunks of a streamed answer.",
            ("model",),
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            f"{p}_prompt_tokens",
            "Prompt tokens Ollama evaluated (prompt_eval_count).",
            ("model",),
            registry=r,
        )
        self.generated_tokens = Counter(
            f"{p}_generated_tokens",
            "Tokens Ollama generated (eval_count).",
            ("model",),
            registry=r,
        )
        self.tokens_per_second = Histogram(
            f"{p}_tokens_per_second",
            "Generation speed per answer: eval_count / eval_duration.",
            ("model",),
            buckets=TPS_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            f"{p}_in_flight", "Inference requests holding a concurrency slot.", registry=r
        )
        self.queue_depth = Gauge(
            f"{p}_queue_depth", "Inference requests waiting for a concurrency slot.", registry=r
        )
        self.cache_hits = Counter(f"{p}_cache_hits", "Answers served from the cache.", registry=r)
        self.cache_misses = Counter(
            f"{p}_cache_misses", "Cacheable requests that went to Ollama.", registry=r
        )
        self.rate_limited = Counter(
            f"{p}_rate_limited", "Requests refused with 429 by the rate limit.", registry=r
        )
        self.auth_failures = Counter(
            f"{p}_auth_failures",
            "Requests refused with 401, by reason (missing, invalid).",
            ("reason",),
            registry=r,
        )
        self.auth_throttled = Counter(
            f"{p}_auth_throttled",
            "Requests refused with 429 because their address failed to authenticate too often.",
            registry=r,
        )
        self.upstream_errors = Counter(
            f"{p}_upstream_errors",
            "Failed attempts to reach Ollama, by kind (connect, connect_timeout, "
            "first_byte_timeout, idle_timeout, status, disconnect).",
            ("kind",),
            registry=r,
        )
        self.slow_clients = Counter(
            f"{p}_slow_clients",
            "Answers cut off because the client stopped reading for gateway.timeouts.idle.",
            registry=r,
        )
        self.circuit_probes = Counter(
            f"{p}_circuit_probes",
            "The circuit breaker's own GET /api/version probes, by result (ok, failed).",
            ("result",),
            registry=r,
        )
        self.retries = Counter(
            f"{p}_upstream_retries", "Attempts repeated before the first byte.", registry=r
        )
        self.circuit_state = Gauge(
            f"{p}_circuit_state", "Circuit breaker: 0 closed, 1 open, 2 half-open.", registry=r
        )
        self.reloads = Counter(
            f"{p}_reloads",
            "Reloads of a watched file, by file (config, keys) and result.",
            ("file", "result"),
            registry=r,
        )
        self.config_refusals = Counter(
            f"{p}_config_reload_refusals",
            "Reloaded configs refused (the previous one kept), by reason (unreadable, empty, "
            "invalid, auth_off, token_off).",
            ("reason",),
            registry=r,
        )
        self.open_connections = Gauge(
            f"{p}_open_connections", "Client connections open on the public port.", registry=r
        )
        self.refused_connections = Counter(
            f"{p}_refused_connections",
            "Connections to the public port refused with 503: clients.maxConnections were open.",
            registry=r,
        )
        self.api_keys = Gauge(
            f"{p}_api_keys", "API keys loaded (0 with auth off or an unreadable file).", registry=r
        )
        self.pull_completed = Gauge(
            f"{p}_model_pull_completed_bytes",
            "Bytes of a model pulled so far.",
            ("model",),
            registry=r,
        )
        self.pull_total = Gauge(
            f"{p}_model_pull_total_bytes",
            "Bytes of a model to pull in all.",
            ("model",),
            registry=r,
        )
        self.pull_progress = Gauge(
            f"{p}_model_pull_progress_ratio",
            "Pull progress of a model, 0 to 1.",
            ("model",),
            registry=r,
        )
        self.model_ready = Gauge(
            f"{p}_model_ready",
            "1 when a declared model is present and usable, else 0.",
            ("model",),
            registry=r,
        )
        self.pull_failures = Counter(
            f"{p}_model_pull_failures",
            "Pull or create attempts of a declared model that failed.",
            ("model",),
            registry=r,
        )
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}
        self._per_model: dict[str, tuple[Histogram, Histogram]] = {}
        self._tokens: dict[str, tuple[Counter, Counter, Histogram]] = {}
        self._upstream_errors: dict[str, Counter] = {}

    # ---- live state, read at scrape time -----------------------------------------------------

    def watch(
        self,
        *,
        in_flight: Callable[[], float],
        queue_depth: Callable[[], float],
        circuit_state: Callable[[], float],
    ) -> None:
        """Read these gauges from the gateway's state whenever Prometheus scrapes."""
        self.in_flight.set_function(in_flight)
        self.queue_depth.set_function(queue_depth)
        self.circuit_state.set_function(circuit_state)

    # ---- the request path --------------------------------------------------------------------

    def request(self, route: str, model: str, code: int, seconds: float) -> None:
        """One answered request."""
        key = (route, model, code)
        counter = self._requests.get(key) or _cache(
            self._requests, key, self.requests.labels(route, model, str(code))
        )
        counter.inc()
        histogram = self._durations.get(route) or _cache(
            self._durations, route, self.duration.labels(route)
        )
        histogram.observe(seconds)

    def stream_timers(self, model: str) -> tuple[Histogram, Histogram]:
        """``(time_to_first_token, inter_token_latency)`` children for a model."""
        return self._per_model.get(model) or _cache(
            self._per_model, model, (self.ttft.labels(model), self.itl.labels(model))
        )

    def usage(self, model: str, usage: Usage) -> None:
        """Token counts Ollama reported at the end of an answer."""
        prompt, generated, speed = self._tokens.get(model) or _cache(
            self._tokens,
            model,
            (
                self.prompt_tokens.labels(model),
                self.generated_tokens.labels(model),
                self.tokens_per_second.labels(model),
            ),
        )
        if usage.prompt_tokens:
            prompt.inc(usage.prompt_tokens)
        if usage.generated_tokens:
            generated.inc(usage.generated_tokens)
        tps = usage.tokens_per_second
        if tps is not None:
            speed.observe(tps)

    def upstream_error(self, kind: str) -> None:
        """A failed attempt to reach Ollama."""
        counter = self._upstream_errors.get(kind) or _cache(
            self._upstream_errors, kind, self.upstream_errors.labels(kind)
        )
        counter.inc()

    # ---- the model agent (an AgentObserver) ------------------------------------------------

    def on_pull_progress(self, model: str, completed: int, total: int) -> None:
        """Bytes of a declared model pulled so far, out of ``total``."""
        self.pull_completed.labels(model).set(completed)
        self.pull_total.labels(model).set(total)
        self.pull_progress.labels(model).set(min(1.0, completed / total) if total > 0 else 0.0)

    def on_model_state(self, model: str, phase: str) -> None:
        """A declared model changed phase (Pending, Pulling, Creating, Ready, Failed)."""
        ready = phase == "Ready"
        self.model_ready.labels(model).set(1.0 if ready else 0.0)
        if ready:
            self.pull_progress.labels(model).set(1.0)
        elif phase == "Failed":
            self.pull_failures.labels(model).inc()

    def forget_model(self, model: str) -> None:
        """A model is no longer declared: drop its agent series."""
        series = (
            self.pull_completed,
            self.pull_total,
            self.pull_progress,
            self.model_ready,
            self.pull_failures,
        )
        for metric in series:
            with contextlib.suppress(KeyError):
                metric.remove(model)

    # ---- exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


def _cache(children: dict[K, V], key: K, child: V) -> V:
    """Remember a labelled child (``labels()`` hashes and locks on every call).

    Callers write ``cache.get(key) or _cache(cache, key, metric.labels(...))``: the
    ``or`` keeps ``labels()`` off the hot path once the child is known.
    """
    children[key] = child
    return child
