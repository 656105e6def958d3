"""``make bench``: run the three parts, keep the raw results, render docs/benchmarks.md.

Order matters on a 2-core machine: the sidecar part and the profile run first, with the
local cluster idle; the controller part last, alone with its cluster. A part that fails is
recorded with its error and the others still run; a part not selected (``BENCH_PARTS``)
keeps its results from the previous run, with that run's date. Raw results go to
``bench/results/results.json`` (plus the profile files), logs of every process to a fresh
directory whose path is printed at the end.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.loadgen import wrk_version
from bench.settings import Settings, from_env
from bench.targets import litellm_binary, nginx_binary

log = logging.getLogger("bench")

RESULTS_DIR = report.REPO / "bench" / "results"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_kib / 1024 / 1024,
        "kernel": f"{platform.system()} {platform.release()}",
        "loadavg": " ".join(_read("/proc/loadavg").split()[:3]),
    }


def _version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return ""
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else ""


def tools() -> dict[str, str]:
    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return ""

    litellm = ""
    binary = litellm_binary()
    if binary.is_file():
        litellm = _version(
            [
                str(binary.parent / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ]
        )
    nginx = nginx_binary()
    return {
        "Python": platform.python_version(),
        "aiohttp": dist("aiohttp"),
        "uvloop": dist("uvloop"),
        "pydantic": dist("pydantic"),
        "prometheus-client": dist("prometheus-client"),
        "kopf": dist("kopf"),
        "wrk": wrk_version() if shutil.which("wrk") else "",
        "nginx": _version([nginx, "-v"]).removeprefix("nginx version: nginx/") if nginx else "",
        "LiteLLM": litellm,
        "pyinstrument": dist("pyinstrument"),
    }


def litellm_failure() -> str | None:
    """Why LiteLLM is missing, from the installer's log (bench/install.sh)."""
    if litellm_binary().is_file():
        return None
    log_path = Path(os.environ.get("LITELLM_INSTALL_LOG", ""))
    tail = _read(str(log_path))[-2500:] if log_path.name else ""
    return f"LiteLLM could not be installed: no {litellm_binary()}\n{tail}".strip()


def _part(name: str, work: Any) -> dict[str, Any]:
    started = time.monotonic()
    loadavg = machine()["loadavg"]
    log.info("==== %s ==== (load average %s)", name, loadavg)
    try:
        out: dict[str, Any] = work()
    except Exception as exc:
        log.error("%s failed: %s", name, exc)
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    out["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out["wall_s"] = time.monotonic() - started
    out["loadavg_at_start"] = loadavg
    log.info("%s took %.0f s", name, out["wall_s"])
    return out


def run(settings: Settings) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="ollama-bench-"))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    previous: dict[str, Any] = {}
    if report.RESULTS.is_file():
        previous = json.loads(report.RESULTS.read_text())
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": settings.quick,
            "machine": machine(),
            "tools": tools(),
            "settings": {k: v for k, v in asdict(settings).items() if k != "parts"},
            "parts": sorted(settings.parts),
        }
    }
    failure = litellm_failure() if settings.litellm and "sidecar" in settings.parts else None
    if failure:
        log.warning("%s", failure.splitlines()[0])

    if "sidecar" in settings.parts:
        from bench.sidecar_bench import SidecarBench

        def sidecar() -> dict[str, Any]:
            out = SidecarBench(settings, workdir).run()
            if failure:
                out["failed"]["litellm"] = failure
            return out

        results["sidecar"] = _part("sidecar", sidecar)
    if "profile" in settings.parts:
        from bench.profile_sidecar import run_profile

        def profile() -> dict[str, Any]:
            out = run_profile(settings, workdir, workdir / "profile")
            for name in ("profile-tree.txt", "profile-flat.txt"):
                shutil.copy(workdir / "profile" / name, RESULTS_DIR / name)
            return out

        results["profile"] = _part("profile", profile)
    if "controller" in settings.parts:
        from bench.controller_bench import ControllerBench

        def controller() -> dict[str, Any]:
            bench = ControllerBench(settings, workdir)
            server = bench.kubectl("version", "-o", "json", check=False).stdout
            try:
                version = "Kubernetes " + json.loads(server)["serverVersion"]["gitVersion"]
            except (ValueError, KeyError):
                version = ""
            out = bench.run()
            out["meta"] = {"kubernetes": version}
            return out

        results["controller"] = _part("controller", controller)
    for part in ("sidecar", "profile", "controller"):
        if part not in results and part in previous:
            results[part] = previous[part]
    results["meta"]["workdir"] = str(workdir)
    report.RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    report.DOC.write_text(report.render(results))
    log.info("wrote %s and %s; logs in %s", report.DOC, report.RESULTS, workdir)
    return results


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout
    )
    settings = from_env()
    started = time.monotonic()
    results = run(settings)
    log.info("done in %.0f s", time.monotonic() - started)
    errors = [p for p in ("sidecar", "profile", "controller") if "error" in (results.get(p) or {})]
    if errors:
        log.error("parts that failed: %s (see docs/benchmarks.md)", ", ".join(errors))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
