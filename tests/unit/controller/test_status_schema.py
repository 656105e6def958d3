"""Every status the controller writes fits the generated CRD schema, field for field.

The API server prunes fields a structural schema does not declare. A pruned field is
worse than an error: the stored status never equals the one computed, so every
reconcile writes it again. These tests run the status builders over the situations a
server goes through and check the result against the CRD in crds/ (what the API
server holds): valid, and nothing it would prune.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from ollama_operator.api.crd import build_crd
from ollama_operator.api.report import PodReport
from ollama_operator.api.spec import OllamaServerSpec
from ollama_operator.api.status import condition
from ollama_operator.controller.naming import Owner
from ollama_operator.controller.reconcile import invalid_status
from ollama_operator.controller.status import Observed, compute_status

from .conftest import make_spec
from .test_status import NOW, pending_pod, running_pod, sts


def status_schema() -> dict[str, Any]:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema: dict[str, Any] = root["properties"]["status"]
    return schema


def pruned(value: Any, schema: dict[str, Any], path: str = "status") -> list[str]:
    """Paths in ``value`` a structural schema does not declare (what the API server drops)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += pruned(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += pruned(item, extra, f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += pruned(item, schema.get("items") or {}, f"{path}[{i}]")
    return found


def report(*models: dict[str, Any]) -> PodReport:
    return PodReport.model_validate({"ollamaUp": True, "models": list(models)})


SPEC = {
    "models": [{"name": "a"}, {"name": "b", "required": False}],
    "resources": {"limits": {"memory": "2Gi"}},
}

# (what the controller saw, the spec)
SITUATIONS: dict[str, tuple[Observed, dict[str, Any]]] = {
    "first visit": (Observed(None, []), SPEC),
    "unschedulable": (Observed(sts(1, 0), [pending_pod("0/3 nodes: Insufficient memory")]), SPEC),
    "crash loop": (Observed(sts(1, 0), [running_pod(waiting="CrashLoopBackOff")]), SPEC),
    "apply failed": (Observed(sts(1, 1), [running_pod()], apply_error="applying x: no"), SPEC),
    "rolling": (Observed(sts(2, 1, rolling=True), [running_pod()]), SPEC),
    "pulling": (
        Observed(
            sts(1, 0),
            [running_pod()],
            reports={
                "demo-0": report(
                    {"name": "a", "phase": "Pulling", "progress": 5, "totalBytes": 9 << 30},
                    {"name": "b", "phase": "Pending"},
                )
            },
        ),
        SPEC,
    ),
    "failed and ready": (
        Observed(
            sts(2, 1),
            [running_pod(), running_pod("demo-1")],
            reports={
                "demo-0": report(
                    {"name": "a", "phase": "Ready", "digest": "sha256:ab", "size": 3 << 30},
                    {"name": "b", "phase": "Failed", "message": "pull model manifest: 404"},
                ),
                "demo-1": report({"name": "a", "phase": "Ready", "loaded": True}),
            },
        ),
        SPEC,
    ),
    "ready, no models, gpu": (Observed(sts(1, 1), [running_pod()]), {"gpu": {"count": 2}}),
    "scaled to zero": (Observed(sts(0, 0), []), {"replicas": 0}),
}


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_the_written_status_fits_the_crd_schema(owner: Owner, situation: str) -> None:
    observed, spec = SITUATIONS[situation]
    status = compute_status(owner, make_spec(**spec), observed, {}, now=NOW)
    jsonschema.validate(status, status_schema())
    assert pruned(status, status_schema()) == []
    # And the next reconcile, from that stored status, computes the same one.
    again = compute_status(owner, make_spec(**spec), observed, status, now=NOW)
    assert again == status


def test_the_invalid_spec_status_fits_the_crd_schema(owner: Owner) -> None:
    with pytest.raises(ValidationError) as info:
        OllamaServerSpec.model_validate({"replicas": -1})
    status = invalid_status(owner, info.value, {}, NOW)
    jsonschema.validate(status, status_schema())
    assert pruned(status, status_schema()) == []


def test_the_pruning_check_catches_an_undeclared_field() -> None:
    assert pruned({"summary": {"replicas": "1/1", "colour": "red"}}, status_schema()) == [
        "status.summary.colour"
    ]


@pytest.mark.parametrize(
    ("reason", "fitted"),
    [
        ("CrashLoopBackOff", "CrashLoopBackOff"),
        ("Err Image-Pull", "ErrImagePull"),
        ("3rdParty", "R3rdParty"),
        ("a,b:", "a,b"),
        ("", "Unknown"),
        ("!!", "Unknown"),
    ],
)
def test_a_foreign_reason_is_made_to_fit(reason: str, fitted: str) -> None:
    """Reasons copied from the kubelet or the scheduler must never get a status refused."""
    made = condition("Degraded", "True", reason, "m")
    assert made["reason"] == fitted
    reason_schema = status_schema()["properties"]["conditions"]["items"]["properties"]["reason"]
    jsonschema.validate(made["reason"], reason_schema)
