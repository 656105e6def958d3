"""The NetworkPolicy of every OllamaServer, as the real API server stores it.

kwok has no CNI, so nothing enforces the policy here; what is proven is that the
operator renders one per server that the API server accepts (its own NetworkPolicy
validation, plus the CRD's schema and CEL rules refusing bad peers before that), with
the ports and peers the spec says, repaired after drift, collected with the server, and
deleted when ``spec.networkPolicy.enabled`` turns false.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.integration.kube import REPO_ROOT, Kubectl, wait_for
from tests.integration.operator_process import (
    OPERATOR_NAMESPACE,
    OperatorProcess,
    install_crds_and_rbac,
)
from tests.integration.test_controller import GROUP, get, owned_by, server

SAMPLE = REPO_ROOT / "manifests" / "samples" / "ollamaserver-networkpolicy.yaml"
OPERATOR_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": OPERATOR_NAMESPACE}}
}


def rules_by_port(policy: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {rule["ports"][0]["port"]: rule for rule in policy["spec"].get("ingress") or []}


def policy_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: get(kubectl, namespace, "networkpolicy", name),
        timeout=30,
        what=f"NetworkPolicy {namespace}/{name}",
    )
    return found


def test_sample_policy_has_the_spec_peers_and_follows_enabled(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    sample: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    sample["spec"]["storage"] = {"mode": "Ephemeral"}
    kubectl.apply(sample, "-n", namespace)
    policy = policy_of(kubectl, namespace, "fenced")
    owner = get(kubectl, namespace, GROUP, "fenced")
    assert owner is not None
    assert owned_by(policy, owner), "no controller reference: it would not be collected"
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "fenced"}
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = rules_by_port(policy)
    assert sorted(rules) == [8080, 9090]
    assert rules[8080]["from"] == sample["spec"]["networkPolicy"]["ingress"]
    assert rules[9090]["from"] == [OPERATOR_PEER, *sample["spec"]["networkPolicy"]["metricsFrom"]]

    sample["spec"]["networkPolicy"]["enabled"] = False
    kubectl.apply(sample, "-n", namespace)
    wait_for(
        lambda: get(kubectl, namespace, "networkpolicy", "fenced") is None,
        timeout=30,
        what="NetworkPolicy removed once disabled",
    )


def test_default_policy_opens_the_gateway_and_is_repaired(
    kubectl: Kubectl, namespace: str, op: OperatorProcess
) -> None:
    kubectl.apply(server("open"), "-n", namespace)
    policy = policy_of(kubectl, namespace, "open")
    rules = rules_by_port(policy)
    assert "from" not in rules[8080], "no ingress peers: everyone reaches the gateway"
    assert rules[9090]["from"] == [OPERATOR_PEER]

    # Drift: someone opens the admin port to everyone; the operator closes it again.
    patch = {"spec": {"ingress": [{"ports": [{"port": 9090, "protocol": "TCP"}]}]}}
    kubectl(
        "-n", namespace, "patch", "networkpolicy", "open", "--type=merge", "-p", json.dumps(patch)
    )
    wait_for(
        lambda: (
            rules_by_port(get(kubectl, namespace, "networkpolicy", "open") or {"spec": {}})
            .get(9090, {})
            .get("from")
            == [OPERATOR_PEER]
        ),
        timeout=30,
        what="admin rule repaired",
    )
    uid = policy["metadata"]["uid"]
    kubectl("-n", namespace, "delete", "networkpolicy", "open", "--wait=false")
    wait_for(
        lambda: (
            (get(kubectl, namespace, "networkpolicy", "open") or {"metadata": {"uid": uid}})[
                "metadata"
            ]["uid"]
            != uid
        ),
        timeout=30,
        what="NetworkPolicy recreated",
    )


# (spec.networkPolicy, text the API server's refusal must contain)
INVALID_POLICIES = [
    ({"ingress": [{}]}, "a peer is either ipBlock alone"),
    ({"ingress": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}, "ipBlock alone"),
    ({"ingress": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}, "ipBlock.cidr must be a CIDR"),
    (
        {"ingress": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]},
        "inside ipBlock.cidr",
    ),
    (
        {"metricsFrom": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]},
        "non-empty for In and NotIn",
    ),
    ({"ingress": [{"namespaceSelector": {"matchLabels": {"bad key!": "x"}}}]}, "label keys"),
    ({"ingress": [{"namespaceSelector": {"matchLabels": {"team": "not ok"}}}]}, "matchLabels"),
    ({"enabled": "maybe"}, "spec.networkPolicy.enabled"),
]


def test_bad_peers_refused_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    install_crds_and_rbac(kubectl)
    failures = []
    for i, (policy, expected) in enumerate(INVALID_POLICIES):
        manifest = server(f"bad-policy-{i}", networkPolicy=policy)
        result = kubectl(
            "-n", namespace, "apply", "-f", "-", input=json.dumps(manifest), check=False
        )
        if result.returncode == 0 or expected not in result.stderr:
            failures.append(f"{policy}: rc={result.returncode} {result.stderr.strip()[:300]}")
    assert not failures, "\n".join(failures)
    assert kubectl.json("-n", namespace, "get", GROUP)["items"] == []
