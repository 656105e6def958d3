"""Smoke tests of the local cluster itself: what the API server holds and enforces."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests.integration.conftest import NamespaceFactory
from tests.integration.kube import Kubectl, wait_for

pytestmark = pytest.mark.integration

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
EXPECTED_GPUS = {"cpu-1": 0, "cpu-2": 0, "gpu-1": 1, "gpu-4": 4}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "registry.invalid/smoke:1",  # never pulled: kwok plays the kubelet
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [container], **spec},
    }


def _ready_pod(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    pod: dict[str, Any] = kubectl.json("-n", namespace, "get", "pod", name)
    return pod


def test_nodes_have_expected_gpu_capacity(kubectl: Kubectl) -> None:
    nodes = {n["metadata"]["name"]: n for n in kubectl.json("get", "nodes")["items"]}
    assert set(EXPECTED_GPUS) <= set(nodes)

    for name, gpus in EXPECTED_GPUS.items():
        node = nodes[name]
        capacity = node["status"]["capacity"]
        allocatable = node["status"]["allocatable"]
        assert int(capacity.get("nvidia.com/gpu", "0")) == gpus, name
        assert int(allocatable.get("nvidia.com/gpu", "0")) == gpus, name
        assert int(capacity["pods"]) == 110
        assert ipaddress.IPv4Network(node["spec"]["podCIDR"]).subnet_of(LOOPBACK)
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions.get("Ready") == "True", f"{name} not Ready: {conditions}"

        taints = node["spec"].get("taints", [])
        if gpus:
            assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
            assert any(t.items() >= GPU_TAINT.items() for t in taints), taints
        else:
            assert "nvidia.com/gpu.present" not in node["metadata"]["labels"]
            assert not any(t["key"] == "nvidia.com/gpu" for t in taints), taints


def test_pod_runs_with_a_loopback_pod_ip(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(_pod("smoke"), "-n", namespace)
    pod = _ready_pod(kubectl, namespace, "smoke")

    assert pod["status"]["phase"] == "Running"
    node_name = pod["spec"]["nodeName"]
    assert node_name in ("cpu-1", "cpu-2"), "untolerated pods must avoid the GPU nodes"
    pod_ip = ipaddress.ip_address(pod["status"]["podIP"])
    assert pod_ip in LOOPBACK
    node = kubectl.json("get", "node", node_name)
    assert pod_ip in ipaddress.ip_network(node["spec"]["podCIDR"])


def test_gpu_pod_fits_only_the_four_gpu_node(kubectl: Kubectl, namespace: str) -> None:
    gpu_pod = _pod(
        "gpu4",
        container={"resources": {"limits": {"nvidia.com/gpu": "4"}}},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    kubectl.apply(gpu_pod, "-n", namespace)
    pod = _ready_pod(kubectl, namespace, "gpu4")
    assert pod["spec"]["nodeName"] == "gpu-4"


def test_restricted_namespace_refuses_a_privileged_pod(
    kubectl: Kubectl, make_namespace: NamespaceFactory
) -> None:
    namespace = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    privileged = _pod("privileged", container={"securityContext": {"privileged": True}})

    result = kubectl(
        "-n", namespace, "create", "-f", "-", input=json.dumps(privileged), check=False
    )
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr
    assert kubectl("-n", namespace, "get", "pods", "-o", "name").stdout.strip() == ""


def test_deployment_children_are_created_and_garbage_collected(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": "registry.invalid/web:1"}]},
                },
            },
        },
        "-n",
        namespace,
    )
    kubectl("-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")
    replicasets = kubectl.json("-n", namespace, "get", "replicasets", "-l", "app=web")["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment"

    kubectl("-n", namespace, "delete", "deployment", "web", "--cascade=background")

    def children_gone() -> bool:
        left = kubectl("-n", namespace, "get", "replicasets,pods", "-l", "app=web", "-o", "name")
        return left.stdout.strip() == ""

    wait_for(children_gone, timeout=60, what="garbage collection of the Deployment's children")


def test_apiserver_metrics_count_requests(kubectl: Kubectl) -> None:
    metrics = kubectl("get", "--raw=/metrics").stdout
    assert any(
        line.startswith("apiserver_request_total{") and 'verb="POST"' in line
        for line in metrics.splitlines()
    )
