"""The HTTP server both ports run on: aiohttp's, minus what a hostile client could abuse.

:class:`GatewayServer` is ``web.Server`` whose connections are
:class:`GatewayRequestHandler` s, aiohttp's ``RequestHandler`` with four changes:

- **Malformed requests are never echoed.** When aiohttp's parser refuses a
  request (a NUL or control character in a header, an obs-fold, a space before
  the colon, a line over 8 KiB, a bare LF), its stock answer is a 400 whose body
  quotes the offending bytes, and its ``aiohttp.server`` logger writes them again
  with a traceback; the offending line is often the one carrying the key. The
  override of ``handle_error`` (aiohttp's hook for exactly this) answers
  ``{"error": "malformed HTTP request: <problem>"}`` with a phrase from
  :mod:`.malformed` and logs one line without a traceback. Bugs (a handler
  raising) still log theirs; the client gets a generic 500.
- **Client-triggered log lines are throttled** (:mod:`.throttled_log`): anyone
  can send malformed requests, without a key, as fast as they like.
- **Slow and idle clients are cut off.** A connection must deliver a request's
  headers within ``header_timeout`` of its opening or of the first byte of the
  request (slowloris), and may sit idle between requests for
  ``keepalive_timeout`` (aiohttp's own keep-alive timer, whose default is an
  hour). The body has its own deadline, applied where it is read
  (:mod:`.body`).
- **Open connections are capped** (``max_connections``, the public port only):
  one over the cap is answered ``503`` and closed at once, so a flood of
  connections cannot take every file descriptor and the admin port, a
  separate server without a cap, keeps answering the kubelet's probes.

aiohttp also logs "Unhandled exception" with a traceback when, after the
answer, it drains the rest of a body that does not decode (bad gzip, broken
chunks): :meth:`GatewayRequestHandler.log_exception` makes that a debug line.
``GatewayServer`` builds its connections as ``web.Server.__call__`` does (aiohttp
3.x keeps the loop and the keyword arguments in ``_loop`` and ``_kwargs``).
Settings change live (:meth:`GatewayServer.configure`) for new connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from .errors import InternalError, MalformedRequest
from .malformed import describe, is_noise
from .settings import ConnectionSettings
from .throttled_log import ThrottledLog

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
#: The whole answer to a connection over the cap: written before any request is read.
FULL_BODY = (
    b'{"error":"the gateway has too many open connections (clients.maxConnections); retry later"}'
)
FULL_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: " + str(len(FULL_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\n" + FULL_BODY
)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ServerLogs:
    """The throttled logs of one server: all its connections share one budget."""

    def __init__(self) -> None:
        self.malformed = ThrottledLog(log, "malformed requests")
        self.errors = ThrottledLog(log, "unexpected errors")
        self.refused = ThrottledLog(log, "refused connections")


class GatewayRequestHandler(RequestHandler):
    """One connection: aiohttp's request handler, hardened (see the module)."""

    __slots__ = ("_awaiting", "_header_timer", "_refused", "_server")

    def __init__(self, server: GatewayServer, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._server = server
        #: Between requests: the next bytes start a request whose headers are due.
        self._awaiting = True
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # ---- connection lifetime -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the connection, or answer 503 and close it when the server is full."""
        server = self._server
        if server.full():
            self._refused = True
            server.on_refused()
            server.logs.refused.log(
                logging.WARNING,
                "connection refused: %d connections open (clients.maxConnections)",
                len(server.open),
            )
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(FULL_ANSWER)
            transport.close()
            return
        server.open.add(self)
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the connection (a refused one was never taken)."""
        if self._refused:
            return
        self._server.open.discard(self)
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """The first bytes of a request start its header deadline."""
        if self._awaiting and self._header_timer is None:
            self._arm_header_timer()
        super().data_received(data)

    def request_started(self) -> None:
        """The headers are in: the request is the handler's now."""
        self._awaiting = False
        self._cancel_header_timer()

    def request_finished(self, body_left: bool) -> None:
        """The handler is done: idle until the next request (aiohttp's keep-alive timer).

        When the handler left part of the body unread (a 401, a body timeout), aiohttp
        reads and drops the rest for up to 10 s before the next request; the header
        deadline bounds that too, so a client trickling a body gains nothing.
        """
        self._awaiting = True
        if body_left:
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        if self.transport is None:  # already lost (a handler finishing after a disconnect)
            return
        self._header_timer = asyncio.get_running_loop().call_later(
            self._server.settings.header_timeout, self._header_timeout
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._awaiting:
            log.debug("closing a connection that sent no complete request headers in time")
            self.force_close()

    # ---- errors ------------------------------------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer for a request that failed before or outside the handler.

        ``message`` (aiohttp's text, which quotes the request) is ignored on purpose.
        """
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had started; nothing more can be sent")
        logs = self._server.logs
        if status >= 500:
            logs.errors.log(
                logging.ERROR, "error answering a request from %s", request.remote, exc_info=exc
            )
            error: MalformedRequest | InternalError = InternalError(
                "internal gateway error; the sidecar's log has the details"
            )
        else:
            problem = describe(exc)
            level = logging.DEBUG if is_noise(exc) else logging.WARNING
            logs.malformed.log(level, "malformed HTTP request from %s: %s", request.remote, problem)
            error = MalformedRequest(f"malformed HTTP request: {problem}")
        response = web.Response(
            status=status, body=error.body(), headers={"Content-Type": JSON_TYPE}
        )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's error log, minus client errors it reports as unhandled exceptions."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | HttpProcessingError):
            log.debug("request body from a client could not be read: %s", type(exc).__name__)
            return
        self._server.logs.errors.log(
            logging.ERROR, *args, exc_info=exc if exc is not None else True
        )


class GatewayServer(web.Server):
    """``web.Server`` whose connections are :class:`GatewayRequestHandler` s."""

    def __init__(
        self,
        handler: Handler,
        *,
        settings: ConnectionSettings | None = None,
        on_refused: Callable[[], None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        """``handler`` and ``kwargs`` as for ``web.Server``; ``on_refused`` counts refusals."""
        super().__init__(self._dispatch, **kwargs)
        self._handler = handler
        self.settings = settings if settings is not None else ConnectionSettings()
        self.logs = ServerLogs()
        self.on_refused = on_refused
        #: Connections taken and not yet lost.
        self.open: set[GatewayRequestHandler] = set()

    def configure(self, settings: ConnectionSettings) -> None:
        """New timeouts and cap; connections opened from now on use them."""
        self.settings = settings

    def full(self) -> bool:
        """Whether a new connection would be over the cap."""
        cap = self.settings.max_connections
        return cap is not None and len(self.open) >= cap

    def __call__(self) -> RequestHandler:
        """A handler for a new connection."""
        kwargs = {**self._kwargs, "keepalive_timeout": self.settings.keepalive_timeout}
        return GatewayRequestHandler(self, loop=self._loop, **kwargs)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        protocol = request.protocol
        if isinstance(protocol, GatewayRequestHandler):
            protocol.request_started()
            try:
                return await self._handler(request)
            finally:
                protocol.request_finished(not request.content.at_eof())
        return await self._handler(request)
