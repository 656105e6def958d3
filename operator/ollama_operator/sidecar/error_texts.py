"""Fixed phrases for what went wrong between the gateway and Ollama.

The texts of the exceptions aiohttp and asyncio raise are written for a
developer: ``Connect call failed ('127.0.0.1', 18001)`` names the pod's
internal address and port, ``<TransferEncodingError: 400, message=...>`` is a
repr of aiohttp's internals. A client of the gateway needs to know only what
kind of failure it was, so errors that reach a client (a 502 body, the last
line of a broken stream) use the phrases below and nothing from the
exception's text. The sidecar's log, read by the operator, may say more.
Pure.
"""

from __future__ import annotations

import errno

import aiohttp

#: Ollama's connection failed or broke after the answer started.
MID_ANSWER = "Ollama closed the connection mid-answer"

_BY_ERRNO = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection reset",
    errno.ETIMEDOUT: "connection timed out",
}


def reason(exc: BaseException) -> str:
    """A short phrase for a failed exchange with Ollama; never the exception's own text."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _os_phrase(exc.os_error)
    if isinstance(exc, OSError):
        return _os_phrase(exc)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "answer cut short"
    return "connection failed"


def _os_phrase(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return _BY_ERRNO.get(error.errno or 0, "connection failed")
