"""The OllamaServer spec: defaults, and invalid input refused with the field named.

Each invalid spec is checked twice: by the pydantic models (what the
controller and sidecar run) and by the generated CRD's OpenAPI schema (what
the API server runs before anything else). CEL rules cannot run here; they
are mirrored by pydantic validators and exercised against a real API server
in the integration tests.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from ollama_operator.api import OllamaServerSpec
from ollama_operator.api.crd import build_crd
from ollama_operator.api.types import is_cloud_model
from ollama_operator.api.validation import describe, field_path


def crd_spec_schema() -> dict[str, Any]:
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema: dict[str, Any] = root["properties"]["spec"]
    return schema


def test_defaults_are_safe_and_complete() -> None:
    spec = OllamaServerSpec.model_validate({})
    assert spec.replicas == 1
    assert spec.models == []
    assert spec.gpu is None
    assert spec.storage.mode == "PerReplica"
    assert spec.storage.size == "20Gi"
    assert spec.storage.retain_on_delete is False
    assert spec.gateway.auth.api_keys_secret_ref is None
    assert spec.gateway.auth.mode == "APIKeys", "auth is on unless switched off by name"
    assert spec.gateway.max_body_bytes == 10 * 1024 * 1024
    assert spec.service.port == 11434


@pytest.mark.parametrize("max_bytes", [1024, 64 * 1024 * 1024, 1024 * 1024 * 1024])
def test_cache_max_bytes_bounds_accepted(max_bytes: int) -> None:
    spec = {"gateway": {"cache": {"shared": True, "maxBytes": max_bytes}}}
    jsonschema.validate(spec, crd_spec_schema())
    cache = OllamaServerSpec.model_validate(spec).gateway.cache
    assert (cache.shared, cache.max_bytes) == (True, max_bytes)


def test_cache_policy_unset_by_default_and_without_schema_defaults() -> None:
    """No CRD default: the API server must not write them into every object, or the
    controller could not tell "unset" (sidecar config unchanged) from "set"."""
    cache = OllamaServerSpec.model_validate({}).gateway.cache
    assert (cache.shared, cache.max_bytes) == (None, None)
    props = crd_spec_schema()["properties"]["gateway"]["properties"]["cache"]["properties"]
    assert "default" not in props["shared"]
    assert "default" not in props["maxBytes"]
    assert (props["maxBytes"]["minimum"], props["maxBytes"]["maximum"]) == (1024, 2**30)


@pytest.mark.parametrize(
    ("name", "cloud"),
    [
        ("gpt-oss:20b-cloud", True),
        ("glm-4.6:cloud", True),
        ("ollama.com/library/qwen3:480b-Cloud", True),
        ("cloudy:7b", False),
        ("my/cloud", False),
        ("cloud", False),
        ("registry.example:5000/team/cloud:v1", False),
    ],
)
def test_cloud_models_are_told_by_their_tag(name: str, cloud: bool) -> None:
    assert is_cloud_model(name) is cloud
    declared = {"models": [{"name": name}], "ollama": {"cloud": "Allowed"}}
    assert OllamaServerSpec.model_validate(declared).ollama.cloud == "Allowed"


def test_network_policy_on_by_default_without_narrowing_the_gateway() -> None:
    policy = OllamaServerSpec.model_validate({}).network_policy
    assert policy.enabled is True
    assert policy.ingress == []
    assert policy.metrics_from == []


def test_network_policy_peers_in_the_standard_shape() -> None:
    peers = [
        {"namespaceSelector": {"matchLabels": {"team": "ml"}}, "podSelector": {}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
        {"ipBlock": {"cidr": "fd00::/8"}},
    ]
    spec = OllamaServerSpec.model_validate({"networkPolicy": {"ingress": peers}})
    dumped = spec.model_dump(by_alias=True, exclude_defaults=True)["networkPolicy"]
    assert dumped["ingress"] == peers


def test_camel_case_on_the_wire() -> None:
    spec = OllamaServerSpec.model_validate(
        {"models": [{"name": "llama3.2:1b", "keepAlive": "5m", "pullPolicy": "Always"}]}
    )
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["models"][0]["keepAlive"] == "5m"
    assert dumped["models"][0]["pullPolicy"] == "Always"
    assert "keep_alive" not in dumped["models"][0]


@pytest.mark.parametrize(
    "name",
    ["llama3.2", "llama3.2:1b", "registry.local/ns/model:tag", "localhost:5000/m:v1", "a/b"],
)
def test_model_names_accepted(name: str) -> None:
    OllamaServerSpec.model_validate({"models": [{"name": name}]})


def _peer(peer: dict[str, Any]) -> dict[str, Any]:
    """A spec whose only gateway ingress peer is ``peer``."""
    return {"networkPolicy": {"ingress": [peer]}}


# (spec, field the error must name, also refused by the OpenAPI schema?)
INVALID: list[tuple[dict[str, Any], str, bool]] = [
    ({"replicas": -1}, "replicas", True),
    ({"replicas": "two"}, "replicas", True),
    ({"models": [{"name": "Bad Name!"}]}, "models[0].name", True),
    ({"models": [{"name": ""}]}, "models[0].name", True),
    ({"models": [{"name": "m", "pullPolicy": "Sometimes"}]}, "models[0].pullPolicy", True),
    ({"models": [{"name": "m", "keepAlive": "forever"}]}, "models[0].keepAlive", True),
    ({"models": [{"name": "a"}, {"name": "a"}]}, "models[].name", False),
    ({"models": [{"name": "m", "create": {"from": "m"}}]}, "create.from", False),
    ({"gpu": {"count": 0}}, "gpu.count", True),
    ({"gpu": {"vendor": "intel"}}, "gpu.vendor", True),
    ({"gpu": {"resourceName": "not a resource"}}, "gpu.resourceName", True),
    ({"resources": {"limits": {"memory": "lots"}}}, "resources.limits.memory", True),
    ({"resources": {"requests": {"cpu": "-1"}}}, "resources.requests.cpu", True),
    ({"storage": {"mode": "Shared"}}, "storage.existingClaim", False),
    ({"storage": {"existingClaim": "c"}}, "storage.existingClaim", False),
    ({"storage": {"mode": "Cloud"}}, "storage.mode", True),
    ({"storage": {"size": "10 gigs"}}, "storage.size", True),
    ({"ollama": {"env": [{"name": "OLLAMA_HOST", "value": "0.0.0.0"}]}}, "OLLAMA_HOST", False),
    ({"ollama": {"numParallel": 0}}, "ollama.numParallel", True),
    ({"gateway": {"maxConcurrent": 0}}, "gateway.maxConcurrent", True),
    ({"gateway": {"timeouts": {"connect": "5 seconds"}}}, "gateway.timeouts.connect", True),
    ({"gateway": {"rateLimit": {"requestsPerMinute": 0}}}, "gateway.rateLimit", True),
    ({"gateway": {"cache": {"maxBytes": 1023}}}, "gateway.cache.maxBytes", True),
    ({"gateway": {"cache": {"maxBytes": 2**30 + 1}}}, "gateway.cache.maxBytes", True),
    ({"gateway": {"cache": {"maxBytes": "64Mi"}}}, "gateway.cache.maxBytes", True),
    ({"gateway": {"cache": {"shared": "maybe"}}}, "gateway.cache.shared", True),
    ({"gateway": {"auth": {"mode": "Off"}}}, "gateway.auth.mode", True),
    (
        {"gateway": {"auth": {"mode": "Disabled", "apiKeysSecretRef": {"name": "k"}}}},
        "gateway.auth.apiKeysSecretRef may not be set",
        False,
    ),
    ({"models": [{"name": "gpt-oss:20b-cloud"}]}, "may not be a cloud model", False),
    ({"models": [{"name": "glm-4.6:CLOUD"}]}, "may not be a cloud model", False),
    ({"ollama": {"cloud": "Sometimes"}}, "ollama.cloud", True),
    ({"ollama": {"env": [{"name": "OLLAMA_NO_CLOUD", "value": "0"}]}}, "OLLAMA_NO_CLOUD", False),
    ({"service": {"port": 70000}}, "service.port", True),
    ({"service": {"type": "ExternalName"}}, "service.type", True),
    ({"podLabels": {"app.kubernetes.io/instance": "x"}}, "podLabels", False),
    ({"replica": 2}, "replica", False),
    ({"networkPolicy": {"enabled": "maybe"}}, "networkPolicy.enabled", True),
    ({"networkPolicy": {"ingress": [{}]}}, "networkPolicy.ingress[0]", False),
    (_peer({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}), "ingress[0]", False),
    (_peer({"ipBlock": {"cidr": "10.0.0.300/8"}}), "ipBlock.cidr", False),
    (_peer({"ipBlock": {"cidr": "10.0.0.0"}}), "ipBlock.cidr", False),
    (_peer({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}), "except", False),
    (_peer({"namespaceSelector": {"matchLabels": {"team": "not ok"}}}), "matchLabels", True),
    (_peer({"namespaceSelector": {"matchLabels": {"bad key!": "x"}}}), "label keys", False),
    (_peer({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}), "In", False),
    (_peer({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}}), "op", True),
    (_peer({"podSelector": {"machLabels": {}}}), "machLabels", False),
    ({"networkPolicy": {"metricsFrom": [{"ipBlock": {}}]}}, "metricsFrom[0].ipBlock.cidr", True),
]


@pytest.mark.parametrize(("spec", "field"), [(s, f) for s, f, _ in INVALID])
def test_invalid_spec_refused_naming_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        OllamaServerSpec.model_validate(spec)
    text = " ".join(describe(info.value))
    assert field in text, text


@pytest.mark.parametrize("spec", [s for s, _, schema in INVALID if schema])
def test_invalid_spec_refused_by_crd_schema(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, crd_spec_schema())


def test_at_least_fifteen_invalid_cases() -> None:
    assert len(INVALID) >= 15


def test_field_path_renders_yaml_locations() -> None:
    assert field_path(("models", 1, "name"), "spec") == "spec.models[1].name"
    assert field_path((), "") == "(root)"
