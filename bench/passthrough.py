"""The floor for a Python gateway: a bare aiohttp + uvloop pass-through, measured beside ours.

It does what every proxy in the benchmark must do and nothing else: read the request, send
it to the upstream over a kept-alive connection pool, and write the answer back (streams
chunk by chunk, as they arrive; one-document answers whole). No auth, no validation, no
limits, no metrics. Built on the same pieces as the sidecar (``web.Server`` low-level
handler, one ``ClientSession``), so the gap between this row and the sidecar's in
docs/benchmarks.md is what the sidecar's own work costs, and the gap between this row and
nginx is what Python and aiohttp cost. Listens on 127.0.0.1 only.

Run: ``python -m bench.passthrough --upstream http://127.0.0.1:PORT --port 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, istr
from yarl import URL

CONTENT_TYPE = istr("Content-Type")
STREAM_TYPES = ("application/x-ndjson", "text/event-stream")
JSON_HEADERS = {"Content-Type": "application/json"}


class PassThrough:
    """Forwards every request to one upstream."""

    def __init__(self, upstream: str) -> None:
        self.base = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None
        self.urls: dict[str, URL] = {}

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self.session is not None
        path = request.path
        url = self.urls.get(path)
        if url is None:
            url = self.urls[path] = URL(self.base + path)
        body = await request.read()
        async with self.session.request(
            request.method,
            url,
            data=body or None,
            headers=JSON_HEADERS if body else None,
            allow_redirects=False,
        ) as upstream:
            content_type = upstream.headers.get(CONTENT_TYPE, "")
            headers = CIMultiDict({CONTENT_TYPE: content_type}) if content_type else None
            if not content_type.startswith(STREAM_TYPES):
                data = await upstream.read()
                return web.Response(status=upstream.status, body=data, headers=headers)
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            read = upstream.content.readany
            try:
                while chunk := await read():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the client went away; leaving the block closes the upstream answer
            return response


async def serve(upstream: str, port: int) -> None:
    """Listen on 127.0.0.1:``port`` until SIGTERM/SIGINT; prints ``PORT <n>``."""
    proxy = PassThrough(upstream)
    await proxy.start()
    server = web.Server(proxy.handle, handler_cancellation=True, access_log=None)
    runner = web.ServerRunner(server, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock, backlog=4096).start()
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await proxy.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.passthrough``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.upstream, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
