"""Fixtures of the full-loop tests: cluster, loopback pod IPs, operator, pod simulator.

The cluster fixtures are the integration suite's (same cluster, same rules:
skipped on a developer machine without the local cluster's tools, a failure
under ``CI``). On top of them this suite needs one more thing from the
environment: pod IPs this machine can bind. The local cluster's nodes carry
podCIDRs inside 127.0.0.0/8; a cluster whose nodes do not (an existing
``$KUBECONFIG``, kind) cannot run these tests, and says so rather than sending
test traffic anywhere but loopback.

Every test gets its own namespace, its own operator watching only that
namespace, and its own :class:`~tests.e2e.podsim.PodSimulator`. Processes are
stopped in teardown whatever happened; when a test failed, the operator's log
and the sidecars' logs are printed with its report.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.e2e.helpers import ScopedOperator, cluster_wide_operators
from tests.e2e.podsim import LOOPBACK, PodSimulator
from tests.integration import conftest as integration
from tests.integration.kube import Kubectl
from tests.integration.operator_process import (
    install_crds_and_rbac,
    service_account_kubeconfig,
)

HERE = Path(__file__).resolve().parent

# The integration suite's cluster fixtures, under the same names.
kubeconfig = integration.kubeconfig
kubectl = integration.kubectl
make_namespace = integration.make_namespace
namespace = integration.namespace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests here that run a pod simulator run the full loop: mark them `e2e`."""
    for item in items:
        if HERE in item.path.resolve().parents and "sim" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so teardown knows whether the test failed."""
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"e2e_report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine, fail under CI (the integration suite's rule)."""
    if _in_ci():
        pytest.fail(f"e2e prerequisites missing under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def loopback_pod_networks(kubectl: Kubectl) -> list[ipaddress.IPv4Network]:
    """The nodes' podCIDRs, checked to lie in 127.0.0.0/8 and to be bindable here."""
    nodes = kubectl.json("get", "nodes")["items"]
    networks: list[ipaddress.IPv4Network] = []
    outside: list[str] = []
    for node in nodes:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if not cidr:
            continue
        network = ipaddress.ip_network(cidr)
        if isinstance(network, ipaddress.IPv4Network) and network.subnet_of(LOOPBACK):
            networks.append(network)
        else:
            outside.append(f"{node['metadata']['name']}={cidr}")
    if outside or not networks:
        _unavailable(
            "the full loop needs every node's podCIDR inside 127.0.0.0/8 (the local cluster of "
            f"`make cluster-up` has that); found {', '.join(outside) or 'no podCIDR at all'}"
        )
    probe = str(networks[0].broadcast_address - 1)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((probe, 0))
            sock.listen(1)
    except OSError as exc:
        _unavailable(f"cannot bind the pod IP {probe} on this machine: {exc}")
    return networks


@pytest.fixture(scope="session")
def operator_kubeconfig(kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CRDs and RBAC installed; a kubeconfig that authenticates as the operator's SA."""
    install_crds_and_rbac(kubectl)
    workdir = tmp_path_factory.mktemp("e2e-operator")
    return service_account_kubeconfig(kubectl, workdir / "kubeconfig")


@pytest.fixture
def operator(
    operator_kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    loopback_pod_networks: list[ipaddress.IPv4Network],
) -> Iterator[ScopedOperator]:
    """The real operator, watching only this test's namespace (restartable by the test)."""
    proc = ScopedOperator(
        operator_kubeconfig, tmp_path / "operator.log", [namespace], resync_seconds=10
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        if _failed(request):
            print(f"--- operator log ({proc.log_path}) ---\n{proc.log_tail(6000)}")
            others = cluster_wide_operators()
            if others:
                print("--- WARNING: other operators watch every namespace, this one's too ---")
                print("\n".join(others))


@pytest.fixture
def sim(
    kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    loopback_pod_networks: list[ipaddress.IPv4Network],
) -> Iterator[PodSimulator]:
    """The pod simulator for this test's namespace, already running, empty registry.

    Tests set ``sim.registry`` before they apply an OllamaServer; every pod
    started afterwards gets an emulator serving those models.
    """
    simulator = PodSimulator(kubeconfig, namespace, tmp_path / "pods")
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()
        if _failed(request):
            print(simulator.diagnostics())
    assert not simulator.problems, "pod simulator problems:\n" + "\n".join(simulator.problems)
