"""The controller against a real API server, scheduler and controller-manager.

Every assertion reads what the API server holds. The operator runs as a real
process authenticated as the ServiceAccount from manifests/rbac, so these
tests also prove its RBAC is sufficient.
"""

from __future__ import annotations

import base64
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import NamespaceFactory
from tests.integration.kube import REPO_ROOT, Kubectl, cache_dir, wait_for
from tests.integration.operator_process import (
    SA_USER,
    OperatorProcess,
    install_crds_and_rbac,
)

SAMPLES = REPO_ROOT / "manifests" / "samples"
GROUP = "ollamaservers.ollama.operator.dev"


def server(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("storage", {"mode": "Ephemeral"})
    return {
        "apiVersion": "ollama.operator.dev/v1alpha1",
        "kind": "OllamaServer",
        "metadata": {"name": name},
        "spec": spec,
    }


def get(kubectl: Kubectl, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    result = kubectl("-n", ns, "get", kind, name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def wait_ready(kubectl: Kubectl, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kubectl, ns, GROUP, name)
        return obj if condition(obj, "Ready").get("status") == "True" else None

    try:
        return wait_for(probe, timeout=timeout, what=f"{ns}/{name} Ready")
    except TimeoutError:
        obj = get(kubectl, ns, GROUP, name)
        raise AssertionError(
            f"not Ready: {json.dumps((obj or {}).get('status'), indent=1)}"
        ) from None


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return any(r["uid"] == owner["metadata"]["uid"] and r.get("controller") for r in refs)


def test_sample_becomes_ready_with_owned_children(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl("-n", namespace, "apply", "-f", str(SAMPLES / "ollamaserver-basic.yaml"))
    obj = wait_ready(kubectl, namespace, "basic")
    for kind, name in [
        ("statefulset", "basic"),
        ("service", "basic"),
        ("service", "basic-headless"),
        ("configmap", "basic-config"),
        ("secret", "basic-internal"),
        ("secret", "basic-api-keys"),
    ]:
        child = get(kubectl, namespace, kind, name)
        assert child is not None, f"{kind}/{name} missing"
        assert owned_by(child, obj), f"{kind}/{name} has no controller reference"
    pods = kubectl.json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/instance=basic")
    assert [p["status"]["phase"] for p in pods["items"]] == ["Running"]
    pvcs = kubectl.json("-n", namespace, "get", "pvc")["items"]
    assert [p["metadata"]["name"] for p in pvcs] == ["data-basic-0"]

    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["readyReplicas"] == 1
    assert status["selector"] == "app.kubernetes.io/instance=basic,app.kubernetes.io/name=ollama"
    table = kubectl("-n", namespace, "get", "ollama", "basic").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert header == [
        "NAME",
        "READY",
        "REPLICAS",
        "MODELS",
        "GPU",
        "AUTH",
        "ENDPOINT",
        "REASON",
        "AGE",
    ]
    assert row[:8] == [
        "basic",
        "True",
        "1/1",
        "1/1",
        "-",
        "APIKeys",
        f"http://basic.{namespace}.svc:11434",
        "AllReplicasReady",
    ]


def test_auth_is_on_by_default_with_a_key_generated_once(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl.apply(server("keyed"), "-n", namespace)
    obj = wait_ready(kubectl, namespace, "keyed")
    secret = get(kubectl, namespace, "secret", "keyed-api-keys")
    assert secret is not None
    assert owned_by(secret, obj)
    key = base64.b64decode(secret["data"]["keys"]).decode().strip()
    assert key.startswith("oo_")
    sts = get(kubectl, namespace, "statefulset", "keyed")
    assert sts is not None
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "keyed-api-keys"
    config = get(kubectl, namespace, "configmap", "keyed-config")
    assert config is not None
    assert "apiKeysFile: /etc/ollama-operator/keys/keys" in config["data"]["sidecar.yaml"]

    # A spec edit, and one after a restart (no memory of the Secret), keep the key.
    def observed(generation: int) -> bool:
        obj = get(kubectl, namespace, GROUP, "keyed") or {}
        return int((obj.get("status") or {}).get("observedGeneration") or 0) >= generation

    for replicas, generation in ((2, 2), (1, 3)):
        if generation == 3:
            op.stop()
            op.start()
        patch = json.dumps({"spec": {"replicas": replicas}})
        kubectl("-n", namespace, "patch", GROUP, "keyed", "--type=merge", "-p", patch)
        wait_for(partial(observed, generation), timeout=60, what=f"generation {generation}")
    again = get(kubectl, namespace, "secret", "keyed-api-keys")
    assert again is not None
    assert again["data"] == secret["data"], "the generated key was rotated"
    assert again["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]


def test_auth_disabled_by_name_is_shown_and_warned(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl.apply(server("open", gateway={"auth": {"mode": "Disabled"}}), "-n", namespace)
    wait_ready(kubectl, namespace, "open")
    assert get(kubectl, namespace, "secret", "open-api-keys") is None
    columns = kubectl(
        "-n",
        namespace,
        "get",
        "ollama",
        "open",
        "-o",
        "custom-columns=AUTH:.spec.gateway.auth.mode",
    ).stdout.split()
    assert columns == ["AUTH", "Disabled"]
    table = kubectl("-n", namespace, "get", "ollama", "open").stdout.splitlines()
    assert table[1].split()[5] == "Disabled"

    def warned() -> list[dict[str, Any]] | None:
        events = kubectl.json(
            "-n", namespace, "get", "events", "--field-selector", "reason=AuthDisabled"
        )["items"]
        ours = [e for e in events if e["involvedObject"]["name"] == "open"]
        return [e for e in ours if e["type"] == "Warning"] or None

    events = wait_for(warned, timeout=60, what="AuthDisabled Warning Event")
    assert "anyone who can reach the Service" in events[0]["message"]


def test_scale_subresource_drives_replicas(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(server("scaled")))
    wait_ready(kubectl, namespace, "scaled")
    kubectl("-n", namespace, "scale", "ollama/scaled", "--replicas=3")

    def three_ready() -> dict[str, Any] | None:
        obj = get(kubectl, namespace, GROUP, "scaled") or {}
        status = obj.get("status") or {}
        fresh = status.get("observedGeneration") == obj["metadata"]["generation"]
        done = (status.get("summary") or {}).get("replicas") == "3/3"
        return obj if fresh and done and condition(obj, "Ready").get("status") == "True" else None

    wait_for(three_ready, timeout=90, what="3/3 replicas ready")
    assert get(kubectl, namespace, "pdb", "scaled") is not None
    kubectl("-n", namespace, "scale", "ollama/scaled", "--replicas=1")
    wait_for(lambda: get(kubectl, namespace, "pdb", "scaled") is None, what="PDB removed")


def test_spec_changes_follow_but_models_only_touch_configmap(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    body = server("follow", models=[{"name": "gemma3:270m"}])
    kubectl.apply(body, "-n", namespace)
    wait_ready(kubectl, namespace, "follow")
    sts = get(kubectl, namespace, "statefulset", "follow")
    assert sts is not None
    generation = sts["metadata"]["generation"]

    body["spec"]["models"].append({"name": "llama3.2:1b"})
    kubectl.apply(body, "-n", namespace)

    def config_has_new_model() -> bool:
        cm = get(kubectl, namespace, "configmap", "follow-config") or {}
        return "llama3.2:1b" in cm.get("data", {}).get("sidecar.yaml", "")

    wait_for(config_has_new_model, what="model in ConfigMap")
    time.sleep(2)
    sts = get(kubectl, namespace, "statefulset", "follow")
    assert sts is not None
    assert sts["metadata"]["generation"] == generation, "pod template changed on a models edit"

    body["spec"].update(
        image="ollama/ollama:0.11.3",
        resources={"limits": {"memory": "12Gi"}},
        gpu={"count": 1},
        replicas=2,
    )
    kubectl.apply(body, "-n", namespace)

    def followed() -> dict[str, Any] | None:
        live = get(kubectl, namespace, "statefulset", "follow") or {}
        spec = live.get("spec", {})
        ollama = spec.get("template", {}).get("spec", {}).get("containers", [{}])[0]
        limits = ollama.get("resources", {}).get("limits", {})
        ok = (
            spec.get("replicas") == 2
            and ollama.get("image") == "ollama/ollama:0.11.3"
            and limits.get("memory") == "12Gi"
            and limits.get("nvidia.com/gpu") == "1"
        )
        return live if ok else None

    wait_for(followed, what="StatefulSet follows the spec")


def test_a_field_removed_from_the_spec_is_removed_from_the_statefulset(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    """Server-side apply by the same field manager drops what it no longer sends."""
    body = server("unselect", nodeSelector={"disktype": "ssd"}, podAnnotations={"team": "ml"})
    kubectl.apply(body, "-n", namespace)

    def template() -> dict[str, Any]:
        sts = get(kubectl, namespace, "statefulset", "unselect") or {}
        found: dict[str, Any] = sts.get("spec", {}).get("template", {})
        return found

    wait_for(
        lambda: template().get("spec", {}).get("nodeSelector") == {"disktype": "ssd"},
        what="nodeSelector on the StatefulSet",
    )
    assert template()["metadata"]["annotations"] == {"team": "ml"}
    del body["spec"]["nodeSelector"], body["spec"]["podAnnotations"]
    kubectl.apply(body, "-n", namespace)
    wait_for(
        lambda: "nodeSelector" not in template().get("spec", {"nodeSelector": None}),
        timeout=30,
        what="nodeSelector gone from the StatefulSet",
    )
    assert "team" not in (template()["metadata"].get("annotations") or {})


def test_drift_is_repaired(kubectl: Kubectl, namespace: str, op: OperatorProcess) -> None:
    kubectl.apply(server("drift"), "-n", namespace)
    wait_ready(kubectl, namespace, "drift")
    first = get(kubectl, namespace, "statefulset", "drift")
    assert first is not None
    kubectl("-n", namespace, "delete", "statefulset", "drift", "--wait=false")

    def recreated() -> dict[str, Any] | None:
        sts = get(kubectl, namespace, "statefulset", "drift")
        return sts if sts and sts["metadata"]["uid"] != first["metadata"]["uid"] else None

    wait_for(recreated, timeout=30, what="StatefulSet recreated")
    kubectl("-n", namespace, "scale", "statefulset", "drift", "--replicas=4")
    wait_for(
        lambda: (get(kubectl, namespace, "statefulset", "drift") or {})["spec"]["replicas"] == 1,
        timeout=30,
        what="replicas reverted",
    )
    kubectl("-n", namespace, "delete", "configmap", "drift-config")
    wait_for(lambda: get(kubectl, namespace, "configmap", "drift-config"), what="ConfigMap back")


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    op.kill()
    kubectl.apply(server("restart", replicas=2, models=[{"name": "m"}]), "-n", namespace)
    op.start()
    # Let it get into the reconcile (it connects and lists first), then kill it again.
    wait_for(
        lambda: get(kubectl, namespace, "configmap", "restart-config"),
        timeout=30,
        what="first child",
    )
    op.kill()
    op.start()
    wait_ready(kubectl, namespace, "restart")
    selector = "app.kubernetes.io/instance=restart"
    for kind, expected in [("statefulsets", 1), ("services", 2), ("configmaps", 1), ("pdb", 1)]:
        items = kubectl.json("-n", namespace, "get", kind, "-l", selector)["items"]
        assert len(items) == expected, kind
    secrets = kubectl.json("-n", namespace, "get", "secrets")["items"]
    assert [
        s["metadata"]["name"] for s in secrets if s["metadata"]["name"].startswith("restart")
    ] == ["restart-api-keys", "restart-internal"]


def test_gpu_fit_and_unschedulable_feedback(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl.apply(server("two-gpus", gpu={"count": 2}), "-n", namespace)
    kubectl.apply(server("eight-gpus", gpu={"count": 8}), "-n", namespace)
    wait_ready(kubectl, namespace, "two-gpus")
    pod = kubectl.json("-n", namespace, "get", "pod", "two-gpus-0")
    assert pod["spec"]["nodeName"] == "gpu-4"
    assert get(kubectl, namespace, GROUP, "two-gpus")["status"]["summary"]["gpu"] == "2x nvidia"  # type: ignore[index]

    def unschedulable() -> dict[str, Any] | None:
        cond = condition(get(kubectl, namespace, GROUP, "eight-gpus"), "Scheduled")
        return cond if cond.get("status") == "False" else None

    cond = wait_for(unschedulable, timeout=30, what="Scheduled=False")
    assert cond["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    ready = condition(get(kubectl, namespace, GROUP, "eight-gpus"), "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "Unschedulable"


# (manifest spec, text the API server's refusal must contain)
INVALID = [
    ({"replicas": -1}, "spec.replicas"),
    ({"models": [{"name": "Not A Model!"}]}, "spec.models[0].name"),
    ({"models": [{"name": "a"}, {"name": "a"}]}, "spec.models[1]"),
    ({"gpu": {"count": 0}}, "spec.gpu.count"),
    ({"gpu": {"vendor": "intel"}}, "spec.gpu.vendor"),
    ({"resources": {"limits": {"memory": "lots"}}}, "spec.resources.limits.memory"),
    ({"resources": {"limits": {"memory": -5}}}, "resources.limits must not be negative"),
    ({"storage": {"mode": "Shared"}}, "storage.existingClaim is required"),
    ({"storage": {"mode": "PerReplica", "existingClaim": "x"}}, "storage.existingClaim is only"),
    ({"storage": {"size": "ten gigs"}}, "spec.storage.size"),
    ({"ollama": {"env": [{"name": "OLLAMA_HOST", "value": "0.0.0.0"}]}}, "OLLAMA_HOST"),
    ({"podLabels": {"app.kubernetes.io/instance": "x"}}, "podLabels"),
    ({"service": {"port": 0}}, "spec.service.port"),
    ({"gateway": {"timeouts": {"connect": "soon"}}}, "spec.gateway.timeouts.connect"),
    ({"models": [{"name": "m", "create": {"from": "m"}}]}, "create.from"),
    ({"gateway": {"auth": {"mode": "None"}}}, "spec.gateway.auth.mode"),
    ({"models": [{"name": "gpt-oss:20b-cloud"}]}, "may not be a cloud model"),
    ({"ollama": {"env": [{"name": "OLLAMA_NO_CLOUD", "value": "0"}]}}, "OLLAMA_NO_CLOUD"),
    (
        {"gateway": {"auth": {"mode": "Disabled", "apiKeysSecretRef": {"name": "k"}}}},
        "gateway.auth.apiKeysSecretRef may not be set when gateway.auth.mode is Disabled",
    ),
]


def test_invalid_manifests_refused_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    install_crds_and_rbac(kubectl)
    failures = []
    for i, (spec, expected) in enumerate(INVALID):
        manifest = server(f"bad-{i}", **spec)
        if "storage" in spec:
            manifest["spec"]["storage"] = spec["storage"]
        result = kubectl(
            "-n", namespace, "apply", "-f", "-", input=json.dumps(manifest), check=False
        )
        if result.returncode == 0 or expected not in result.stderr:
            failures.append(f"{spec}: rc={result.returncode} {result.stderr.strip()[:300]}")
    assert not failures, "\n".join(failures)
    assert kubectl.json("-n", namespace, "get", GROUP)["items"] == []

    # Cloud models are declared once the server allows them (checked, not stored).
    allowed = server("cloudy", models=[{"name": "glm-4.6:cloud"}], ollama={"cloud": "Allowed"})
    result = kubectl(
        "-n", namespace, "apply", "--dry-run=server", "-f", "-", input=json.dumps(allowed)
    )
    assert result.returncode == 0, result.stderr

    name = server("this-name-is-far-too-long-for-a-statefulset-with-its-hash-label")
    result = kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(name), check=False)
    assert result.returncode != 0
    assert "at most 52 characters" in result.stderr


@pytest.mark.parametrize("retain", [True, False])
def test_delete_collects_children_and_honours_retain(
    kubectl: Kubectl, namespace: str, op: OperatorProcess, retain: bool
) -> None:
    body = server("gone", storage={"mode": "PerReplica", "retainOnDelete": retain})
    kubectl.apply(body, "-n", namespace)
    wait_ready(kubectl, namespace, "gone")
    assert get(kubectl, namespace, "pvc", "data-gone-0") is not None
    kubectl("-n", namespace, "delete", GROUP, "gone", "--wait=true", "--timeout=60s")

    def collected() -> bool:
        return all(
            get(kubectl, namespace, kind, name) is None
            for kind, name in [
                ("statefulset", "gone"),
                ("service", "gone"),
                ("configmap", "gone-config"),
                ("secret", "gone-internal"),
                ("secret", "gone-api-keys"),
            ]
        )

    wait_for(collected, timeout=60, what="children garbage-collected")
    if retain:
        time.sleep(3)
        assert get(kubectl, namespace, "pvc", "data-gone-0") is not None, "PVC was deleted"
    else:
        wait_for(
            lambda: get(kubectl, namespace, "pvc", "data-gone-0") is None,
            timeout=60,
            what="PVC gone",
        )


def test_pods_admitted_under_restricted_pod_security(
    kubectl: Kubectl, make_namespace: NamespaceFactory, op: OperatorProcess
) -> None:
    ns = make_namespace({"pod-security.kubernetes.io/enforce": "restricted"})
    kubectl("-n", ns, "apply", "-f", str(SAMPLES / "ollamaserver-auth.yaml"))
    obj = wait_ready(kubectl, ns, "secured")
    assert obj["status"]["readyReplicas"] == 1
    # And the namespace really enforces: a root pod is refused.
    root_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]
        },
    }
    result = kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(root_pod), check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr


def test_operator_rbac_is_exactly_the_manifest(kubectl: Kubectl, op: OperatorProcess) -> None:
    role = yaml.safe_load((REPO_ROOT / "manifests" / "rbac" / "role.yaml").read_text())
    live = kubectl.json("get", "clusterrole", "ollama-operator")
    assert live["rules"] == role["rules"]
    can = kubectl("auth", "can-i", "list", "secrets", "--as", SA_USER, check=False)
    assert can.stdout.strip() == "no"
    can = kubectl("auth", "can-i", "patch", "ollamaservers", "--as", SA_USER, check=False)
    assert can.stdout.strip() == "no", "the operator must not write the spec"


def _operator_writes(audit: Path, since: float, namespace: str) -> list[dict[str, Any]]:
    """The operator's write requests about one namespace since a moment (from the audit log).

    Scoped to the test's namespace so that other tests' objects still converging on a
    shared cluster do not count; ``make bench`` reports the cluster-wide figure.
    """
    writes = []
    for line in audit.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("user", {}).get("username") != SA_USER:
            continue
        if f"/namespaces/{namespace}/" not in event.get("requestURI", ""):
            continue
        stamp = event.get("requestReceivedTimestamp", "")
        if _epoch(stamp) >= since:
            writes.append(event)
    return writes


def _epoch(stamp: str) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def test_no_writes_at_rest(kubectl: Kubectl, namespace: str, op: OperatorProcess) -> None:
    audit = cache_dir() / "audit.log"
    if not audit.exists():
        pytest.skip("the cluster has no audit log (an existing KUBECONFIG cluster)")
    kubectl.apply(server("quiet", replicas=2, models=[{"name": "m"}]), "-n", namespace)
    wait_ready(kubectl, namespace, "quiet")
    time.sleep(5)  # let the last status write and its echo settle
    start = time.time()
    time.sleep(60)
    writes = _operator_writes(audit, start, namespace)
    assert writes == [], [f"{w['verb']} {w.get('requestURI')}" for w in writes][:20]
    # The same filter does see the operator when it works:
    kubectl("-n", namespace, "delete", "configmap", "quiet-config")
    wait_for(
        lambda: _operator_writes(audit, start, namespace), timeout=30, what="the operator's repair"
    )
