"""Reading a request body: at most ``gateway.maxBodyBytes``, decoded, in time, or a 4xx.

aiohttp decodes ``Content-Encoding`` (gzip, deflate, and br or zstd where their
libraries are installed) while the body streams in, so the limit applies to
the decoded size: a small compressed body cannot unpack past it. A body that
does not decode as its encoding says, a malformed chunked encoding, or a body
shorter than its ``Content-Length`` all surface as aiohttp's
``RequestPayloadError`` while reading; they are the client's error (400,
:class:`~.errors.InvalidBody`), never the gateway's 500. The message names the
encoding only when it is one of the known tokens, so nothing the client wrote
is echoed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from multidict import istr

from .errors import InvalidBody, RequestTimeout, body_too_large

CONTENT_ENCODING = istr("Content-Encoding")
#: Encodings named back to the client; anything else is "its Content-Encoding".
KNOWN_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd", "identity"})


async def read_body(request: web.BaseRequest, limit: int, time_limit: float) -> bytes:
    """The whole (decoded) body, refusing (413) as soon as it is over ``limit``.

    A body that takes longer than ``time_limit`` seconds to arrive is a 408: a client
    trickling a byte a second would otherwise hold its connection (and, on the
    inference routes, nothing else) for as long as it likes.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise body_too_large(limit)
    try:
        async with asyncio.timeout(time_limit):
            return await _read(request, limit)
    except web.RequestPayloadError as exc:
        raise undecodable(request, exc) from None
    except TimeoutError:
        raise RequestTimeout(
            f"request body not received within {time_limit:g}s (clients.timeouts.body)"
        ) from None


async def _read(request: web.BaseRequest, limit: int) -> bytes:
    content = request.content
    first = await content.readany()
    if content.at_eof():
        if len(first) > limit:
            raise body_too_large(limit)
        return first
    parts = [first]
    size = len(first)
    while True:
        chunk = await content.readany()
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        parts.append(chunk)


def undecodable(request: web.BaseRequest, exc: web.RequestPayloadError) -> InvalidBody:
    """The 400 for a body aiohttp could not read, naming the encoding when it is a known one."""
    if isinstance(exc.__cause__, ContentEncodingError):
        encoding = request.headers.get(CONTENT_ENCODING, "").strip().lower()
        named = f"Content-Encoding {encoding}" if encoding in KNOWN_ENCODINGS else "its encoding"
        return InvalidBody(f"request body does not decode as {named}")
    return InvalidBody(
        "request body is malformed: its framing (Content-Length or chunks) is broken"
    )
