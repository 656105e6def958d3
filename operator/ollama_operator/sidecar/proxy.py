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
- **relaying** (:mod:`.relay`): NDJSON and SSE answers are streamed, each
  upstream chunk written to the client as it arrives, never buffered; other
  answers (one JSON document) are read into memory up to
  :data:`BUFFER_BYTES` and returned as one response, which the cache can
  keep; a larger document is relayed chunk by chunk like a stream, so memory
  per request stays bounded whatever Ollama sends. ``idle`` applies between
  chunks, never to a whole body. A client that disconnects cancels the handler
  (aiohttp's handler cancellation) and a client that stops reading for
  ``idle`` seconds is dropped; either way the upstream connection is closed,
  so Ollama stops generating for nobody.
- **the breaker's probe**: half-open, the gateway asks ``GET /api/version``
  itself and requests wait for that verdict; a first-byte timeout triggers
  the same probe instead of counting as a failure.
- **stream metrics**: time to first chunk, time between chunks, and the token
  counts in the answer's last line (:mod:`.usage`), from the last two chunks
  only.

A failure after the first byte cannot change the status any more: the stream
ends with an error line in Ollama's shape (``{"error": "..."}``), a relayed
document with a closed connection. Error texts are fixed phrases
(:mod:`.error_texts`), never an exception's text.
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
from .cache import MAX_ENTRY_BYTES
from .error_texts import MID_ANSWER, reason
from .errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from .metrics import GatewayMetrics
from .relay import CLIENT_STALLED, FIRST_BYTE, UPSTREAM_IDLE, Relay
from .retry import RETRY_STATUSES, backoff
from .settings import GatewaySettings
from .usage import TAIL_BYTES, parse_usage

log = logging.getLogger(__name__)

CONTENT_TYPE = istr("Content-Type")
CONTENT_LENGTH = istr("Content-Length")
#: A one-document answer up to this size is read whole (so the cache can keep it and a
#: failure can still be a 502); a larger one is relayed chunk by chunk, never held whole.
BUFFER_BYTES = MAX_ENTRY_BYTES
#: What the breaker's probe asks for: answered at once by a working Ollama, even a busy one.
PROBE_PATH = "/api/version"
#: Seconds the probe's answer may take after the connect.
PROBE_ANSWER_SECONDS = 5.0
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
        self._probe_task: asyncio.Task[None] | None = None
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
        task, self._probe_task = self._probe_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if session is not None:
            await session.close()

    def url(self, path: str, query: str = "") -> URL:
        """Ollama's URL for a path and an already-encoded query; known paths are parsed once.

        Both come from :mod:`.paths` (built from the route, never the client's path), so
        they are taken as encoded: decoding and re-parsing them could turn data into a
        query, a fragment or a dot segment.
        """
        if query:
            return URL(f"{self._base}{path}?{query}", encoded=True)
        url = self._urls.get(path)
        if url is None:
            url = URL(self._base + path, encoded=True)
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    async def forward(
        self,
        request: web.BaseRequest,
        path: str,
        query: str,
        body: bytes | None,
        *,
        model: str,
        headers: Mapping[str, str] | None,
        usage: bool,
        started: float,
    ) -> web.StreamResponse:
        """Send the request to Ollama and answer the client with what comes back.

        Returns the prepared-and-finished stream, or a complete ``web.Response``
        for one-document answers of at most :data:`BUFFER_BYTES`. ``path`` and
        ``query`` are what to ask Ollama for (from :mod:`.paths`), never the
        client's own. Raises a :class:`~.errors.GatewayError` for failures before
        anything reached the client, and ``ConnectionResetError`` for a client
        that stopped reading. ``model`` labels the stream metrics, ``usage`` asks
        for the token counts, ``started`` is when the request arrived (loop time;
        time to first token counts from there).
        """
        session = self._session
        if session is None:
            raise UpstreamUnavailable("the gateway is shutting down")
        settings = self.settings
        loop = asyncio.get_running_loop()
        url = self.url(path, query)
        method = request.method
        request_headers = JSON_REQUEST_HEADERS if body else NO_HEADERS
        attempt = 0
        relay = Relay(loop, settings.idle_timeout)
        response: web.StreamResponse | None = None
        upstream: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                relay.deadline = deadline
                while True:
                    while self._breaker.admit():
                        await self.probe()
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
                        failure = UpstreamUnavailable(f"Ollama is not reachable: {reason(exc)}")
                        kind = "connect"
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
                relay.phase = UPSTREAM_IDLE
                read = upstream.content.readany
                if not content_type.startswith(STREAM_TYPES):
                    chunks, size, chunk = [], 0, b""
                    while size <= BUFFER_BYTES:
                        chunk = await relay.read(read)
                        if not chunk:
                            break
                        chunks.append(chunk)
                        size += len(chunk)
                    if size <= BUFFER_BYTES:
                        relay.done()
                        data = b"".join(chunks)
                        if usage and upstream.status == 200:
                            self._count_usage(model, data[-TAIL_BYTES:])
                        return web.Response(status=upstream.status, body=data, headers=out_headers)
                    # Too large to hold (and so to cache): relay the rest as it comes.
                    response = web.StreamResponse(status=upstream.status, headers=out_headers)
                    length = upstream.headers.get(CONTENT_LENGTH)
                    if length is not None and length.isdigit():
                        response.content_length = int(length)
                    await response.prepare(request)
                    relay.document = True
                    tail = await relay.copy(read, response.write, b"".join(chunks))
                    if usage and upstream.status == 200:
                        self._count_usage(model, tail[-TAIL_BYTES:])
                    await response.write_eof()
                    return response

                response = web.StreamResponse(status=upstream.status, headers=out_headers)
                await response.prepare(request)
                ttft, itl = self._metrics.stream_timers(model)
                first = await relay.read(read)
                if first:
                    ttft.observe(loop.time() - started)
                tail = await relay.copy(read, response.write, first, itl)
                if usage:
                    self._count_usage(model, tail)
                await response.write_eof()
                return response
        except TimeoutError:
            if relay.phase == FIRST_BYTE:
                # Slow is not down: one tenant's long prompt must not open the circuit for
                # everyone. Ask Ollama something cheap; only a failed probe counts.
                self._metrics.upstream_error("first_byte_timeout")
                self.probe_soon()
                raise UpstreamTimeout(
                    f"Ollama did not answer within {settings.first_byte_timeout:g}s "
                    "(gateway.timeouts.firstByte)"
                ) from None
            if relay.phase == CLIENT_STALLED:
                # The client stopped reading: neither Ollama's fault nor worth an error line
                # (nobody reads it). Drop the connection; the gateway records a 499.
                self._metrics.slow_clients.inc()
                if request.transport is not None:
                    request.transport.close()
                raise ConnectionResetError("the client stopped reading") from None
            self._metrics.upstream_error("idle_timeout")
            return await _fail_answer(
                request,
                response,
                UpstreamTimeout(
                    f"Ollama sent nothing for {settings.idle_timeout:g}s (gateway.timeouts.idle)"
                ),
                document=relay.document,
                within=settings.idle_timeout,
            )
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
            self._metrics.upstream_error("disconnect")
            return await _fail_answer(
                request,
                response,
                UpstreamUnavailable(MID_ANSWER),
                document=relay.document,
                within=settings.idle_timeout,
            )
        finally:
            if upstream is not None:
                # Closing (not releasing) an unfinished answer drops the connection, which is
                # how Ollama learns that nobody is waiting for the rest.
                if upstream.content.at_eof():
                    upstream.release()
                else:
                    upstream.close()

    def _count_usage(self, model: str, tail: bytes) -> None:
        counts = parse_usage(tail)
        if counts is not None:
            self._metrics.usage(model, counts)

    # ---- the breaker's probe -----------------------------------------------------------------

    async def probe(self) -> None:
        """Wait for the verdict of the gateway's own probe (one at a time, shared by all)."""
        task = self._probe_task
        if task is None or task.done():
            task = self._probe_task = asyncio.get_running_loop().create_task(self._check())
        await asyncio.shield(task)

    def probe_soon(self) -> None:
        """Start a probe if none is running, without waiting for it."""
        task = self._probe_task
        if task is None or task.done():
            self._probe_task = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        """``GET /api/version``: cheap, answered at once by a working Ollama, busy or not."""
        session = self._session
        ok = False
        if session is not None:
            limit = self.settings.connect_timeout + PROBE_ANSWER_SECONDS
            try:
                async with (
                    asyncio.timeout(limit),
                    session.get(self.url(PROBE_PATH), timeout=self._client_timeout) as answer,
                ):
                    await answer.read()
                    ok = answer.status not in FAILURE_STATUSES
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok = False
        if ok:
            self._breaker.success()
        else:
            self._breaker.failure()
        self._metrics.circuit_probes.labels("ok" if ok else "failed").inc()

    async def _pause(self, attempt: int) -> int:
        """Wait before the next attempt; returns its number."""
        self._metrics.retries.inc()
        await asyncio.sleep(backoff(attempt, self.settings.retry_backoff, self._rand))
        return attempt + 1


async def _fail_answer(
    request: web.BaseRequest,
    response: web.StreamResponse | None,
    error: GatewayError,
    *,
    document: bool,
    within: float,
) -> web.StreamResponse:
    """A failure while reading Ollama's answer.

    Before the answer started, it is the client's error response (raised); after,
    a stream is finished with an error line, as Ollama does, if the client still
    listens (within ``within`` seconds: a client that stopped reading must not hold
    the request forever): NDJSON gets Ollama's ``{"error": "..."}``, SSE an
    OpenAI-shaped ``data:`` event. A one-document answer that was being relayed
    cannot carry an error line; its connection is closed, so the client sees a
    truncated body instead of a complete-looking one.
    """
    if response is None:
        raise error
    if document:
        if request.transport is not None:
            request.transport.close()
        return response

    if response.content_type == "text/event-stream":
        line = b"data: " + error.body(openai=True) + b"\n\n"
    else:
        line = error.body() + b"\n"
    with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
        async with asyncio.timeout(within):
            await response.write(line)
            await response.write_eof()
    return response
