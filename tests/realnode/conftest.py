"""Fixtures for the real-node tier: a kubelet that runs real containers.

``make realnode-up`` (``tools/realnode.sh up``, run by ``make test`` as root) starts a
second local cluster whose one node runs containerd, runc and a CNI bridge inside a
network namespace, imports the images ``make images`` built, and runs an OCI registry
holding the test model. Its kubeconfig is ``$CACHE_DIR/realnode.kubeconfig``; the API
server is reached through a bridge on 127.0.0.1.

Once per session the chart is installed with the built operator image into a namespace
enforcing the ``restricted`` Pod Security Standard, watching a pool of namespaces made
for this session only, so a demo operator left running elsewhere never sees the tests'
objects, and the tests' operator never sees the demo's.

Without the node the tests are skipped on a developer machine and fail under ``CI``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from tests.integration.kube import REPO_ROOT, Kubectl, cache_dir, tool, wait_for

HERE = Path(__file__).resolve().parent
CHART = REPO_ROOT / "charts" / "ollama-operator"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
#: Namespaces the session's operator watches; each module or test takes one.
POOL_SIZE = 4
#: The registry Service and models tools/realnode.sh provides.
REGISTRY = "10.96.0.50:5000"
MODEL = f"{REGISTRY}/library/gemma3:270m"
MODEL2 = f"{REGISTRY}/library/gemma3-t0:270m"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/realnode needs the real node: mark it `realnode`."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.realnode)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"real node unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def rn_kubectl() -> Kubectl:
    """kubectl bound to the real node's cluster."""
    path = cache_dir() / "realnode.kubeconfig"
    binary = tool("kubectl")
    if binary is None:
        _unavailable("kubectl not found: run `make tools`")
    if not path.is_file():
        _unavailable("the real node is not running: run `make realnode-up` (as root)")
    client = Kubectl(binary=binary, kubeconfig=path)
    probe = client("get", "--raw=/readyz", check=False, timeout=30)
    if probe.returncode != 0:
        _unavailable(f"the real node's API server is not ready: {probe.stderr.strip()}")
    return client


@pytest.fixture(scope="session")
def helm() -> Path:
    binary = tool("helm")
    if binary is None:
        _unavailable("helm not found: run `make tools`")
    return binary


@dataclass
class Release:
    """The chart installed once for the session, and the namespaces it watches."""

    name: str
    namespace: str
    pool: list[str]
    taken: list[str] = field(default_factory=list)

    def take(self) -> str:
        free = [ns for ns in self.pool if ns not in self.taken]
        if not free:
            raise RuntimeError(f"the namespace pool ({len(self.pool)}) is used up: raise POOL_SIZE")
        self.taken.append(free[0])
        return free[0]


def _namespace(kubectl: Kubectl, name: str) -> None:
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/part-of": "ollama-operator-tests", **RESTRICTED},
            },
        }
    )
    wait_for(
        lambda: (
            kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
        timeout=60,
        what=f"ServiceAccount {name}/default",
    )


@pytest.fixture(scope="session")
def release(rn_kubectl: Kubectl, helm: Path) -> Iterator[Release]:
    """``helm install`` of the chart with the image ``make images`` built."""
    sid = uuid.uuid4().hex[:6]
    rel = Release(
        name=f"rn-{sid}",
        namespace=f"rn-{sid}-operator",
        pool=[f"rn-{sid}-{i}" for i in range(1, POOL_SIZE + 1)],
    )
    for ns in (rel.namespace, *rel.pool):
        _namespace(rn_kubectl, ns)
    env = rn_kubectl.env()
    result = subprocess.run(
        [
            str(helm),
            "install",
            rel.name,
            str(CHART),
            "--namespace",
            rel.namespace,
            "--set",
            "watchNamespaces={" + ",".join(rel.pool) + "}",
            "--set",
            "logFormat=plain",
            "--wait",
            "--timeout",
            "5m",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=360,
        check=False,
    )
    if result.returncode != 0:
        pods = rn_kubectl("-n", rel.namespace, "get", "pods", "-o", "wide", check=False).stdout
        events = rn_kubectl("-n", rel.namespace, "get", "events", check=False).stdout
        pytest.fail(
            f"helm install failed ({result.returncode}):\n{result.stderr[-3000:]}\n"
            f"pods:\n{pods}\nevents:\n{events[-3000:]}",
            pytrace=False,
        )
    yield rel
    subprocess.run(
        [str(helm), "uninstall", rel.name, "--namespace", rel.namespace, "--wait"],
        capture_output=True,
        env=env,
        timeout=180,
        check=False,
    )
    for ns in (*rel.pool, rel.namespace):
        rn_kubectl("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
