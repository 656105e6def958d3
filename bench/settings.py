"""How long and how hard the benchmark runs: one place, two presets.

``make bench`` runs the full preset (about 15 minutes on a quiet 2-core machine, every loop
bounded in time and count). ``BENCH_QUICK=1`` runs the same steps with short durations and
small counts, to check that everything works end to end in a few minutes; its numbers are
not the ones to publish. ``BENCH_PARTS`` picks parts (``sidecar,controller,profile``;
default all), ``BENCH_LITELLM=0`` skips LiteLLM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settings:
    """Every duration (seconds) and count of a run."""

    quick: bool = False
    parts: frozenset[str] = frozenset({"sidecar", "controller", "profile"})
    litellm: bool = True
    # ---- sidecar: load ----
    #: Measurement rounds; each round measures every target once, one after another, so
    #: slow drift of the machine touches all targets alike. Reported: median over rounds.
    rounds: int = 3
    warmup_s: float = 2.0
    #: Sequential latency: one connection, one request after another, per round.
    sequential_s: float = 4.0
    #: Throughput at ``connections`` concurrent connections, per round.
    load_s: float = 4.0
    connections: int = 64
    #: The instant upstream's stream: lines per answer (the last one is ``done``).
    stream_chunks: int = 8
    # ---- sidecar: chunk delay ----
    tick_streams: int = 30
    tick_chunks: int = 50
    tick_ms: float = 4.0
    # ---- sidecar: memory under 1,000 streams ----
    held_streams: int = 1000
    held_seconds: int = 20
    #: Rounds of held streams for our sidecar (flat RSS across rounds = no leak).
    held_rounds: int = 3
    #: Rounds for the other proxies (their memory is a reference, not a target).
    held_rounds_others: int = 1
    # ---- profile ----
    profile_s: float = 8.0
    # ---- controller ----
    latency_objects: int = 50
    burst_objects: int = 200
    scale_objects: int = 500
    #: The operator's resync period during the run; the at-rest window spans several.
    resync_s: int = 20
    rest_window_s: float = 60.0
    converge_timeout_s: float = 300.0


QUICK = Settings(
    quick=True,
    rounds=1,
    warmup_s=1.0,
    sequential_s=2.0,
    load_s=2.0,
    tick_streams=6,
    held_seconds=5,
    held_rounds=2,
    profile_s=3.0,
    latency_objects=10,
    burst_objects=20,
    scale_objects=40,
    resync_s=5,
    rest_window_s=15.0,
    converge_timeout_s=180.0,
)


def from_env(env: dict[str, str] | None = None) -> Settings:
    """The preset chosen by ``BENCH_QUICK``, with ``BENCH_PARTS`` and ``BENCH_LITELLM``."""
    env = dict(os.environ) if env is None else env
    quick = env.get("BENCH_QUICK", "").strip().lower() not in ("", "0", "false", "no")
    settings = QUICK if quick else Settings()
    parts = env.get("BENCH_PARTS", "").strip()
    if parts:
        settings = replace(settings, parts=frozenset(p.strip() for p in parts.split(",")))
    if env.get("BENCH_LITELLM", "1").strip().lower() in ("0", "false", "no"):
        settings = replace(settings, litellm=False)
    return settings
