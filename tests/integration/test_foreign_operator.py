"""The session-start check for a foreign operator: it fires for one that watches every
namespace, and stays quiet for one watching only another namespace (a current ``make
demo``). Both foreign operators are real ``ollama-operator run`` processes, started as
the demo starts its own (the admin kubeconfig), and proven live before the probe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import foreign_operator
from tests.integration.conftest import NamespaceFactory
from tests.integration.kube import Kubectl, wait_for
from tests.integration.operator_process import OperatorProcess, cluster_wide_paused
from tests.integration.test_controller import GROUP, get, server


@pytest.fixture
def foreign(tmp_path: Path, kubectl: Kubectl) -> Iterator[list[OperatorProcess]]:
    """Foreign operators a test starts, while the session's own cluster-wide one pauses."""
    started: list[OperatorProcess] = []
    with cluster_wide_paused():
        yield started
        for proc in started:
            proc.stop()


def start_live(kubectl: Kubectl, log: Path, namespace: str, *args: str) -> OperatorProcess:
    """An operator process, returned once it has reconciled a server in ``namespace``."""
    proc = OperatorProcess(kubectl.kubeconfig, log, extra_args=args)
    proc.start()
    kubectl.apply(server("alive", replicas=0), "-n", namespace)
    try:
        wait_for(
            lambda: (get(kubectl, namespace, GROUP, "alive") or {}).get("status"),
            timeout=60,
            what="the foreign operator's first status write",
        )
    except TimeoutError:
        raise AssertionError(f"foreign operator never reconciled:\n{proc.log_tail()}") from None
    return proc


def test_an_operator_watching_all_namespaces_is_detected(
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    foreign: list[OperatorProcess],
) -> None:
    foreign.append(start_live(kubectl, tmp_path / "foreign.log", namespace))
    found = foreign_operator.probe(kubectl)
    assert found is not None, "a cluster-wide operator was running and not detected"
    assert "status was written" in found or "it created" in found
    text = foreign_operator.message(found)
    assert "make demo-down" in text


def test_an_operator_watching_only_another_namespace_is_not(
    kubectl: Kubectl,
    make_namespace: NamespaceFactory,
    tmp_path: Path,
    foreign: list[OperatorProcess],
) -> None:
    demo = make_namespace()
    foreign.append(start_live(kubectl, tmp_path / "scoped.log", demo, "--namespace", demo))
    assert foreign_operator.probe(kubectl) is None


def test_evidence_names_what_was_written() -> None:
    items = [
        {
            "kind": "OllamaServer",
            "metadata": {
                "name": "probe",
                "managedFields": [{"manager": "ollama-operator", "subresource": "status"}],
            },
            "status": {"observedGeneration": 1},
        },
        {
            "kind": "ConfigMap",
            "metadata": {
                "name": "probe-config",
                "labels": {"app.kubernetes.io/managed-by": "ollama-operator"},
            },
        },
        {"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}},
    ]
    assert foreign_operator.evidence(items) == (
        "its status was written (field manager ollama-operator); it created ConfigMap probe-config"
    )
    assert foreign_operator.evidence([*items[2:], {"kind": "OllamaServer", "metadata": {}}]) is None
