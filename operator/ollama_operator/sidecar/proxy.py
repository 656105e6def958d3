"""Forwarding one request to Ollama and its answer back, chunk by chunk.

This is the only module that talks to Ollama on a client's behalf. It owns the
one ``aiohttp.ClientSession`` (a pool of kept-alive connections to
127.0.0.1:11434) and applies, per request:

- **timeouts**: ``connect`` (the TCP connect), ``firstByte`` (until Ollama's
  answer starts: model loading and prompt evaluation happen here) and
  ``idle`` (silence between two chunks). One deadline object is moved as the
  exchange advances, instead of a timer per read.
- **retries** (:mod:`.retry`) while nothing reached the client, and the
  **circuit breaker** (:mod:`.breaker`) around every attempt.
- **relaying**: NDJSON and SSE answers are streamed, each upstream chunk
  written to the client as it arrives, never buffered; other answers (one
  JSON document) are read whole and returned as one response, which the
  cache can keep. A client that disconnects cancels the handler (aiohttp's
  handler cancellation) and the upstream connection is closed, so Ollama stops
  generating for nobody.
- **stream metrics**: time to first chunk, time between chunks, and the token
  counts in the answer's last line (:mod:`.usage`), from the last two chunks
  only.

A failure after the first byte cannot change the status any more: the stream
ends with an error line in Ollama's shape (``{"error": "..."}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping

import aiohttp
from aiohttp import web
from multidict import istr
from yarl import URL

from .breaker import CircuitBreaker
from .errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from .metrics import GatewayMetrics
from .retry import RETRY_STATUSES, backoff
from .settings import GatewaySettings
from .usage import TAIL_BYTES, parse_usage

log = logging.getLogger(__name__)

CONTENT_TYPE = istr("Content-Type")
JSON_REQUEST_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}
NO_HEADERS: Mapping[str, str] = {}
#: Answers relayed as streams; anything else is one document.
STREAM_TYPES = ("application/x-ndjson", "text/event-stream")
#: Upstream statuses that count as a failure of Ollama (for the breaker).
FAILURE_STATUSES = frozenset({502, 503, 504})
#: Status recorded for a request whose client went away (nginx's convention).
CLIENT_CLOSED = 499


class Upstream:
    """The client side of the gateway: Ollama behind one connection pool."""

    def __init__(
        self,
        settings: GatewaySettings,
        breaker: CircuitBreaker,
        metrics: GatewayMetrics,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base = settings.upstream
        self._breaker = breaker
        self._metrics = metrics
        self._rand = rand
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self.settings = settings
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout
        )

    def configure(self, settings: GatewaySettings) -> None:
        """Take new timeouts and retry settings (the upstream URL needs a restart)."""
        self.settings = settings
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout
        )

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                timeout=self._client_timeout,
            )

    async def close(self) -> None:
        """Close the pool (open streams are cut)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def url(self, path: str, query: str = "") -> URL:
        """Ollama's URL for a path; known paths are parsed once."""
        if query:
            return URL(f"{self._base}{path}?{query}", encoded=False)
        url = self._urls.get(path)
        if url is None:
            url = URL(self._base + path)
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    async def forward(
        self,
        request: web.BaseRequest,
        path: str,
        body: bytes | None,
        *,
        model: str,
        headers: Mapping[str, str] | None,
        usage: bool,
        started: float,
    ) -> web.StreamResponse:
        """Send the request to Ollama and answer the client with what comes back.

        Returns the prepared-and-finished stream, or a complete ``web.Response``
        for one-document answers. Raises a :class:`~.errors.GatewayError` for
        failures before anything reached the client. ``model`` labels the stream
        metrics, ``usage`` asks for the token counts, ``started`` is when the
        request arrived (loop time; time to first token counts from there).
        """
        session = self._session
        if session is None:
            raise UpstreamUnavailable("the gateway is shutting down")
        settings = self.settings
        loop = asyncio.get_running_loop()
        url = self.url(path, request.query_string)
        method = request.method
        request_headers = JSON_REQUEST_HEADERS if body else NO_HEADERS
        attempt = 0
        phase = "first_byte"
        response: web.StreamResponse | None = None
        upstream: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    probe = self._breaker.admit()
                    deadline.reschedule(loop.time() + settings.first_byte_timeout)
                    try:
                        upstream = await session.request(
                            method,
                            url,
                            data=body,
                            headers=request_headers,
                            timeout=self._client_timeout,
                            allow_redirects=False,
                        )
                    except aiohttp.ConnectionTimeoutError:
                        failure: GatewayError = UpstreamTimeout(
                            f"Ollama did not accept a connection within "
                            f"{settings.connect_timeout:g}s (gateway.timeouts.connect)"
                        )
                        kind = "connect_timeout"
                    except aiohttp.ClientError as exc:
                        failure = UpstreamUnavailable(f"Ollama is not reachable: {_reason(exc)}")
                        kind = "connect"
                    except BaseException:
                        if probe:
                            self._breaker.abandon()
                        raise
                    else:
                        status = upstream.status
                        if status not in FAILURE_STATUSES:
                            self._breaker.success()
                            break
                        self._breaker.failure()
                        self._metrics.upstream_error("status")
                        if status not in RETRY_STATUSES or attempt >= settings.retry_attempts:
                            break
                        upstream.release()
                        upstream = None
                        deadline.reschedule(None)
                        attempt = await self._pause(attempt)
                        continue
                    self._breaker.failure()
                    self._metrics.upstream_error(kind)
                    if attempt >= settings.retry_attempts:
                        log.warning("upstream %s %s failed: %s", method, path, failure.message)
                        raise failure
                    deadline.reschedule(None)
                    attempt = await self._pause(attempt)

                content_type = upstream.headers.get(CONTENT_TYPE, "")
                out_headers = {**headers} if headers else {}
                if content_type:
                    out_headers[CONTENT_TYPE] = content_type
                phase = "idle"
                if not content_type.startswith(STREAM_TYPES):
                    deadline.reschedule(loop.time() + settings.idle_timeout)
                    data = await upstream.read()
                    deadline.reschedule(None)
                    if usage and upstream.status == 200:
                        counts = parse_usage(data[-TAIL_BYTES:])
                        if counts is not None:
                            self._metrics.usage(model, counts)
                    return web.Response(status=upstream.status, body=data, headers=out_headers)

                response = web.StreamResponse(status=upstream.status, headers=out_headers)
                await response.prepare(request)
                ttft, itl = self._metrics.stream_timers(model)
                read = upstream.content.readany
                write = response.write
                idle = settings.idle_timeout
                previous = last = b""
                deadline.reschedule(loop.time() + idle)
                chunk = await read()
                if chunk:
                    now = loop.time()
                    ttft.observe(now - started)
                    while True:
                        previous, last = last, chunk
                        await write(chunk)
                        deadline.reschedule(now + idle)
                        chunk = await read()
                        if not chunk:
                            break
                        then, now = now, loop.time()
                        itl.observe(now - then)
                deadline.reschedule(None)
                if usage:
                    counts = parse_usage(previous + last)
                    if counts is not None:
                        self._metrics.usage(model, counts)
                await response.write_eof()
                return response
        except TimeoutError:
            if phase == "first_byte":
                self._breaker.failure()
                self._metrics.upstream_error("first_byte_timeout")
                raise UpstreamTimeout(
                    f"Ollama did not answer within {settings.first_byte_timeout:g}s "
                    "(gateway.timeouts.firstByte)"
                ) from None
            self._metrics.upstream_error("idle_timeout")
            return await _fail_answer(
                response,
                UpstreamTimeout(
                    f"Ollama sent nothing for {settings.idle_timeout:g}s (gateway.timeouts.idle)"
                ),
            )
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            self._metrics.upstream_error("disconnect")
            return await _fail_answer(
                response,
                UpstreamUnavailable(f"Ollama closed the connection mid-answer: {_reason(exc)}"),
            )
        finally:
            if upstream is not None:
                # Closing (not releasing) an unfinished answer drops the connection, which is
                # how Ollama learns that nobody is waiting for the rest.
                if upstream.content.at_eof():
                    upstream.release()
                else:
                    upstream.close()

    async def _pause(self, attempt: int) -> int:
        """Wait before the next attempt; returns its number."""
        self._metrics.retries.inc()
        await asyncio.sleep(backoff(attempt, self.settings.retry_backoff, self._rand))
        return attempt + 1


async def _fail_answer(
    response: web.StreamResponse | None, error: GatewayError
) -> web.StreamResponse:
    """A failure while reading Ollama's answer.

    Before the answer started, it is the client's error response (raised); after,
    the stream is finished with an error line, as Ollama does, if the client
    still listens: NDJSON gets Ollama's ``{"error": "..."}``, SSE an
    OpenAI-shaped ``data:`` event.
    """
    if response is None:
        raise error

    if response.content_type == "text/event-stream":
        line = b"data: " + error.body(openai=True) + b"\n\n"
    else:
        line = error.body() + b"\n"
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write(line)
        await response.write_eof()
    return response


def _reason(exc: BaseException) -> str:
    """A short, secret-free description of a client error."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or type(exc.os_error).__name__
    text = str(exc)
    return text if text else type(exc).__name__
