"""Streaming clients: the delay each proxy adds to a chunk, and 1,000 streams held open.

wrk measures whole requests; a stream needs two other measurements.

**Delay per chunk.** The upstream writes each line of a ``bench-tick`` stream with its send
time in the text (``time.monotonic_ns()``; CLOCK_MONOTONIC is one clock for every process
on the machine). This client reads the stream on a blocking socket and stamps every line
with the time its bytes were received, so ``received - sent`` is the chunk's delay: loopback
and the client's parsing when direct, plus the proxy when proxied. The text survives every
proxy, including LiteLLM's translation to OpenAI's SSE (it becomes ``delta.content``), so
one client measures all of them. Streams run one after another on one kept-alive connection
(a sequential measurement: no queueing in the proxy).

**Streams held open.** :func:`hold_streams` opens N connections (in batches, so the listen
backlog never overflows), starts a ``bench-slow`` stream on each (a line a second) and reads
them to the end, counting those that finished with their last line; the caller samples the
proxy's memory meanwhile.

Both clients speak just enough HTTP/1.1 (fixed length or chunked answers) and connect to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

SENT = re.compile(rb'"(?:response|content)":"(\d{6,20})"')
DONE = re.compile(rb'"done":\s*true|"finish_reason":\s*"stop"|data: \[DONE\]')


def request_bytes(path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """A keep-alive POST to 127.0.0.1."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **headers}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ProtocolError(RuntimeError):
    """The answer was not the HTTP we expected."""


class ChunkedBody:
    """Incremental decoder of an HTTP/1.1 body (chunked or fixed length)."""

    def __init__(self, chunked: bool, length: int | None) -> None:
        self.chunked = chunked
        self.left = length if length is not None else 0
        self.pending = b""
        #: Chunked: bytes of the current chunk's data still to come, then its CRLF.
        self.in_chunk = 0
        self.crlf = False
        self.last = False
        self.finished = (not chunked) and self.left == 0

    def feed(self, data: bytes) -> bytes:
        """Body bytes decoded from ``data``; sets :attr:`finished` at the end."""
        if not self.chunked:
            take = data[: self.left]
            self.left -= len(take)
            self.finished = self.left == 0
            return take
        pending = self.pending + data
        out = bytearray()
        while not self.finished:
            if self.last:
                # The last chunk's empty trailer section (its CRLF) ends the body.
                self.finished = pending.startswith(b"\r\n")
                break
            if self.in_chunk:
                take = pending[: self.in_chunk]
                out += take
                pending = pending[len(take) :]
                self.in_chunk -= len(take)
                if self.in_chunk:
                    break
                self.crlf = True
            if self.crlf:
                if len(pending) < 2:
                    break
                pending = pending[2:]
                self.crlf = False
            end = pending.find(b"\r\n")
            if end < 0:
                break
            size = int(pending[:end].split(b";")[0], 16)
            pending = pending[end + 2 :]
            if size == 0:
                self.last = True
            self.in_chunk = size
        self.pending = pending
        return bytes(out)


def _split_head(buffer: bytes) -> tuple[int, bool, int | None, bytes] | None:
    """``(status, chunked, length, rest)`` once the head is complete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    chunked, length = False, None
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "content-length":
            length = int(value.strip())
    return status, chunked, length, buffer[end + 4 :]


@dataclass
class ChunkDelays:
    """Per-chunk delays (microseconds) of sequential streams through one target."""

    delays_us: list[float] = field(default_factory=list)
    streams: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def measure_chunk_delays(
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    streams: int,
    deadline_s: float,
) -> ChunkDelays:
    """Run ``streams`` tick streams one after another; stamp every line on arrival."""
    out = ChunkDelays()
    request = request_bytes(path, body, headers)
    stop_at = time.monotonic() + deadline_s
    sock: socket.socket | None = None
    try:
        for _ in range(streams):
            if time.monotonic() > stop_at:
                out.errors.append(f"stopped after {deadline_s:g}s")
                break
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                delays = _one_stream(sock, request)
            except (OSError, ProtocolError, ValueError) as exc:
                out.failed += 1
                out.errors.append(f"{type(exc).__name__}: {exc}")
                sock.close()
                sock = None
                continue
            out.streams += 1
            out.delays_us.extend(delays)
    finally:
        if sock is not None:
            sock.close()
    return out


def _one_stream(sock: socket.socket, request: bytes) -> list[float]:
    sock.sendall(request)
    buffer = b""
    parsed = None
    while parsed is None:
        data = sock.recv(65536)
        if not data:
            raise ProtocolError("connection closed before the answer's head")
        buffer += data
        parsed = _split_head(buffer)
    status, chunked, length, rest = parsed
    if status != 200:
        raise ProtocolError(f"status {status}: {rest[:200]!r}")
    decoder = ChunkedBody(chunked, length)
    delays: list[float] = []
    line_tail = b""
    data = rest
    now = time.monotonic_ns()
    while True:
        text = line_tail + decoder.feed(data)
        cut = text.rfind(b"\n")
        complete, line_tail = (text[: cut + 1], text[cut + 1 :]) if cut >= 0 else (b"", text)
        for match in SENT.finditer(complete):
            delays.append((now - int(match.group(1))) / 1000.0)
        if decoder.finished:
            break
        data = sock.recv(65536)
        now = time.monotonic_ns()
        if not data:
            raise ProtocolError("connection closed mid-stream")
    if not delays:
        raise ProtocolError("no timestamped line in the answer")
    return delays


@dataclass
class HeldStreams:
    """Outcome of holding N streams open at once."""

    opened: int = 0
    completed: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1
        self.failed += 1


async def hold_streams(
    port: int,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    count: int,
    batch: int = 100,
    timeout_s: float,
    on_all_open: Callable[[], None] | None = None,
) -> HeldStreams:
    """Open ``count`` streams at once and read each to its end (bounded by ``timeout_s``)."""
    out = HeldStreams()
    request = request_bytes(path, body, headers)
    started = time.monotonic()
    opened = asyncio.Event()

    async def one() -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            out.opened += 1
            if out.opened == count:
                opened.set()
            buffer = b""
            parsed = None
            while parsed is None:
                data = await reader.read(65536)
                if not data:
                    raise ProtocolError("closed before the head")
                buffer += data
                parsed = _split_head(buffer)
            status, chunked, length, rest = parsed
            if status != 200:
                raise ProtocolError(f"status {status}")
            decoder = ChunkedBody(chunked, length)
            tail = decoder.feed(rest)[-256:]
            while not decoder.finished:
                data = await reader.read(65536)
                if not data:
                    raise ProtocolError("closed mid-stream")
                tail = (tail + decoder.feed(data))[-256:]
            if DONE.search(tail) is None:
                raise ProtocolError("ended without its last line")
            out.completed += 1
        except (OSError, ProtocolError, ValueError, asyncio.IncompleteReadError) as exc:
            out.error(type(exc).__name__ + (f": {exc}" if isinstance(exc, ProtocolError) else ""))
        finally:
            if writer is not None:
                writer.close()

    async def run() -> None:
        tasks = []
        for start in range(0, count, batch):
            tasks += [asyncio.create_task(one()) for _ in range(min(batch, count - start))]
            await asyncio.sleep(0.05)
        await asyncio.wait_for(opened.wait(), timeout=timeout_s)
        if on_all_open is not None:
            on_all_open()
        await asyncio.gather(*tasks)

    try:
        await asyncio.wait_for(run(), timeout=timeout_s)
    except TimeoutError:
        out.errors["not finished within the time limit"] = count - out.completed - out.failed
    out.seconds = time.monotonic() - started
    return out
