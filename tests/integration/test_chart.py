"""The Helm chart installed into the local cluster, and an operator running on what it grants.

``helm install`` must give the CRD, a Deployment whose pod the cluster admits (in a
namespace enforcing the ``restricted`` Pod Security Standard) and runs, and RBAC equal to
manifests/rbac/role.yaml; ``helm uninstall`` must take the Deployment and the RBAC away
and leave the CRD, which other releases and tests share.

Under kwok a pod is Running but no container runs, so the operator in the chart's pod
cannot reconcile anything here. Instead the real ``ollama-operator`` runs as a local
process with the chart Deployment's own arguments and environment, authenticated as the
chart's ServiceAccount: if the chart's RBAC missed a verb, the sample would not become
Ready. The audit log (when the cluster has one) shows the writes were that process's.

Each test watches only namespaces it created, so it never touches other tests' objects,
and never deletes the CRD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import operator_process
from tests.integration.conftest import NamespaceFactory
from tests.integration.kube import REPO_ROOT, Kubectl, cache_dir, tool, wait_for

CHART = REPO_ROOT / "charts" / "ollama-operator"
SAMPLE = REPO_ROOT / "manifests" / "samples" / "ollamaserver-basic.yaml"
CRD = "customresourcedefinition/ollamaservers.ollama.operator.dev"
GROUP = "ollamaservers.ollama.operator.dev"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    binary = tool("helm")
    if binary is None:
        if in_ci():
            pytest.fail("helm not found under CI: run `make tools`", pytrace=False)
        pytest.skip("helm not found: run `make tools`")
    return binary


@dataclass(frozen=True)
class Release:
    """One helm release of the chart, in its own namespace."""

    name: str
    namespace: str
    binary: Path
    kubeconfig: Path

    @property
    def fullname(self) -> str:
        return f"{self.name}-ollama-operator"

    @property
    def service_account_user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def helm(
        self, *args: str, timeout: float = 240, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
        return result


@pytest.fixture
def release(
    kubectl: Kubectl, make_namespace: NamespaceFactory, helm_binary: Path
) -> Iterator[Release]:
    """A release name and a namespace for it that enforces the restricted standard."""
    made = Release(
        name=f"oo-{uuid.uuid4().hex[:6]}",
        namespace=make_namespace(RESTRICTED),
        binary=helm_binary,
        kubeconfig=kubectl.kubeconfig,
    )
    yield made
    made.helm("uninstall", made.name, "--ignore-not-found", timeout=120, check=False)


def sample() -> dict[str, Any]:
    """The basic sample, on an emptyDir: the RBAC under test is the same, and the test
    does not depend on the local cluster's pool of volumes."""
    manifest: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    manifest["spec"]["storage"] = {"mode": "Ephemeral"}
    return manifest


def role_rules() -> list[dict[str, Any]]:
    role = yaml.safe_load((REPO_ROOT / "manifests" / "rbac" / "role.yaml").read_text())
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def exists(kubectl: Kubectl, *args: str) -> bool:
    return kubectl("get", *args, check=False).returncode == 0


def can_i(kubectl: Kubectl, release: Release, *args: str) -> bool:
    answer = kubectl("auth", "can-i", *args, "--as", release.service_account_user, check=False)
    return answer.stdout.strip() == "yes"


def operator_pod_running(kubectl: Kubectl, release: Release) -> dict[str, Any] | None:
    pods = kubectl.json(
        "-n", release.namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={release.name}"
    )["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    return running[0] if running else None


def service_account_kubeconfig(kubectl: Kubectl, release: Release, path: Path) -> Path:
    """A kubeconfig that authenticates as the release's ServiceAccount."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(operator_process, "OPERATOR_NAMESPACE", release.namespace)
        patch.setattr(operator_process, "SERVICE_ACCOUNT", release.fullname)
        return operator_process.service_account_kubeconfig(kubectl, path)


@dataclass
class LocalOperator:
    """``ollama-operator`` as a local process, with a Deployment's args and environment."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalOperator:
        # Ports are the machine's, shared with other tests: no liveness or metrics server.
        argv = [sys.executable, "-m", "ollama_operator.cli", *self.args]
        argv += ["--liveness=", "--metrics-port=0"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def operator_from_deployment(
    kubectl: Kubectl, release: Release, kubeconfig: Path, log_path: Path, *extra_args: str
) -> LocalOperator:
    deployment = kubectl.json("-n", release.namespace, "get", "deployment", release.fullname)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    downward = {"metadata.namespace": release.namespace}
    for e in container.get("env", []):
        field = ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
        if field in downward:
            env[e["name"]] = downward[field]
    env["KUBECONFIG"] = str(kubeconfig)
    return LocalOperator([*container["args"], *extra_args], env, log_path)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def ready_sample(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    result = kubectl("-n", namespace, "get", GROUP, "basic", "-o", "json", check=False)
    if result.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj if condition(obj, "Ready").get("status") == "True" else None


def writes_by(user: str, namespace: str) -> list[tuple[str, str]]:
    """(verb, resource) of every write ``user`` made in ``namespace``, per the audit log."""
    audit = cache_dir() / "audit.log"
    writes = []
    with audit.open(errors="replace") as lines:
        for line in lines:
            if user not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef") or {}
            if event["user"]["username"] == user and ref.get("namespace") == namespace:
                resource = ref.get("resource", "")
                if ref.get("subresource"):
                    resource += "/" + ref["subresource"]
                writes.append((event["verb"], resource))
    return writes


@pytest.mark.parametrize("watch", ["all", "list"])
def test_install_reconcile_uninstall(
    kubectl: Kubectl,
    make_namespace: NamespaceFactory,
    release: Release,
    tmp_path: Path,
    watch: str,
) -> None:
    sample_ns = make_namespace()
    other_ns = make_namespace()
    values: dict[str, Any] = {"image": {"tag": "test"}, "logFormat": "json"}
    if watch == "list":
        values["watchNamespaces"] = [sample_ns]
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))

    # Install: the CRD (created, or already there and left alone), RBAC, a running pod.
    installed = release.helm(
        "install", release.name, str(CHART), "-f", str(values_file), "--wait", "--timeout=180s"
    )
    notes = installed.stdout.split("NOTES:", 1)[-1]
    assert "kubectl get ollama" in notes
    kubectl("wait", "--for=condition=Established", CRD, "--timeout=60s")
    pod = wait_for(
        lambda: operator_pod_running(kubectl, release), timeout=60, what="operator pod Running"
    )
    assert pod["spec"]["serviceAccountName"] == release.fullname
    assert pod["spec"]["containers"][0]["image"] == "ollama-operator:test"

    # RBAC: exactly the manifest's rules, at the scope the values asked for.
    ns_role = ("-n", sample_ns, "role", release.fullname)
    if watch == "all":
        live = kubectl.json("get", "clusterrole", release.fullname)
        assert live["rules"] == role_rules()
        assert not exists(kubectl, *ns_role)
        assert can_i(kubectl, release, "list", "ollamaservers", "--all-namespaces")
        assert can_i(kubectl, release, "create", "statefulsets", "-n", other_ns)
    else:
        live = kubectl.json(*ns_role[:2], "get", *ns_role[2:])
        assert live["rules"] == role_rules()
        assert not exists(kubectl, "clusterrole", release.fullname)
        assert not can_i(kubectl, release, "list", "ollamaservers", "--all-namespaces")
        assert not can_i(kubectl, release, "create", "statefulsets", "-n", other_ns)
    assert can_i(kubectl, release, "list", "ollamaservers", "-n", sample_ns)
    assert not can_i(kubectl, release, "list", "secrets", "-n", sample_ns)
    assert not can_i(kubectl, release, "patch", "ollamaservers", "-n", sample_ns)

    # Reconcile: the operator, as the chart's ServiceAccount, makes the sample Ready. In
    # "all" mode it is kept to the sample's namespace: others' objects are not its business.
    extra = [f"--namespace={sample_ns}"] if watch == "all" else []
    kubeconfig = service_account_kubeconfig(kubectl, release, tmp_path / "kubeconfig")
    kubectl.apply(sample(), "-n", sample_ns)
    local = operator_from_deployment(
        kubectl, release, kubeconfig, tmp_path / "operator.log", *extra
    )
    with local:
        try:
            wait_for(lambda: ready_sample(kubectl, sample_ns), timeout=120, what="sample Ready")
        except TimeoutError:
            pytest.fail(f"sample not Ready; operator log:\n{local.log()}")
        assert local.proc is not None
        assert local.proc.poll() is None, f"operator exited:\n{local.log()}"
    assert exists(kubectl, "-n", sample_ns, "statefulset", "basic")
    assert "Forbidden" not in local.log(), local.log()
    if (cache_dir() / "audit.log").exists():
        writes = writes_by(release.service_account_user, sample_ns)
        others = "no such write by the chart's ServiceAccount: did another operator reconcile it?"
        assert ("patch", "ollamaservers/status") in writes, f"{others} {writes}"
        assert any(resource == "statefulsets" for _, resource in writes), f"{others} {writes}"

    # Uninstall: the Deployment, ServiceAccount and RBAC go; the shared CRD stays.
    release.helm("uninstall", release.name, "--wait", "--timeout=120s")
    assert not exists(kubectl, "-n", release.namespace, "deployment", release.fullname)
    assert not exists(kubectl, "-n", release.namespace, "serviceaccount", release.fullname)
    assert not exists(kubectl, "clusterrole", release.fullname)
    assert not exists(kubectl, "clusterrolebinding", release.fullname)
    assert not exists(kubectl, *ns_role)
    assert not exists(kubectl, "-n", sample_ns, "rolebinding", release.fullname)
    assert exists(kubectl, CRD)
