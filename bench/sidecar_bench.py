"""Part 1: our sidecar against no proxy, nginx, LiteLLM and a bare Python pass-through.

All targets run at once, in front of one upstream, and are measured in one run: each
measurement goes through every target in turn, for several rounds (the order reversed
every other round), so a machine that slows down half-way slows every row alike. The steps:

1. memory idle (every process started, nothing sent yet);
2. warm-up (connection pools filled);
3. sequential latency (wrk ``-c1``) of a non-streamed ``/api/generate``;
4. throughput at 64 connections, non-streamed, then streamed (the instant N-line stream);
5. delay per streamed chunk (:func:`bench.streams.measure_chunk_delays`);
6. memory with 1,000 streams open at once (a line a second each), sampled twice a second,
   in rounds; the memory after each round, compared to the one before, is the leak check;
7. the sidecar's own ``/metrics``: what it counted, compared to what wrk sent (auth and
   metrics were really on).

A target that cannot start (LiteLLM that will not install) is recorded with the error and
the others go on. Everything listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.loadgen import WrkResult, run_wrk
from bench.procs import Service, tree_rss_mib
from bench.settings import Settings
from bench.streams import HeldStreams, hold_streams, measure_chunk_delays
from bench.targets import (
    SIDECAR_KEY,
    Target,
    start_litellm,
    start_nginx,
    start_passthrough,
    start_sidecar,
    start_upstream,
)

log = logging.getLogger("bench.sidecar")

ORDER = ("direct", "nginx", "litellm", "passthrough", "sidecar")


def raise_fd_limit() -> None:
    """1,000 streams need 1,000 client sockets here (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _wrk_rounds(results: list[WrkResult]) -> dict[str, Any]:
    """Median of each statistic over rounds, plus the rounds themselves."""
    if not results:
        return {}
    return {
        "p50_us": statistics.median(r.p50_us for r in results),
        "p99_us": statistics.median(r.p99_us for r in results),
        "rps": statistics.median(r.rps for r in results),
        "requests": sum(r.requests for r in results),
        "errors": sum(r.errors for r in results),
        "non_2xx": sum(r.non_2xx for r in results),
        "rounds": [r.to_json() for r in results],
    }


class SidecarBench:
    """Runs part 1 and collects its results as plain data."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.upstream: Service | None = None
        self.upstream_port = 0
        self.targets: list[Target] = []
        self.failed: dict[str, str] = {}
        self.results: dict[str, dict[str, Any]] = {}

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        raise_fd_limit()
        self.upstream, self.upstream_port = start_upstream(self.settings, self.workdir)
        self.targets.append(Target("direct", self.upstream_port))
        starters = {
            "nginx": start_nginx,
            "litellm": start_litellm,
            "passthrough": start_passthrough,
            "sidecar": start_sidecar,
        }
        for name, starter in starters.items():
            if name == "litellm" and not self.settings.litellm:
                self.failed[name] = "skipped (BENCH_LITELLM=0)"
                continue
            log.info("starting %s", name)
            try:
                self.targets.append(starter(self.upstream_port, self.workdir))
            except Exception as exc:
                log.error("%s did not start: %s", name, exc)
                self.failed[name] = str(exc)
        for target in self.targets:
            self.results[target.name] = {"errors": []}

    def stop(self) -> None:
        for target in self.targets:
            if target.service is not None:
                target.service.stop()
        if self.upstream is not None:
            self.upstream.stop()

    # ---- steps -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        settings = self.settings
        self.start()
        try:
            time.sleep(2.0)
            for target in self.targets:
                if target.service is not None:
                    self.results[target.name]["rss_idle_mib"] = tree_rss_mib(target.service.pid)
            self._warm_up()
            self._wrk_step("sequential", stream=False, connections=1, seconds=settings.sequential_s)
            self._wrk_step(
                "load", stream=False, connections=settings.connections, seconds=settings.load_s
            )
            self._wrk_step(
                "stream_load",
                stream=True,
                connections=settings.connections,
                seconds=settings.load_s,
            )
            time.sleep(1.0)
            for target in self.targets:
                if target.service is not None:
                    self.results[target.name]["rss_after_load_mib"] = tree_rss_mib(
                        target.service.pid
                    )
            self._chunk_step()
            self._held_step()
            self._sidecar_metrics()
        finally:
            self.stop()
        self._log_errors()
        return {
            "upstream": {"stream_chunks": settings.stream_chunks},
            "failed": self.failed,
            "targets": self.results,
        }

    def _ordered(self, round_no: int) -> list[Target]:
        targets = sorted(self.targets, key=lambda t: ORDER.index(t.name))
        return targets if round_no % 2 == 0 else targets[::-1]

    def _warm_up(self) -> None:
        for target in self._ordered(0):
            request = target.request("bench", stream=False)
            with contextlib.suppress(RuntimeError):
                run_wrk(
                    target.port,
                    request.path,
                    request.body,
                    target.key,
                    connections=16,
                    seconds=self.settings.warmup_s,
                )

    def _wrk_step(self, step: str, *, stream: bool, connections: int, seconds: float) -> None:
        log.info("%s: %d connections, %g s per target and round", step, connections, seconds)
        collected: dict[str, list[WrkResult]] = {t.name: [] for t in self.targets}
        for round_no in range(self.settings.rounds):
            for target in self._ordered(round_no):
                request = target.request("bench", stream=stream)
                try:
                    result = run_wrk(
                        target.port,
                        request.path,
                        request.body,
                        target.key,
                        connections=connections,
                        seconds=seconds,
                        timeout_s=30.0 if target.name == "litellm" else 10.0,
                    )
                except (RuntimeError, OSError) as exc:
                    self.results[target.name]["errors"].append(f"{step}: {exc}")
                    continue
                collected[target.name].append(result)
                log.info(
                    "  %-11s p50 %8.0f us  p99 %8.0f us  %8.0f req/s  (non-2xx %d, errors %d)",
                    target.name,
                    result.p50_us,
                    result.p99_us,
                    result.rps,
                    result.non_2xx,
                    result.errors,
                )
        for name, results in collected.items():
            self.results[name][step] = _wrk_rounds(results)

    def _chunk_step(self) -> None:
        settings = self.settings
        log.info(
            "chunk delay: %d streams of %d lines %g ms apart",
            settings.tick_streams,
            settings.tick_chunks,
            settings.tick_ms,
        )
        for target in self._ordered(0):
            request = target.request("bench-tick", stream=True)
            measured = measure_chunk_delays(
                target.port,
                request.path,
                request.body,
                target.headers(),
                streams=settings.tick_streams,
                deadline_s=settings.tick_streams * settings.tick_chunks * settings.tick_ms / 1000
                + 60,
            )
            delays = measured.delays_us
            self.results[target.name]["chunk"] = {
                "streams": measured.streams,
                "failed": measured.failed,
                "chunks": len(delays),
                "p50_us": percentile(delays, 50),
                "p90_us": percentile(delays, 90),
                "p99_us": percentile(delays, 99),
                "mean_us": statistics.fmean(delays) if delays else 0.0,
                "errors": measured.errors[:5],
            }
            log.info(
                "  %-11s p50 %7.0f us  p99 %7.0f us  (%d chunks, %d failed streams)",
                target.name,
                percentile(delays, 50),
                percentile(delays, 99),
                len(delays),
                measured.failed,
            )

    def _held_step(self) -> None:
        settings = self.settings
        for target in self._ordered(0):
            if target.service is None:
                continue
            rounds = (
                settings.held_rounds if target.name == "sidecar" else settings.held_rounds_others
            )
            out = []
            for round_no in range(rounds):
                log.info(
                    "%s: %d streams open for %d s (round %d/%d)",
                    target.name,
                    settings.held_streams,
                    settings.held_seconds,
                    round_no + 1,
                    rounds,
                )
                out.append(asyncio.run(self._hold(target)))
                last = out[-1]
                log.info(
                    "  rss before %.1f MiB, peak %.1f MiB, after %.1f MiB; %d/%d completed",
                    last["rss_before_mib"],
                    last["rss_peak_mib"],
                    last["rss_after_mib"],
                    last["completed"],
                    settings.held_streams,
                )
            self.results[target.name]["held"] = out

    async def _hold(self, target: Target) -> dict[str, Any]:
        assert target.service is not None
        pid = target.service.pid
        settings = self.settings
        request = target.request("bench-slow", stream=True)
        before = tree_rss_mib(pid)
        samples: list[float] = []
        open_samples: list[float] = []
        all_open = asyncio.Event()

        async def sample() -> None:
            while True:
                value = tree_rss_mib(pid)
                samples.append(value)
                if all_open.is_set():
                    open_samples.append(value)
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        timeout = settings.held_seconds + (90 if target.name == "litellm" else 45)
        try:
            held: HeldStreams = await hold_streams(
                target.port,
                request.path,
                request.body,
                target.headers(),
                count=settings.held_streams,
                timeout_s=timeout,
                on_all_open=all_open.set,
            )
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await asyncio.sleep(2.0)
        return {
            "streams": settings.held_streams,
            "completed": held.completed,
            "failed": held.failed,
            "errors": dict(list(held.errors.items())[:5]),
            "seconds": held.seconds,
            "rss_before_mib": before,
            "rss_peak_mib": max(samples, default=before),
            "rss_open_mean_mib": statistics.fmean(open_samples) if open_samples else 0.0,
            "rss_after_mib": tree_rss_mib(pid),
        }

    def _log_errors(self) -> None:
        """ERROR lines in the sidecar's log, by the exception that ended each (if any)."""
        target = next((t for t in self.targets if t.name == "sidecar"), None)
        if target is None or target.service is None:
            return
        errors: dict[str, int] = {}
        pending = ""
        for line in target.service.log_path.read_text(errors="replace").splitlines():
            if " ERROR " in line:
                if pending:
                    errors[pending] = errors.get(pending, 0) + 1
                pending = line.split(" ERROR ", 1)[1]
            elif pending and line and not line.startswith((" ", "Traceback")):
                errors[f"{pending} → {line}"] = errors.get(f"{pending} → {line}", 0) + 1
                pending = ""
        if pending:
            errors[pending] = errors.get(pending, 0) + 1
        self.results["sidecar"]["log_errors"] = errors

    def _sidecar_metrics(self) -> None:
        """What the sidecar counted (``ollama_gateway_requests_total``), by route and code."""
        target = next((t for t in self.targets if t.name == "sidecar"), None)
        if target is None:
            return
        url = f"http://127.0.0.1:{target.admin_port}/metrics"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {SIDECAR_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                text = answer.read().decode()
        except OSError as exc:
            self.results["sidecar"]["metrics_error"] = str(exc)
            return
        counted: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("ollama_gateway_requests_total{"):
                labels, _, value = line.rpartition(" ")
                counted[labels.removeprefix("ollama_gateway_requests_total")] = float(value)
        self.results["sidecar"]["metrics_requests"] = counted
