"""``helm lint`` and ``helm template`` over the values users set, every object validated.

Each case is a values file a user could write; each rendered object must pass the
Kubernetes schemas (strict) or, for prometheus-operator kinds, the fields it requires;
and the operator Deployment must keep its promises whatever the values: non-root,
read-only root filesystem, the kopf liveness probe, the metrics port, and flags that
match the values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.kube import REPO_ROOT

from .chart import CHART, RELEASE, RELEASE_NAMESPACE, Manifest, by_kind, helm, one, render, validate

CUSTOM_RESOURCES = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
CUSTOM_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
            ]
        }
    }
}


@dataclass(frozen=True)
class Case:
    """Values, and what they must render."""

    values: dict[str, Any]
    kinds: dict[str, int]
    args: list[str]
    image: str = "ollama-operator:0.1.0"
    service_account: str = RELEASE
    expect: dict[str, Any] = field(default_factory=dict)


BASE_KINDS = {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Deployment": 1}
BASE_ARGS = ["run", "--log-format=json", "--liveness=http://0.0.0.0:8081/healthz"]

CASES = {
    "defaults": Case({}, BASE_KINDS, [*BASE_ARGS, "--metrics-port=8082"]),
    "watch-list": Case(
        {"watchNamespaces": ["team-a", "team-b"]},
        {"ServiceAccount": 1, "Role": 2, "RoleBinding": 2, "Deployment": 1},
        [*BASE_ARGS, "--metrics-port=8082", "--namespace=team-a", "--namespace=team-b"],
    ),
    "plain-logs-verbose": Case(
        {"logFormat": "plain", "verbose": True},
        BASE_KINDS,
        [
            "run",
            "--log-format=plain",
            "--liveness=http://0.0.0.0:8081/healthz",
            "--metrics-port=8082",
            "--verbose",
        ],
    ),
    "monitoring": Case(
        {
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
            "sidecarMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
        },
        {**BASE_KINDS, "Service": 1, "ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1},
        [*BASE_ARGS, "--metrics-port=8082"],
    ),
    "monitoring-watch-list": Case(
        {
            "watchNamespaces": ["team-a"],
            "metrics": {"service": {"enabled": True}},
            "sidecarMonitor": {"enabled": True, "kind": "ServiceMonitor"},
            "prometheusRule": {"enabled": True},
        },
        {
            "ServiceAccount": 1,
            "Role": 1,
            "RoleBinding": 1,
            "Deployment": 1,
            "Service": 1,
            "ServiceMonitor": 1,
            "PrometheusRule": 1,
        },
        [*BASE_ARGS, "--metrics-port=8082", "--namespace=team-a"],
    ),
    "custom": Case(
        {
            "image": {"repository": "registry.example:5000/ai/ollama-operator", "tag": "1.2.3"},
            "imagePullSecrets": [{"name": "regcred"}],
            "sidecarImage": "mirror.example/ai/ollama-operator:1.2.3",
            "resources": CUSTOM_RESOURCES,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system"}],
            "affinity": CUSTOM_AFFINITY,
            "priorityClassName": "system-cluster-critical",
            "podAnnotations": {"example.com/team": "ml"},
            "podLabels": {"team": "ml"},
            "podSecurityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "serviceAccount": {"name": "ollama-ctl", "annotations": {"example.com/role": "x"}},
            "metrics": {"port": 9102},
            "extraEnv": [{"name": "OLLAMA_OPERATOR_RESYNC_SECONDS", "value": "30"}],
        },
        BASE_KINDS,
        [*BASE_ARGS, "--metrics-port=9102"],
        image="registry.example:5000/ai/ollama-operator:1.2.3",
        service_account="ollama-ctl",
        expect={
            "resources": CUSTOM_RESOURCES,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system"}],
            "affinity": CUSTOM_AFFINITY,
            "priorityClassName": "system-cluster-critical",
            "imagePullSecrets": [{"name": "regcred"}],
            "runAsUser": 10001,
            "sidecarImage": "mirror.example/ai/ollama-operator:1.2.3",
            "env": {"OLLAMA_OPERATOR_RESYNC_SECONDS": "30"},
        },
    ),
    "existing-service-account-no-rbac": Case(
        {"serviceAccount": {"create": False, "name": "preexisting"}, "rbac": {"create": False}},
        {"Deployment": 1},
        [*BASE_ARGS, "--metrics-port=8082"],
        service_account="preexisting",
    ),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request: pytest.FixtureRequest) -> tuple[Case, list[Manifest]]:
    chosen = CASES[request.param]
    return chosen, render(chosen.values)


def test_helm_lint_strict_passes_for_every_case() -> None:
    failures = []
    for name, chosen in CASES.items():
        result = helm("lint", "--strict", str(CHART), values=chosen.values)
        if result.returncode != 0:
            failures.append(f"{name}:\n{result.stdout}{result.stderr}")
    assert not failures, "\n".join(failures)


def test_renders_exactly_the_expected_objects(case: tuple[Case, list[Manifest]]) -> None:
    chosen, objects = case
    assert Counter(o["kind"] for o in objects) == Counter(chosen.kinds)
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(set(names)) == len(names), f"duplicate objects: {names}"


def test_every_object_passes_its_schema(case: tuple[Case, list[Manifest]]) -> None:
    _, objects = case
    for obj in objects:
        validate(obj)


def test_namespaced_objects_live_in_the_release_namespace(
    case: tuple[Case, list[Manifest]],
) -> None:
    chosen, objects = case
    watched = chosen.values.get("watchNamespaces", [])
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            assert namespace is None
        elif obj["kind"] in ("Role", "RoleBinding"):
            assert namespace in watched
        else:
            assert namespace == RELEASE_NAMESPACE, obj["kind"]


def container(objects: list[Manifest]) -> Manifest:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    result: Manifest = pod["containers"][0]
    return result


def test_operator_flags_follow_the_values(case: tuple[Case, list[Manifest]]) -> None:
    chosen, objects = case
    assert container(objects)["args"] == chosen.args


def test_deployment_runs_one_hardened_non_root_replica(
    case: tuple[Case, list[Manifest]],
) -> None:
    chosen, objects = case
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == chosen.expect.get("runAsUser", 65532)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == chosen.service_account
    operator = container(objects)
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # The read-only root filesystem still gets a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in operator["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert operator["resources"] == chosen.expect.get(
        "resources", {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}}
    )


def test_liveness_probe_and_metrics_port(case: tuple[Case, list[Manifest]]) -> None:
    chosen, objects = case
    operator = container(objects)
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    metrics_port = chosen.values.get("metrics", {}).get("port", 8082)
    assert ports == {"health": 8081, "metrics": metrics_port}
    assert f"--metrics-port={metrics_port}" in operator["args"]
    probe = operator["livenessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "health"}
    assert "--liveness=http://0.0.0.0:8081/healthz" in operator["args"]


def test_image_and_sidecar_image(case: tuple[Case, list[Manifest]]) -> None:
    chosen, objects = case
    operator = container(objects)
    assert operator["image"] == chosen.image
    assert operator["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e.get("value") for e in operator["env"] if "valueFrom" not in e}
    sidecar = chosen.expect.get("sidecarImage", chosen.image)
    assert env == {"OLLAMA_OPERATOR_IMAGE": sidecar, **chosen.expect.get("env", {})}


def test_operator_knows_its_namespace_from_the_downward_api(
    case: tuple[Case, list[Manifest]],
) -> None:
    """The NetworkPolicies admit the operator's namespace to the sidecars' admin port."""
    _, objects = case
    env = {e["name"]: e for e in container(objects)["env"]}
    assert env["POD_NAMESPACE"] == {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    }


def test_scheduling_values_reach_the_pod(case: tuple[Case, list[Manifest]]) -> None:
    chosen, objects = case
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert pod.get(key) == chosen.expect.get(key), key
    template_meta = one(objects, "Deployment")["spec"]["template"]["metadata"]
    for key, value in chosen.values.get("podLabels", {}).items():
        assert template_meta["labels"][key] == value
    assert template_meta.get("annotations") == (chosen.values.get("podAnnotations") or None)


def test_deployment_selector_matches_its_pods_and_the_metrics_service(
    case: tuple[Case, list[Manifest]],
) -> None:
    _, objects = case
    deployment = one(objects, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    for service in by_kind(objects, "Service"):
        assert service["spec"]["selector"].items() <= labels.items()
        assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]


def test_chart_crd_is_the_generated_one() -> None:
    shipped = (CHART / "crds" / "ollamaservers.yaml").read_bytes()
    generated = (REPO_ROOT / "crds" / "ollamaservers.yaml").read_bytes()
    assert shipped == generated, "the chart's CRD is stale: run `make crds`"


def test_crds_are_shipped_in_the_crds_directory() -> None:
    objects = render({}, "--include-crds")
    crd = one(objects, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "ollamaservers.ollama.operator.dev"
    validate(crd)
    # Not a template: helm installs it once and never deletes it on uninstall.
    assert by_kind(render({}), "CustomResourceDefinition") == []
