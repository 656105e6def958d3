"""The benchmark's upstream: an Ollama that answers at once, as cheaply as a socket allows.

Every proxy in the benchmark (nginx, LiteLLM, the bare aiohttp pass-through, our sidecar)
and the direct baseline talk to this one process, so what differs between the rows of the
table is only the proxy. It must therefore cost as little per request as possible: it is a
bare ``asyncio.Protocol`` on uvloop with its own minimal HTTP/1.1 parser and answers built
once at start, not an aiohttp application (``tests/support/ollama_emulator.py`` is faithful
to Ollama's behaviour; this one is faithful only to its wire format, and fast).

Wire format, as Ollama's: ``POST /api/generate`` and ``POST /api/chat`` answer one JSON
document (``application/json; charset=utf-8``) when the body says ``"stream": false``, else
NDJSON (``application/x-ndjson``, chunked transfer encoding, one line per HTTP chunk) whose
last line has ``"done": true`` and the usual counters (``eval_count``, ``eval_duration``
…). ``/api/tags``, ``/api/ps``, ``/api/version``, ``/api/show`` and ``GET /`` answer what a
sidecar's model agent and LiteLLM ask at start.

The model named in the request picks the stream's shape (so no proxy needs to pass extra
fields through):

- ``bench``: N lines written back to back (``--chunks``), a fixed body: throughput.
- ``bench-tick``: N lines ``--tick-ms`` apart whose text is the send time
  (``time.monotonic_ns()``, one clock for every process on the machine), so a client can
  compute each chunk's delay: the chunk-delay test.
- ``bench-slow``: one line a second for ``--slow-seconds``: long-lived streams for the
  memory test (1,000 at once).

Listens on 127.0.0.1 only. Run: ``python -m bench.upstream --port 0`` (prints the port).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

CREATED_AT = "2025-01-01T00:00:00.000000000Z"
MODELS = ("bench", "bench-tick", "bench-slow")
DIGEST = "a" * 64
VERSION = "0.11.4"
MAX_HEADER = 64 * 1024


@dataclass(frozen=True)
class Shape:
    """How the upstream answers: the stream profiles of the three models."""

    chunks: int = 16
    tick_chunks: int = 50
    tick_ms: float = 4.0
    slow_seconds: int = 30


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _final(model: str, chat: bool, count: int) -> dict[str, Any]:
    """The last object of an answer: Ollama's counters (fixed values)."""
    out: dict[str, Any] = {"model": model, "created_at": CREATED_AT}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    out.update(
        done=True,
        done_reason="stop",
        total_duration=25_000_000,
        load_duration=1_000_000,
        prompt_eval_count=12,
        prompt_eval_duration=4_000_000,
        eval_count=count,
        eval_duration=20_000_000,
    )
    if not chat:
        out["context"] = list(range(1, 13))
    return out


def _line(model: str, chat: bool, text: str) -> bytes:
    if chat:
        obj: dict[str, Any] = {
            "model": model,
            "created_at": CREATED_AT,
            "message": {"role": "assistant", "content": text},
            "done": False,
        }
    else:
        obj = {"model": model, "created_at": CREATED_AT, "response": text, "done": False}
    return _dumps(obj) + b"\n"


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _head(status: str, content_type: str, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{framing}\r\n"
        "Date: Wed, 01 Jan 2025 00:00:00 GMT\r\n\r\n"
    ).encode()


def _document(body: bytes, status: str = "200 OK") -> bytes:
    return _head(status, "application/json; charset=utf-8", len(body)) + body


STREAM_HEAD = _head("200 OK", "application/x-ndjson", None)
CHUNKED_END = b"0\r\n\r\n"


class Answers:
    """Every answer that does not depend on time, rendered once."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        tags = {
            "models": [
                {
                    "name": f"{m}:latest",
                    "model": f"{m}:latest",
                    "modified_at": "2025-01-01T00:00:00Z",
                    "size": 1_000_000,
                    "digest": DIGEST,
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "llama",
                        "families": ["llama"],
                        "parameter_size": "1M",
                        "quantization_level": "Q4_K_M",
                    },
                }
                for m in MODELS
            ]
        }
        show = {
            "license": "",
            "modelfile": "FROM bench\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": tags["models"][0]["details"],
            "model_info": {"general.architecture": "llama", "llama.context_length": 4096},
            "capabilities": ["completion"],
        }
        self.get = {
            "/": _head("200 OK", "text/plain; charset=utf-8", 17) + b"Ollama is running",
            "/api/tags": _document(_dumps(tags)),
            "/api/ps": _document(b'{"models":[]}'),
            "/api/version": _document(_dumps({"version": VERSION})),
        }
        self.show = _document(_dumps(show))
        self.not_found = _document(b'{"error":"404 page not found"}', "404 Not Found")
        self.bad_request = _document(b'{"error":"invalid request body"}', "400 Bad Request")
        # The fixed answers of model "bench", per route: (document, stream pieces).
        self.fixed: dict[bool, tuple[bytes, list[bytes]]] = {}
        for chat in (False, True):
            words = ["tok "] * (shape.chunks - 1)
            if chat:
                doc = _final("bench", True, len(words))
                doc["message"]["content"] = "".join(words)
            else:
                doc = _final("bench", False, len(words))
                doc["response"] = "".join(words)
            pieces = [STREAM_HEAD]
            pieces += [_chunk(_line("bench", chat, w)) for w in words]
            pieces.append(_chunk(_dumps(_final("bench", chat, len(words))) + b"\n") + CHUNKED_END)
            self.fixed[chat] = (_document(_dumps(doc)), pieces)


class TimedStream:
    """A stream whose lines leave ``gap`` seconds apart, each carrying its send time."""

    def __init__(
        self,
        transport: asyncio.Transport,
        model: str,
        chat: bool,
        lines: int,
        gap: float,
        done: Callable[[], None],
    ) -> None:
        self.transport = transport
        self.model = model
        self.chat = chat
        self.left = lines - 1
        self.sent = 0
        self.gap = gap
        self.done = done
        self.loop = asyncio.get_running_loop()
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.transport.write(STREAM_HEAD)
        self._tick()

    def _tick(self) -> None:
        self.handle = None
        if self.transport.is_closing():
            return
        if self.left > 0:
            self.left -= 1
            self.sent += 1
            text = str(time.monotonic_ns())
            self.transport.write(_chunk(_line(self.model, self.chat, text)))
            self.handle = self.loop.call_later(self.gap, self._tick)
            return
        final = _dumps(_final(self.model, self.chat, self.sent)) + b"\n"
        self.transport.write(_chunk(final) + CHUNKED_END)
        self.done()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class UpstreamProtocol(asyncio.Protocol):
    """One client connection: keep-alive HTTP/1.1, one request at a time."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.stream: TimedStream | None = None
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stream is not None:
            self.stream.cancel()
            self.stream = None
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer = self.buffer + data if self.buffer else data
        if self.stream is None:
            self._serve()

    def _stream_done(self) -> None:
        self.stream = None
        if self.close_after and self.transport is not None:
            self.transport.close()
            return
        if self.buffer:
            self._serve()

    def _serve(self) -> None:
        """Answer every complete request in the buffer (stops while a timed stream runs)."""
        transport = self.transport
        while transport is not None and self.stream is None and not transport.is_closing():
            buf = self.buffer
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    transport.close()
                return
            head = buf[:end]
            line_end = head.find(b"\r\n")
            request_line = head if line_end < 0 else head[:line_end]
            lower = head.lower()
            length = 0
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : stop if stop >= 0 else None])
            elif b"\r\ntransfer-encoding:" in lower:
                transport.write(self.answers.bad_request)
                transport.close()
                return
            total = end + 4 + length
            if len(buf) < total:
                return
            body = buf[end + 4 : total]
            self.buffer = buf[total:]
            self.close_after = b"\r\nconnection: close" in lower
            method, _, rest = request_line.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0].decode("latin-1")
            self._answer(transport, method, path, body)
            if self.close_after and self.stream is None:
                transport.close()
                return

    def _answer(self, transport: asyncio.Transport, method: bytes, path: str, body: bytes) -> None:
        answers = self.answers
        if method in (b"GET", b"HEAD"):
            transport.write(answers.get.get(path, answers.not_found))
            return
        chat = path == "/api/chat"
        if not chat and path != "/api/generate":
            transport.write(answers.show if path == "/api/show" else answers.not_found)
            return
        try:
            request = json.loads(body)
        except ValueError:
            transport.write(answers.bad_request)
            return
        model = str(request.get("model", "bench")).removesuffix(":latest")
        streams = request.get("stream", True) is not False
        shape = answers.shape
        if model == "bench-tick" and streams:
            self._timed(transport, model, chat, shape.tick_chunks, shape.tick_ms / 1000.0)
        elif model == "bench-slow" and streams:
            self._timed(transport, model, chat, shape.slow_seconds + 1, 1.0)
        else:
            document, pieces = answers.fixed[chat]
            if not streams:
                transport.write(document)
            else:
                for piece in pieces:
                    transport.write(piece)

    def _timed(
        self, transport: asyncio.Transport, model: str, chat: bool, lines: int, gap: float
    ) -> None:
        self.stream = TimedStream(transport, model, chat, lines, gap, self._stream_done)
        self.stream.start()


async def serve(port: int, shape: Shape, ready: Callable[[int], None]) -> None:
    """Listen on 127.0.0.1:``port`` until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    answers = Answers(shape)
    server = await loop.create_server(
        lambda: UpstreamProtocol(answers), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    sock = server.sockets[0]
    ready(int(sock.getsockname()[1]))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.upstream``: prints ``PORT <n>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunks", type=int, default=Shape.chunks, help="lines of a stream")
    parser.add_argument("--tick-chunks", type=int, default=Shape.tick_chunks)
    parser.add_argument("--tick-ms", type=float, default=Shape.tick_ms)
    parser.add_argument("--slow-seconds", type=int, default=Shape.slow_seconds)
    args = parser.parse_args(argv)
    shape = Shape(args.chunks, args.tick_chunks, args.tick_ms, args.slow_seconds)

    def ready(port: int) -> None:
        print(f"PORT {port}", flush=True)

    import uvloop

    uvloop.run(serve(args.port, shape, ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
