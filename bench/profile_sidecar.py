"""Part 3: where the sidecar's time goes under load (pyinstrument).

The sidecar runs in-process under pyinstrument's sampling profiler (``async_mode`` off: the
samples are the real stacks of the event-loop thread, which is what limits throughput), as
configured for part 1 (auth and metrics on, cache off). wrk then sends it non-streamed
requests at 64 connections, then streamed ones, then one connection's worth; SIGINT stops
it gracefully and the profile is written:

- ``profile-tree.txt``: the call tree, repeated calls merged (frames under 0.2 % of the
  time left out);
- ``profile-flat.txt``: functions by *self* time, the list to read first: it names the
  code that burns the CPU rather than the code that calls it (computed here from the saved
  session; pyinstrument's own flat view lumps every ``[self]`` together);
- a summary: self time by package, and the inclusive time of the sidecar's own functions.

Time the loop spends waiting in epoll is charged to the frame that started the loop
(``asyncio.runners.run``'s self time): under saturating load it is small, which is the
check that the profile describes a busy process.

Run as a wrapper: ``python -m bench.profile_sidecar --out DIR CONFIG``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import run_wrk
from bench.settings import Settings
from bench.targets import python, start_passthrough, start_sidecar, start_upstream

log = logging.getLogger("bench.profile")

#: Sampling interval (seconds): short enough to resolve a ~100 µs request path.
INTERVAL = 0.0005


LOADS = ((False, 64), (True, 64), (False, 1))


def _profiled(
    what: str, settings: Settings, workdir: Path, outdir: Path, upstream_port: int
) -> dict[str, Any]:
    """Run ``what`` (sidecar or passthrough) under the profiler and the wrk loads."""
    wrapper = [python(), "-m", "bench.profile_sidecar", "--out", str(outdir), "--what", what]
    if what == "sidecar":
        target = start_sidecar(upstream_port, workdir, name="sidecar-profiled", wrapper=wrapper)
    else:
        target = start_passthrough(
            upstream_port, workdir, name="passthrough-profiled", wrapper=wrapper
        )
    assert target.service is not None
    loads = []
    try:
        warm = target.request("bench", stream=False)
        run_wrk(
            target.port, warm.path, warm.body, target.key, connections=16, seconds=settings.warmup_s
        )
        for stream, connections in LOADS:
            seconds = settings.profile_s if connections > 1 else settings.profile_s / 2
            request = target.request("bench", stream=stream)
            result = run_wrk(
                target.port,
                request.path,
                request.body,
                target.key,
                connections=connections,
                seconds=seconds,
            )
            loads.append(
                {
                    "stream": stream,
                    "connections": connections,
                    "seconds": result.seconds,
                    "rps": result.rps,
                    "requests": result.requests,
                }
            )
            log.info(
                "profiled %s: stream=%s c=%d: %.0f req/s", what, stream, connections, result.rps
            )
        code = target.service.interrupt(timeout=120)
        if code != 0:
            raise target.service.fail(f"exited {code}")
    finally:
        target.service.stop()
    session = outdir / "profile.pyisession"
    summary, self_all = summarize(session)
    requests = sum(x["requests"] for x in loads)
    return {
        "loads": loads,
        "summary": summary,
        "cpu_us_per_request": summary["busy_s"] / requests * 1e6 if requests else None,
        "self_all": self_all,
        "requests": requests,
        "session": session,
    }


def run_profile(settings: Settings, workdir: Path, outdir: Path) -> dict[str, Any]:
    """Profile the bare pass-through, then the sidecar, under the same wrk loads.

    The pass-through's profile is the baseline: per request, the sidecar's extra CPU time by
    function is what its own features (and the way it drives aiohttp) cost.
    """
    upstream, upstream_port = start_upstream(settings, workdir)
    try:
        base = _profiled("passthrough", settings, workdir, outdir / "passthrough", upstream_port)
        side = _profiled("sidecar", settings, workdir, outdir / "sidecar", upstream_port)
    finally:
        upstream.stop()
    diff = []
    for key in set(side["self_all"]) | set(base["self_all"]):
        ours = side["self_all"].get(key, 0.0) / side["requests"] * 1e6
        theirs = base["self_all"].get(key, 0.0) / base["requests"] * 1e6
        diff.append((key, ours, theirs, ours - theirs))
    diff.sort(key=lambda row: row[3], reverse=True)
    session = side["session"]
    summary = side["summary"]
    (outdir / "profile-flat.txt").write_text(flat_text(summary))
    (outdir / "profile-tree.txt").write_text(top_tree(session, threshold=0.002, depth=40))
    shutil.copy(session, outdir / "profile.pyisession")
    return {
        "interval_s": INTERVAL,
        "loads": side["loads"],
        "tree": top_tree(session),
        "flat": (outdir / "profile-flat.txt").read_text(),
        "summary": summary,
        "cpu_us_per_request": side["cpu_us_per_request"],
        "passthrough": {
            "loads": base["loads"],
            "summary": base["summary"],
            "cpu_us_per_request": base["cpu_us_per_request"],
        },
        "extra_us_per_request": diff[:25],
    }


#: Self time in these frames is the event loop waiting for I/O (uvloop's C code below them).
IDLE_FRAMES = frozenset({("run", "asyncio/runners.py"), ("run_until_complete", "uvloop")})


#: Library functions whose inclusive time the summary gives (the relay's two halves).
SELECTED = frozenset(
    {
        ("_request", "aiohttp/client.py"),
        ("_handle_request", "aiohttp/web_protocol.py"),
        ("data_received", "aiohttp/web_protocol.py"),
        ("data_received", "aiohttp/client_proto.py"),
    }
)


def _package(path: str) -> str:
    """``aiohttp/client.py`` → ``aiohttp``; built-ins are ``<C built-ins>``."""
    if path.startswith("<"):
        return "<C built-ins>"
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def summarize(session_path: Path, top: int = 40) -> tuple[dict[str, Any], dict[str, float]]:
    """Self time by function and package, inclusive time of ollama_operator's functions."""
    from pyinstrument.session import Session

    root = Session.load(str(session_path)).root_frame()
    if root is None:
        return {"total_s": 0.0, "busy_s": 0.0, "idle_s": 0.0}, {}
    by_function: dict[str, float] = {}
    by_package: dict[str, float] = {}
    inclusive: dict[str, float] = {}
    idle = 0.0

    def visit(frame: Any, open_keys: frozenset[str]) -> None:
        nonlocal idle
        real = [c for c in frame.children if not c.is_synthetic]
        own = frame.time - sum(c.time for c in real)
        path = frame.file_path_short or "?"
        key = f"{frame.function}  {path}:{frame.line_no}"
        if (frame.function, path) in IDLE_FRAMES:
            idle += own
        else:
            by_function[key] = by_function.get(key, 0.0) + own
            package = _package(path)
            by_package[package] = by_package.get(package, 0.0) + own
        if (path.startswith("ollama_operator/") or (frame.function, path) in SELECTED) and (
            key not in open_keys
        ):
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
            open_keys = open_keys | {key}
        for child in real:
            visit(child, open_keys)

    visit(root, frozenset())
    busy = root.time - idle

    def ranked(table: dict[str, float], limit: int) -> list[tuple[str, float, float]]:
        rows = sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:limit]
        return [(k, v, 100.0 * v / busy if busy else 0.0) for k, v in rows]

    return {
        "total_s": root.time,
        "idle_s": idle,
        "busy_s": busy,
        "self_by_function": ranked(by_function, top),
        "self_by_package": ranked(by_package, 12),
        "inclusive_ollama_operator": ranked(inclusive, 30),
    }, by_function


class _Node:
    """A call-tree node with the repeated calls of one function under one parent merged."""

    __slots__ = ("children", "time")

    def __init__(self) -> None:
        self.time = 0.0
        self.children: dict[str, _Node] = {}


def _merge(frame: Any, into: _Node) -> None:
    into.time += frame.time
    for child in frame.children:
        if child.is_synthetic:
            key = "[self]"
        else:
            key = f"{child.function}  {child.file_path_short}:{child.line_no}"
        node = into.children.get(key)
        if node is None:
            node = into.children[key] = _Node()
        _merge(child, node)


def top_tree(session_path: Path, threshold: float = 0.02, depth: int = 16) -> str:
    """The call tree, repeated calls merged, frames under ``threshold`` of the time left out.

    pyinstrument records every resumption of a coroutine as its own frame; merging them by
    function under the same parent gives the tree a reader expects.
    """
    from pyinstrument.session import Session

    frame = Session.load(str(session_path)).root_frame()
    if frame is None:
        return ""
    root = _Node()
    _merge(frame, root)
    total = root.time
    lines: list[str] = []

    def visit(name: str, node: _Node, level: int) -> None:
        share = 100 * node.time / total
        lines.append(f"{node.time:7.3f} s {share:5.1f}%  {'  ' * level}{name}")
        if level >= depth:
            return
        for key, child in sorted(node.children.items(), key=lambda kv: -kv[1].time):
            if child.time >= threshold * total:
                visit(key, child, level + 1)

    visit(f"{frame.function}  {frame.file_path_short}:{frame.line_no}", root, 0)
    return "\n".join(lines) + "\n"


def flat_text(summary: dict[str, Any]) -> str:
    """The summary as text: seconds and share of the busy (non-idle) time."""
    lines = [
        f"profiled {summary['total_s']:.2f} s: busy {summary['busy_s']:.2f} s, "
        f"event loop idle {summary['idle_s']:.2f} s",
        "",
        "self time by package (share of busy time):",
    ]
    lines += [
        f"  {pct:5.1f}%  {sec:7.3f} s  {name}" for name, sec, pct in summary["self_by_package"]
    ]
    lines += ["", "self time by function (share of busy time):"]
    lines += [
        f"  {pct:5.1f}%  {sec:7.3f} s  {name}" for name, sec, pct in summary["self_by_function"]
    ]
    lines += ["", "inclusive time of the sidecar's functions and the relay's (share of busy):"]
    lines += [
        f"  {pct:5.1f}%  {sec:7.3f} s  {name}"
        for name, sec, pct in summary["inclusive_ollama_operator"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """The wrapper: the sidecar (``CONFIG``) or the pass-through (its arguments) profiled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--what", choices=("sidecar", "passthrough"), default="sidecar")
    args, rest = parser.parse_known_args(argv)
    from pyinstrument import Profiler

    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    started = time.monotonic()
    profiler.start()
    try:
        if args.what == "sidecar":
            from ollama_operator.sidecar.app import main as sidecar_main

            code = sidecar_main(rest[-1])
        else:
            from bench.passthrough import main as passthrough_main

            code = passthrough_main(rest)
    finally:
        session = profiler.stop()
        logging.getLogger(__name__).info("profiled %.1f s", time.monotonic() - started)
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        session.save(str(out / "profile.pyisession"))
    return code


if __name__ == "__main__":
    sys.exit(main())
