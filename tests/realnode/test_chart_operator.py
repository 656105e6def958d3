"""The chart, installed with the image ``make images`` built, runs the operator for real."""

from __future__ import annotations

from tests.integration.kube import Kubectl
from tests.realnode.conftest import RESTRICTED, Release


def test_operator_pod_runs_restricted_as_its_service_account(
    release: Release, rn_kubectl: Kubectl
) -> None:
    ns = rn_kubectl.json("get", "namespace", release.namespace)
    labels = ns["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in RESTRICTED.items()), labels
    pods = rn_kubectl.json("-n", release.namespace, "get", "pods")["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"], status
    assert "running" in status["state"], status
    assert status["restartCount"] == 0, status
    assert status["image"].endswith("ollama-operator:0.1.0"), status["image"]
    account = pod["spec"]["serviceAccountName"]
    sa = rn_kubectl.json("-n", release.namespace, "get", "serviceaccount", account)
    assert sa["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
    # The operator answers its liveness probe on its pod's address (through the API
    # server's proxy: no process is added to the operator's container).
    name = pod["metadata"]["name"]
    health = rn_kubectl(
        "get", "--raw", f"/api/v1/namespaces/{release.namespace}/pods/{name}:8081/proxy/healthz"
    )
    assert health.returncode == 0
