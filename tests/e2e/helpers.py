"""Pieces the full-loop tests share: an operator per namespace, a status recorder, lookups.

Why an operator per test, watching only that test's namespace: the restart test
kills its operator, and an operator that watches the whole cluster would also
act on the objects of other test sessions running against the same local
cluster (and they on ours). One scoped to a namespace touches nothing else.

Why record every version of the OllamaServer through a watch rather than
sample it: "progress rises", "the phase never went back", "readyReplicas went
1 → 3" are claims about the sequence of writes, and a poll would miss the
short-lived ones that matter most.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tests.integration.kube import Kubectl, wait_for
from tests.integration.operator_process import OperatorProcess

GROUP = "ollamaservers.ollama.operator.dev"
Json = dict[str, Any]


class ScopedOperator(OperatorProcess):
    """``ollama-operator run --namespace NS``, as the operator's ServiceAccount."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        namespaces: list[str],
        resync_seconds: int = 10,
    ) -> None:
        verbose = ("--verbose",) if os.environ.get("E2E_OPERATOR_VERBOSE") else ()
        scope = tuple(arg for ns in namespaces for arg in ("--namespace", ns))
        super().__init__(kubeconfig, log_path, resync_seconds, extra_args=(*verbose, *scope))
        self.namespaces = namespaces


def cluster_wide_operators() -> list[str]:
    """Command lines of other operator processes on this machine that watch every namespace.

    They act on this suite's namespaces too (two controllers writing one status), so a
    failure while one runs says little: the diagnostics name them.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        runs = any(w.endswith(("ollama_operator.cli", "ollama-operator")) for w in words)
        if runs and "run" in words and not any(w.startswith(("--namespace", "-n")) for w in words):
            found.append(f"pid {entry.name}: {' '.join(words)}")
    return found


def server(name: str, models: list[str | Json], replicas: int = 1, **spec: Any) -> Json:
    """An OllamaServer manifest; models given by name or as full entries."""
    spec.setdefault("storage", {"mode": "Ephemeral"})
    return {
        "apiVersion": "ollama.operator.dev/v1alpha1",
        "kind": "OllamaServer",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "models": [{"name": m} if isinstance(m, str) else m for m in models],
            **spec,
        },
    }


def get(kubectl: Kubectl, ns: str, kind: str, name: str) -> Json | None:
    result = kubectl("-n", ns, "get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    obj: Json = json.loads(result.stdout)
    return obj


def condition(obj: Json | None, type_: str) -> Json:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def model_status(obj: Json | None, name: str) -> Json:
    for model in ((obj or {}).get("status") or {}).get("models") or []:
        if model.get("name") == name:
            return dict(model)
    return {}


def events(kubectl: Kubectl, ns: str, name: str) -> list[Json]:
    """Events about the OllamaServer ``name``, oldest first."""
    found = kubectl.json(
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.kind=OllamaServer,involvedObject.name={name}",
    )["items"]
    return sorted(found, key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))


def event_reasons(kubectl: Kubectl, ns: str, name: str, model: str) -> list[str]:
    """Reasons of the Events that name ``model``, oldest first."""
    return [e["reason"] for e in events(kubectl, ns, name) if model in (e.get("message") or "")]


def table(kubectl: Kubectl, ns: str, name: str) -> dict[str, str]:
    """``kubectl get ollama NAME`` as header → cell."""
    lines = kubectl("-n", ns, "get", "ollama", name).stdout.splitlines()
    return dict(zip(lines[0].split(), lines[1].split(), strict=False))


def wait_status(
    kubectl: Kubectl,
    ns: str,
    name: str,
    probe: Callable[[Json], bool],
    *,
    timeout: float,
    what: str,
) -> Json:
    """Wait until ``probe(object)`` holds; on timeout, fail showing the status."""

    def check() -> Json | None:
        obj = get(kubectl, ns, GROUP, name)
        return obj if obj is not None and probe(obj) else None

    try:
        return wait_for(check, timeout=timeout, what=what)
    except TimeoutError:
        obj = get(kubectl, ns, GROUP, name) or {}
        raise AssertionError(
            f"timed out after {timeout:g}s waiting for {what}; status:\n"
            f"{json.dumps(obj.get('status'), indent=1)}"
        ) from None


def is_ready(obj: Json) -> bool:
    return condition(obj, "Ready").get("status") == "True"


def converged(obj: Json) -> bool:
    """Ready, with every model Ready *as the sidecars reported it* (a digest is known).

    Until a sidecar has answered, the controller derives models from pod readiness,
    and kwok reports new pods Ready at once: ``Ready=True`` alone can be that guess.
    """
    models = (obj.get("status") or {}).get("models") or []
    return is_ready(obj) and all(m.get("phase") == "Ready" and m.get("digest") for m in models)


class StatusRecorder:
    """Every version of one object, as ``kubectl get NAME --watch -o json`` streams them."""

    def __init__(self, kubectl: Kubectl, ns: str, kind: str, name: str) -> None:
        self._argv = [
            str(kubectl.binary),
            "--kubeconfig",
            str(kubectl.kubeconfig),
            "-n",
            ns,
            "get",
            kind,
            name,
            "--watch",
            "-o",
            "json",
        ]
        self._versions: list[tuple[float, Json]] = []
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stderr: IO[bytes] | None = None

    def start(self) -> StatusRecorder:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL
        )
        self._thread = threading.Thread(target=self._read, name="status-recorder", daemon=True)
        self._thread.start()
        wait_for(lambda: bool(self.versions()), timeout=30, what="the watch's first object")
        return self

    def stop(self) -> None:
        """Stop watching; fails when the watch had ended on its own (the record has gaps)."""
        ended = self._proc is not None and self._proc.poll() is not None
        if self._proc is not None and not ended:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
        errors = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            errors = self._stderr.read().decode(errors="replace").strip()
            self._stderr.close()
            self._stderr = None
        if ended:
            raise AssertionError(f"the status watch ended early: {errors or 'no message'}")

    def __enter__(self) -> StatusRecorder:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            self.stop()
        except AssertionError:
            if exc_type is None:  # do not hide the failure already on its way
                raise

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        decoder = json.JSONDecoder()
        buffer = ""
        fd = self._proc.stdout.fileno()
        for chunk in iter(lambda: os.read(fd, 65536), b""):
            buffer += chunk.decode(errors="replace")
            while True:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                try:
                    obj, end = decoder.raw_decode(buffer)
                except ValueError:
                    break  # incomplete: wait for more
                buffer = buffer[end:]
                if isinstance(obj, dict):
                    with self._lock:
                        self._versions.append((time.monotonic(), obj))

    def versions(self, since: float = 0.0) -> list[Json]:
        """Objects seen (at or after monotonic time ``since``), oldest first, duplicates kept."""
        with self._lock:
            return [obj for at, obj in self._versions if at >= since]

    def models(self, name: str, since: float = 0.0) -> Iterator[tuple[Json, Json]]:
        """(object, its status.models entry for ``name``) for every version that has one."""
        for obj in self.versions(since):
            entry = model_status(obj, name)
            if entry:
                yield obj, entry
