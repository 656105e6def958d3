"""The chart grants exactly what manifests/rbac/role.yaml grants: one source of truth.

The chart cannot read files outside itself, so it carries ``files/role.yaml``, a
byte-for-byte copy of ``manifests/rbac/role.yaml``, and its templates take the rules from
there. These tests fail on any drift, in the copy or in what the templates render.
"""

from __future__ import annotations

from tests.integration.kube import REPO_ROOT

from .chart import CHART, RELEASE, RELEASE_NAMESPACE, by_kind, one, render, role_rules

SYNC = "cp manifests/rbac/role.yaml charts/ollama-operator/files/role.yaml"


def test_chart_copy_of_the_role_is_byte_identical() -> None:
    source = (REPO_ROOT / "manifests" / "rbac" / "role.yaml").read_bytes()
    copy = (CHART / "files" / "role.yaml").read_bytes()
    assert copy == source, f"the chart's RBAC drifted from manifests/rbac/role.yaml: run `{SYNC}`"


def test_cluster_wide_role_has_exactly_the_manifest_rules() -> None:
    objects = render({})
    role = one(objects, "ClusterRole")
    assert role["rules"] == role_rules()
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
    ]
    assert by_kind(objects, "Role") == by_kind(objects, "RoleBinding") == []


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide() -> None:
    watched = ["team-a", "team-b", "team-c"]
    objects = render({"watchNamespaces": watched})
    assert by_kind(objects, "ClusterRole") == by_kind(objects, "ClusterRoleBinding") == []
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding")}
    assert sorted(roles) == sorted(bindings) == watched
    for namespace in watched:
        assert roles[namespace]["rules"] == role_rules()
        assert bindings[namespace]["roleRef"]["kind"] == "Role"
        assert bindings[namespace]["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert bindings[namespace]["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}
        ]


def test_release_names_keep_cluster_scoped_objects_apart() -> None:
    # Two releases in one cluster must not fight over one ClusterRole.
    first = one(render({}), "ClusterRole")["metadata"]["name"]
    other = render({}, release="other")
    assert one(other, "ClusterRole")["metadata"]["name"] == "other-ollama-operator" != first
