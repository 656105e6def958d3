"""Helpers for integration tests: where the local cluster's tools live, and kubectl.

The binaries come from ``make tools`` (``$CACHE_DIR/bin``, default
``~/.cache/ollama-operator/bin``); the local cluster's kubeconfig is
``$CACHE_DIR/kubeconfig`` (``make cluster-up``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO_ROOT / "tools" / "cluster.sh"

T = TypeVar("T")


def cache_dir() -> Path:
    """``$CACHE_DIR``, as the Makefile defines it."""
    configured = os.environ.get("CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "ollama-operator"


def local_kubeconfig() -> Path:
    """Where ``make cluster-up`` writes the local cluster's kubeconfig."""
    return cache_dir() / "kubeconfig"


def tool(name: str) -> Path | None:
    """A tool built by ``make tools``, else one on ``$PATH``, else None."""
    cached = cache_dir() / "bin" / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    found = shutil.which(name)
    return Path(found) if found else None


class KubectlError(RuntimeError):
    """kubectl exited non-zero (with check=True)."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
        self.result = result


@dataclass(frozen=True)
class Kubectl:
    """Runs kubectl against one cluster: ``kubectl("get", "pods", "-n", ns)``."""

    binary: Path
    kubeconfig: Path

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def json(self, *args: str) -> Any:
        """``kubectl <args> -o json``, parsed."""
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, manifest: str | Mapping[str, Any], *args: str) -> str:
        """``kubectl apply -f -`` of a YAML/JSON string or an object."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self("apply", "-f", "-", *args, input=text).stdout

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (e.g. the operator) talking to this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.binary.parent}{os.pathsep}{env.get('PATH', '')}"
        return env


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 60,
    interval: float = 0.5,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something other than None/False; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
