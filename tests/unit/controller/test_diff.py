"""Apply only what differs: the rule that keeps a steady cluster free of writes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ollama_operator.controller.builders import BuildContext, build_statefulset
from ollama_operator.controller.diff import (
    is_subset,
    manifest_hash,
    needs_apply,
    quantity_value,
    stamped,
)
from ollama_operator.controller.naming import APPLIED_HASH, Owner

from .conftest import make_spec


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", Decimal(1)), ("1000m", Decimal(1)), ("1Gi", Decimal(1024**3)), ("2k", Decimal(2000))],
)
def test_quantity_value(text: str, value: Decimal) -> None:
    assert quantity_value(text) == value


def test_quantity_value_rejects_non_quantities() -> None:
    assert quantity_value("abc") is None
    assert quantity_value(True) is None


def test_subset_ignores_server_defaults() -> None:
    desired = {"spec": {"replicas": 1, "template": {"containers": [{"name": "a"}]}}}
    live = {
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "template": {"containers": [{"name": "a", "terminationMessagePath": "/dev/x"}]},
        }
    }
    assert is_subset(desired, live)


def test_subset_sees_changed_values_and_list_lengths() -> None:
    assert not is_subset({"replicas": 2}, {"replicas": 1})
    assert not is_subset({"c": [1, 2]}, {"c": [1]})
    assert not is_subset({"c": {"x": 1}}, {"c": "x"})


def test_quantities_compared_by_value() -> None:
    assert is_subset({"limits": {"cpu": "1000m", "gpu": 2}}, {"limits": {"cpu": "1", "gpu": "2"}})
    assert not is_subset({"limits": {"memory": "1Gi"}}, {"limits": {"memory": "1G"}})


def test_empty_desired_matches_absent() -> None:
    assert is_subset({"a": {}}, {})
    assert not needs_apply(
        {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}, {"metadata": {}}
    )


def test_needs_apply_when_missing_or_drifted(owner: Owner) -> None:
    sts = build_statefulset(owner, make_spec(replicas=2), BuildContext())
    assert needs_apply(sts, None)
    import copy

    live = copy.deepcopy(sts)
    live["metadata"]["resourceVersion"] = "42"
    live["status"] = {"replicas": 2}
    assert not needs_apply(sts, live)
    live["spec"]["replicas"] = 5
    assert needs_apply(sts, live)
    live["spec"]["replicas"] = 2
    live["metadata"]["labels"].pop("app.kubernetes.io/part-of")
    assert needs_apply(sts, live)


def test_strings_that_are_not_quantities_compare_as_strings() -> None:
    """Only resource amounts are quantities: an env value or an annotation is just text."""
    assert not is_subset(
        {"env": [{"name": "N", "value": "1"}]}, {"env": [{"name": "N", "value": "1.0"}]}
    )
    assert not is_subset({"annotations": {"a": "1k"}}, {"annotations": {"a": "1000"}})
    assert not is_subset({"port": 1}, {"port": "1"})
    # ... while requests, limits and size limits still compare by value.
    assert is_subset(
        {"resources": {"limits": {"cpu": "1000m"}}}, {"resources": {"limits": {"cpu": "1"}}}
    )
    assert is_subset({"emptyDir": {"sizeLimit": "1024Mi"}}, {"emptyDir": {"sizeLimit": "1Gi"}})


def test_a_changed_manifest_is_applied_even_when_the_live_object_holds_more(
    owner: Owner,
) -> None:
    """A removal leaves the old live object a superset of the new manifest: only the
    hash tells the two apart."""
    before = stamped(build_statefulset(owner, make_spec(nodeSelector={"a": "b"}), BuildContext()))
    after = stamped(build_statefulset(owner, make_spec(), BuildContext()))
    assert not needs_apply(before, before)
    assert needs_apply(after, before)
    assert before["metadata"]["annotations"][APPLIED_HASH] == manifest_hash(
        build_statefulset(owner, make_spec(nodeSelector={"a": "b"}), BuildContext())
    )
