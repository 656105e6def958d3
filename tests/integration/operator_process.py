"""Run the real ``ollama-operator run`` as the ServiceAccount defined in manifests/.

The operator authenticates with a token of the ``ollama-operator`` ServiceAccount,
so every integration test also proves the RBAC in ``manifests/rbac`` is enough
(and, through the audit log, that it stays quiet at rest).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import yaml

from tests.integration.kube import REPO_ROOT, Kubectl

OPERATOR_NAMESPACE = "ollama-operator-system"
SERVICE_ACCOUNT = "ollama-operator"
SA_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"


def install_crds(kubectl: Kubectl) -> None:
    """The CRD, waited until Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/ollamaservers.ollama.operator.dev",
        "--timeout=60s",
    )


def install_crds_and_rbac(kubectl: Kubectl) -> None:
    """CRD (waited until Established), the operator namespace, the ServiceAccount and RBAC."""
    install_crds(kubectl)
    kubectl("apply", "-f", str(REPO_ROOT / "manifests" / "operator" / "namespace.yaml"))
    kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "rbac"))


def service_account_kubeconfig(kubectl: Kubectl, path: Path) -> Path:
    """A kubeconfig for the same API server that authenticates as the operator's SA."""
    token = kubectl(
        "-n", OPERATOR_NAMESPACE, "create", "token", SERVICE_ACCOUNT, "--duration=4h"
    ).stdout.strip()
    admin: dict[str, Any] = yaml.safe_load(kubectl.kubeconfig.read_text())
    context_name = admin.get("current-context") or admin["contexts"][0]["name"]
    context = next(c for c in admin["contexts"] if c["name"] == context_name)["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    cluster_def = dict(cluster["cluster"])
    ca = cluster_def.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster_def["certificate-authority"] = str((kubectl.kubeconfig.parent / ca).resolve())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster_def}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class OperatorProcess:
    """``python -m ollama_operator.cli run`` in the background, restartable and killable."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        resync_seconds: int = 10,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        #: More `ollama-operator run` flags, e.g. ("--namespace", "ns") to scope it.
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    #: Every started, not yet stopped operator of this test session.
    running: ClassVar[set[OperatorProcess]] = set()

    @property
    def cluster_wide(self) -> bool:
        """Watches every namespace (no ``--namespace``), so it reconciles any probe too."""
        return not any(a == "--namespace" or a.startswith("--namespace=") for a in self.extra_args)

    def start(self) -> None:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["OLLAMA_OPERATOR_RESYNC_SECONDS"] = str(self.resync_seconds)
        env["OLLAMA_OPERATOR_IMAGE"] = "ollama-operator:test"
        # As the Deployment's downward API would: the NetworkPolicies admit this namespace.
        env["POD_NAMESPACE"] = OPERATOR_NAMESPACE
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ollama_operator.cli",
                "run",
                "--liveness=",
                "--metrics-port=0",
                *self.extra_args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        OperatorProcess.running.add(self)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited at once; see {self.log_path}:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        OperatorProcess.running.discard(self)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies under the operator."""
        self.stop(signal.SIGKILL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def cluster_wide_paused() -> Iterator[None]:
    """Stop this session's cluster-wide operators for a while, and start them again.

    What the foreign-operator probe needs mid-session: they would answer it themselves.
    """
    paused = [p for p in list(OperatorProcess.running) if p.cluster_wide and p.alive()]
    for proc in paused:
        proc.stop()
    try:
        yield
    finally:
        for proc in paused:
            proc.start()
