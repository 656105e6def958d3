"""The load generator: wrk, driven with a Lua script, its numbers read back as JSON.

wrk (C, epoll, HdrHistogram-style latency recording with microsecond resolution) keeps the
client out of the measurement: a Python client would need as much CPU per request as the
proxies under test. ``bench/wrk/post.lua`` sends one fixed POST (path, body and API key
from the environment) over keep-alive connections and prints a ``BENCH_JSON`` line with
wrk's own percentiles. One wrk thread: the machine has two cores and the proxy and the
upstream need them more than wrk does.

- Sequential latency: ``-c1``: one connection, each request sent when the previous answer
  arrived. "Added latency" is a proxy's percentile minus the direct one.
- Throughput: ``-c64`` (64 requests in flight at all times); requests per second are
  completed 2xx answers over the run's duration (non-2xx are counted apart, and reported).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "wrk" / "post.lua"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run."""

    connections: int
    seconds: float
    requests: int
    errors: int
    non_2xx: int
    rps: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    mean_us: float
    max_us: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (bench/install.sh installs it)")
    return found


def wrk_version() -> str:
    result = subprocess.run(
        [wrk_binary(), "-v"], capture_output=True, text=True, check=False, timeout=10
    )
    first = (result.stdout or result.stderr).strip().splitlines()
    return first[0].split(" Copyright")[0].removeprefix("wrk ") if first else "unknown"


def run_wrk(
    port: int,
    path: str,
    body: bytes,
    key: str,
    *,
    connections: int,
    seconds: float,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against 127.0.0.1:``port`` and parse its summary."""
    env = dict(os.environ)
    env.update(BENCH_PATH=path, BENCH_BODY=body.decode(), BENCH_KEY=key)
    argv = [
        wrk_binary(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(SCRIPT),
        f"http://127.0.0.1:{port}",
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, env=env, check=False, timeout=seconds + 60
    )
    line = next(
        (x for x in result.stdout.splitlines() if x.startswith("BENCH_JSON ")),
        None,
    )
    if result.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk exited {result.returncode}: {result.stderr.strip() or result.stdout[-500:]}"
        )
    data = json.loads(line.removeprefix("BENCH_JSON "))
    errors = data["connect_errors"] + data["read_errors"] + data["write_errors"]
    errors += data["timeouts"]
    duration = data["duration_us"] / 1e6
    ok = data["requests"] - data["status_errors"]
    empty = data["requests"] == 0
    return WrkResult(
        connections=connections,
        seconds=duration,
        requests=data["requests"],
        errors=errors,
        non_2xx=data["status_errors"],
        rps=ok / duration if duration > 0 else 0.0,
        p50_us=0.0 if empty else data["p50_us"],
        p90_us=0.0 if empty else data["p90_us"],
        p99_us=0.0 if empty else data["p99_us"],
        p999_us=0.0 if empty else data["p999_us"],
        mean_us=data["mean_us"],
        max_us=data["max_us"],
    )
