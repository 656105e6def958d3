"""Generate the OllamaServer CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema; the API server wants a *structural* OpenAPI v3
schema: no ``$ref``, no ``null`` branches, a ``type`` on every node (except
int-or-string and preserve-unknown-fields nodes), no ``additionalProperties``
beside ``properties``. This module performs exactly those rewrites and
nothing else, so the CRD can never say something the models do not. The
result is committed under ``crds/`` and a test fails when it drifts.
"""

from __future__ import annotations

import copy
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from .spec import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    OllamaServerSpec,
)
from .status import OllamaServerStatus

CRD_FILE = "ollamaservers.yaml"

#: Keys JSON Schema allows but a CRD schema rejects or does not need.
_DROP_KEYS = frozenset({"title", "$defs", "examples"})

#: Name rules for the object itself: it names a StatefulSet (whose pods carry a
#: ``controller-revision-hash`` label of name + 11 characters, at most 63) and a
#: Service (a DNS-1035 label).
NAME_RULES = [
    {
        "rule": "self.metadata.name.size() <= 52",
        "message": "metadata.name must be at most 52 characters: it names the StatefulSet",
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": "metadata.name must be a DNS-1035 label (lowercase letters, digits, '-', "
        "starting with a letter): it names the Service",
    },
]

PRINTER_COLUMNS = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Replicas", "type": "string", "jsonPath": ".status.summary.replicas"},
    {"name": "Models", "type": "string", "jsonPath": ".status.summary.models"},
    {"name": "GPU", "type": "string", "jsonPath": ".status.summary.gpu"},
    # Defaulted by the schema, so every object shows it: an open gateway is never hidden.
    {"name": "Auth", "type": "string", "jsonPath": ".spec.gateway.auth.mode"},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every ``$ref`` (merging sibling keywords) and drop JSON-Schema-only keys."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
        # Siblings of $ref (description, default, extensions) win over the target's.
        target.update(node)
        node = target
    # allOf with a single member is how older pydantic wraps a $ref with siblings.
    all_of = node.pop("allOf", None)
    if all_of is not None:
        if len(all_of) != 1:
            raise ValueError("allOf with several members cannot be made structural")
        inner = _resolve(all_of[0], defs)
        inner.update(node)
        node = inner
    return {k: _resolve(v, defs) for k, v in node.items() if k not in _DROP_KEYS}


def _structural(node: Any) -> Any:
    """Rewrite one resolved JSON Schema node (recursively) into a structural one."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    any_of = node.get("anyOf")
    if any_of is not None and not node.get("x-kubernetes-int-or-string"):
        branches = [b for b in any_of if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot make a structural schema of anyOf {any_of!r}")
        del node["anyOf"]
        merged = dict(branches[0])
        merged.update(node)
        node = merged
        if node.get("default", 0) is None:
            del node["default"]
    if "default" in node and node["default"] is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
        node.setdefault("type", "string")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
    elif node.get("additionalProperties") is False:
        # extra="forbid": the API server prunes (and kubectl's strict validation
        # reports) unknown fields; a structural schema may not say it itself.
        node.pop("additionalProperties")
    elif node.get("additionalProperties") is True:
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    return {k: _structural(v) for k, v in node.items()}


def model_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one pydantic model (camelCase properties)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    schema = _structural(_resolve(raw, defs))
    if not isinstance(schema, dict):  # pragma: no cover - models always give objects
        raise TypeError("model schema is not an object")
    return schema


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition as a plain dict."""
    spec_schema = model_schema(OllamaServerSpec)
    spec_schema["default"] = {}
    status_schema = model_schema(OllamaServerStatus)
    root = {
        "type": "object",
        "description": "OllamaServer runs a fleet of identical Ollama servers behind a gateway.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": NAME_RULES,
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "ollama-operator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all", "ollama"],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML text committed in ``crds/``."""
    header = "# Generated by `ollama-operator crds` from ollama_operator.api. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def write_or_check(output_dir: str | Path, *, check: bool) -> int:
    """Write ``crds/ollamaservers.yaml``, or with ``check`` report (exit 1) when it is stale."""
    path = Path(output_dir) / CRD_FILE
    wanted = render_crd()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == wanted:
            print(f"{path} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=str(path),
            tofile="generated",
            n=2,
        )
        sys.stderr.writelines(list(diff)[:80])
        print(f"{path} is stale: run `make crds` and commit the result", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted, encoding="utf-8")
    print(f"wrote {path}")
    return 0
