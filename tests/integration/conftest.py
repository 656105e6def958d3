"""Fixtures for tests against a real Kubernetes API server.

Cluster selection, once per session:

* ``$KUBECONFIG`` names an existing file: that cluster is used as it is.
* otherwise the local cluster is started (or reused) with ``tools/cluster.sh up``
  (what ``make cluster-up`` runs) and ``$CACHE_DIR/kubeconfig`` is used.

When the local cluster's tools were never built (``make tools``) the tests are
skipped, except under ``CI`` (any non-empty value but ``0``/``false``), where a
missing cluster is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.integration import foreign_operator
from tests.integration.kube import (
    CLUSTER_SCRIPT,
    REPO_ROOT,
    Kubectl,
    cache_dir,
    local_kubeconfig,
    tool,
    wait_for,
)
from tests.integration.operator_process import (
    OperatorProcess,
    install_crds_and_rbac,
    service_account_kubeconfig,
)

CLUSTER_UP_TIMEOUT_S = 600
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs the cluster: mark it `integration`."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine, fail in CI."""
    if _in_ci():
        pytest.fail(f"integration cluster unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    """Path of the kubeconfig of the cluster the integration tests run against."""
    configured = os.environ.get("KUBECONFIG", "")
    if configured and Path(configured).is_file():
        return Path(configured)

    # tools/cluster.sh runs what `make tools` built, never a copy found on $PATH.
    bin_dir = cache_dir() / "bin"
    missing = [
        name for name in ("kubectl", "kwokctl", "kube-apiserver") if not (bin_dir / name).is_file()
    ]
    if missing:
        _unavailable(
            f"no KUBECONFIG and the local cluster's tools are missing ({', '.join(missing)}): "
            "run `make tools` (or `make cluster-up`)"
        )
    try:
        result = subprocess.run(
            [str(CLUSTER_SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=CLUSTER_UP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`tools/cluster.sh up` took over {CLUSTER_UP_TIMEOUT_S}s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"`tools/cluster.sh up` exited {result.returncode}:\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    path = local_kubeconfig()
    if not path.is_file():
        pytest.fail(f"`tools/cluster.sh up` succeeded but wrote no {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    """kubectl bound to the test cluster: ``kubectl("get", "nodes")``."""
    binary = tool("kubectl")
    if binary is None:
        _unavailable("kubectl not found: run `make tools`")
    client = Kubectl(binary=binary, kubeconfig=kubeconfig)
    probe = client("get", "--raw=/readyz", check=False, timeout=30)
    if probe.returncode != 0:
        pytest.fail(
            f"the API server of {kubeconfig} is not ready: {probe.stderr.strip()}", pytrace=False
        )
    return client


def _namespace_name(nodeid: str) -> str:
    test = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", test.lower()).strip("-")[:40].strip("-")
    return f"it-{slug}-{uuid.uuid4().hex[:6]}"


NamespaceFactory = Callable[..., str]


@pytest.fixture
def make_namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[NamespaceFactory]:
    """Create uniquely named namespaces (with optional labels), deleted after the test."""
    created: list[str] = []

    def factory(labels: dict[str, str] | None = None) -> str:
        name = _namespace_name(request.node.nodeid)
        all_labels = {"app.kubernetes.io/part-of": "ollama-operator-tests", **(labels or {})}
        kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": all_labels},
            }
        )
        created.append(name)
        # Pods are admitted only once kube-controller-manager made the namespace's
        # "default" ServiceAccount.
        wait_for(
            lambda: (
                kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
            ),
            timeout=60,
            what=f"ServiceAccount {name}/default",
        )
        return name

    yield factory

    for name in created:
        kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespace(make_namespace: NamespaceFactory) -> str:
    """A fresh namespace for one test (deleted afterwards)."""
    return make_namespace()


@pytest.fixture(scope="session", autouse=True)
def no_foreign_operator(kubectl: Kubectl) -> None:
    """Stop the session at once when an operator outside it reconciles a fresh namespace.

    Autouse and session-scoped, so it runs before any test (and any test operator)
    starts; see :mod:`tests.integration.foreign_operator` for how it decides.
    """
    if foreign_operator.skipped():
        return
    found = foreign_operator.probe(kubectl)
    if found is not None:
        pytest.exit(foreign_operator.message(found), returncode=pytest.ExitCode.TESTS_FAILED)


@pytest.fixture(scope="session")
def operator(
    kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The tests' operator: cluster-wide, authenticated as the manifests' ServiceAccount.

    One per session (two cluster-wide operators would reconcile the same objects).
    """
    install_crds_and_rbac(kubectl)
    storage = REPO_ROOT / "tools" / "cluster" / "storage.sh"
    subprocess.run([str(storage), str(kubectl.binary), str(kubectl.kubeconfig)], check=True)
    workdir = tmp_path_factory.mktemp("operator")
    sa_config = service_account_kubeconfig(kubectl, workdir / "kubeconfig")
    proc = OperatorProcess(sa_config, workdir / "operator.log", resync_seconds=5)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def op(operator: OperatorProcess) -> OperatorProcess:
    """The running operator (restarted if a previous test killed it)."""
    if not operator.alive():
        operator.start()
    return operator
