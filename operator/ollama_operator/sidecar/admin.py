"""The admin port (9090): probes for the kubelet, status for the controller, metrics.

- ``/healthz``: the process is alive and its event loop turns (liveness).
- ``/readyz``: Ollama answers and every required model is present
  (readiness; the model agent decides). A pod that is not ready gets no traffic
  from the Service, which is how a pod still pulling its models stays out.
- ``/status``: the model agent's JSON document, which the controller polls and
  aggregates into the OllamaServer's status. It names models and their pull
  progress, so it wants the internal token (``Authorization: Bearer``) from
  ``internalTokenFile``; without such a file configured it is open.
- ``/metrics``: Prometheus text format (:mod:`.metrics`), rendered in a worker
  thread, one render at a time: both ports share one event loop, and a render
  on it (thousands of series, a slow gauge callback) would stall every token
  the gateway relays for as long as it takes. Scrapes take turns, so at most
  one thread renders.

The port is separate from the public one so that probes and scrapes never
queue behind inference traffic and never need an API key. Like the public
port it runs on :class:`~.protocol.GatewayServer` (a malformed request is never
echoed, since ``/status`` requests carry the internal token), so it is a
low-level handler, :meth:`Admin.handle`, over a table of four endpoints.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from .auth import AUTHORIZATION
from .errors import GatewayError, Unauthorized
from .metrics import CONTENT_TYPE, GatewayMetrics

JSON_TYPE = "application/json"


class AgentView(Protocol):
    """What the admin port reads from the model agent."""

    def ready(self) -> bool:
        """Ollama answers and every required model is present."""

    def status(self) -> dict[str, Any]:
        """The JSON document served as ``/status``."""


class InternalToken:
    """The token the controller presents to ``/status``, held as a digest."""

    def __init__(self, token: str | None, *, configured: bool) -> None:
        """``configured=False``: no token file, the endpoint is open.

        A configured file that is empty or unreadable (``token=None``) lets nobody in.
        """
        self.configured = configured
        self._digest = hashlib.sha256(token.encode()).digest() if token else None

    @classmethod
    def load(cls, path: str | None) -> InternalToken:
        """Read the token file; raises OSError when it cannot be read."""
        if path is None:
            return cls(None, configured=False)
        with open(path, encoding="utf-8", errors="replace") as fh:
            return cls(fh.read().strip() or None, configured=True)

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the token (compared in constant time)."""
        if not self.configured:
            return True
        if self._digest is None or not authorization:
            return False
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            raw = presented.strip().encode()
        except UnicodeEncodeError:  # not UTF-8 (aiohttp keeps such bytes as surrogates)
            return False
        digest = hashlib.sha256(raw).digest()
        return hmac.compare_digest(digest, self._digest)


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload).encode(), content_type=JSON_TYPE)


class Admin:
    """Handlers of the admin port."""

    def __init__(
        self, agent: AgentView, metrics: GatewayMetrics, token: InternalToken | None = None
    ) -> None:
        self.agent = agent
        self.metrics = metrics
        self.token = token if token is not None else InternalToken(None, configured=False)
        self._render = asyncio.Lock()

        self.endpoints: dict[str, Callable[[web.BaseRequest], Awaitable[web.Response]]] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/status": self.status,
            "/metrics": self.metrics_text,
        }

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request of the admin port (``GET`` or ``HEAD`` of an endpoint)."""
        endpoint = self.endpoints.get(request.path)
        if endpoint is None:
            return _json({"error": f"{request.path} is not an endpoint of the admin port"}, 404)
        if request.method not in ("GET", "HEAD"):
            response = _json({"error": f"{request.method} is not allowed; use GET"}, 405)
            response.headers["Allow"] = "GET, HEAD"
            return response
        return await endpoint(request)

    async def healthz(self, request: web.BaseRequest) -> web.Response:
        """Liveness: answering at all is the proof."""
        return _json({"status": "ok"})

    async def readyz(self, request: web.BaseRequest) -> web.Response:
        """Readiness, as the model agent sees it."""
        ready = self.agent.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def status(self, request: web.BaseRequest) -> web.Response:
        """The agent's status document, for holders of the internal token."""
        if not self.token.allows(request.headers.get(AUTHORIZATION)):
            err: GatewayError = Unauthorized(
                "/status needs the internal token: 'Authorization: Bearer <token>'", "invalid"
            )
            return web.Response(
                status=err.status, body=err.body(), headers=err.headers, content_type=JSON_TYPE
            )
        return _json(self.agent.status())

    async def metrics_text(self, request: web.BaseRequest) -> web.Response:
        """Prometheus exposition, rendered off the event loop (see the module docstring)."""
        async with self._render:
            body = await asyncio.to_thread(self.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
