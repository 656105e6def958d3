"""What is wrong with a request aiohttp could not parse, in words that quote none of it.

aiohttp's parse errors carry the offending bytes in their message (llhttp's
errors quote the line and point at the byte; ``LineTooLong`` and
``InvalidHeader`` repeat the line). The offending line is often the one with
``Authorization`` or ``X-API-Key``, so :func:`describe` never uses those
messages: it picks a fixed phrase by exception type, or, for llhttp's errors,
llhttp's own reason, which is a constant string of the C parser (``Invalid
header value char``, ``Unexpected whitespace after header value``) and is
recognised by its shape, ``<reason>:\\n\\n  <quoted bytes>``. Pure.
"""

from __future__ import annotations

import re

from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)

#: llhttp's reasons are constant phrases; anything else is not quoted.
_LLHTTP_REASON = re.compile(r"[A-Za-z][A-Za-z0-9 ,'/_-]{0,79}")
#: aiohttp's own message for TLS bytes on a plain-HTTP port.
_TLS = "Received HTTPS traffic on an HTTP port"


def describe(exc: BaseException | None) -> str:
    """The problem with a request aiohttp refused, as a fixed phrase."""
    if isinstance(exc, LineTooLong):
        limit = str(exc.args[1]) if len(exc.args) > 1 else ""
        limit = limit if limit.isdigit() else "the limit of"
        return f"a request or header line is longer than {limit} bytes"
    if isinstance(exc, BadHttpMethod):
        return (
            "TLS traffic on a plain HTTP port"
            if exc.message == _TLS
            else ("invalid method in the request line")
        )
    if isinstance(exc, BadStatusLine):
        return "invalid request line"
    if isinstance(exc, InvalidHeader):
        return "invalid header line"
    if isinstance(exc, InvalidURLError):
        return "invalid request target"
    if isinstance(exc, HttpProcessingError):
        reason, sep, _ = exc.message.partition(":\n")
        if sep and _LLHTTP_REASON.fullmatch(reason):
            return reason
    return "the request does not parse"


def is_noise(exc: BaseException | None) -> bool:
    """Non-HTTP bytes (port scanners, TLS): logged at debug level, as aiohttp does."""
    return isinstance(exc, BadHttpMethod)
