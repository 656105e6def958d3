"""The generated CRD: structural, complete, committed, and every sample fits it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from ollama_operator.api import OllamaServerSpec
from ollama_operator.api.crd import CRD_FILE, build_crd, model_schema, render_crd, write_or_check

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = sorted((ROOT / "manifests" / "samples").glob("*.yaml"))

#: Keywords a structural schema may use inside anyOf/allOf/oneOf/not (value validations only).
_TYPE_KEYS = {"type", "additionalProperties", "properties", "items", "default", "description"}


def structural_violations(node: Any, path: str = "") -> list[str]:
    """The rules of a structural schema (Kubernetes docs, "Specifying a structural schema")."""
    problems: list[str] = []
    if not isinstance(node, dict):
        return problems
    if "$ref" in node:
        problems.append(f"{path}: $ref")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in node and not int_or_string and not preserve:
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if "nullable" in node and node.get("type") is None:
        problems.append(f"{path}: nullable without type")
    for key in ("anyOf", "allOf", "oneOf"):
        for branch in node.get(key, []):
            if int_or_string and branch in ({"type": "integer"}, {"type": "string"}):
                continue
            bad = _TYPE_KEYS & set(branch)
            if bad:
                problems.append(f"{path}.{key}: {sorted(bad)} inside a junctor")
    for name, sub in (node.get("properties") or {}).items():
        problems.extend(structural_violations(sub, f"{path}.{name}"))
    if isinstance(node.get("items"), dict):
        problems.extend(structural_violations(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        problems.extend(structural_violations(node["additionalProperties"], f"{path}{{}}"))
    return problems


def root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural() -> None:
    assert structural_violations(root_schema()) == []


def test_checker_catches_violations() -> None:
    bad = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}
    assert structural_violations(bad) == [
        ".a: no type",
        ".a.anyOf: ['type'] inside a junctor",
        ".a.anyOf: ['type'] inside a junctor",
    ]


def test_quantities_are_int_or_string() -> None:
    size = root_schema()["properties"]["spec"]["properties"]["storage"]["properties"]["size"]
    assert size["x-kubernetes-int-or-string"] is True
    assert size["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_names_subresources_and_columns() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert names["kind"] == "OllamaServer"
    assert set(names["shortNames"]) == {"ollama", "olls"}
    version = crd["spec"]["versions"][0]
    assert version["subresources"]["scale"]["labelSelectorPath"] == ".status.selector"
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == [
        "Ready",
        "Replicas",
        "Models",
        "GPU",
        "Auth",
        "Endpoint",
        "Reason",
        "Age",
    ]


def test_cel_rules_present_for_cross_field_constraints() -> None:
    spec = root_schema()["properties"]["spec"]
    storage_rules = [r["rule"] for r in spec["properties"]["storage"]["x-kubernetes-validations"]]
    assert any("existingClaim" in r for r in storage_rules)
    models = spec["properties"]["models"]
    assert models["x-kubernetes-list-type"] == "map"
    assert models["x-kubernetes-list-map-keys"] == ["name"]


def test_nested_defaults_reach_the_api_server() -> None:
    spec = root_schema()["properties"]["spec"]
    assert spec["properties"]["storage"]["default"] == {}
    assert spec["properties"]["storage"]["properties"]["size"]["default"] == "20Gi"


def test_committed_crd_is_current() -> None:
    committed = (ROOT / "crds" / CRD_FILE).read_text(encoding="utf-8")
    assert committed == render_crd(), "crds/ is stale: run `make crds`"


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    assert write_or_check(tmp_path, check=False) == 0
    assert write_or_check(tmp_path, check=True) == 0
    path = tmp_path / CRD_FILE
    path.write_text(path.read_text().replace("maxItems: 64", "maxItems: 65"))
    assert write_or_check(tmp_path, check=True) == 1


def test_a_model_change_changes_the_schema() -> None:
    """What makes the drift test bite: a new field in a model shows up in the schema."""
    from pydantic import create_model

    changed = create_model("Changed", __base__=OllamaServerSpec, newField=(int, 3))
    assert "newField" in model_schema(changed)["properties"]
    assert "newField" not in model_schema(OllamaServerSpec)["properties"]


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in SAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "OllamaServer":
                docs.append((path.name, doc))
    return docs


def test_samples_exist() -> None:
    assert len(_documents()) >= 6


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[n for n, _ in _documents()])
def test_sample_validates(name: str, doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, root_schema())
    OllamaServerSpec.model_validate(doc["spec"])
    assert doc["apiVersion"] == "ollama.operator.dev/v1alpha1"
