"""values.schema.json refuses bad values before anything reaches the cluster.

Each case is a mistake a user could make; ``helm template`` must fail and its message
must point at the value. A schema that accepted everything would fail every case here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from .chart import CHART, render, render_error

BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("watch-some", {"watchNamespaces": "some"}, "/watchNamespaces"),
    ("watch-empty-list", {"watchNamespaces": []}, "/watchNamespaces"),
    ("watch-bad-name", {"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    ("watch-duplicate", {"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    ("log-format", {"logFormat": "xml"}, "/logFormat"),
    ("pull-policy", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ("tag-in-repository", {"image": {"repository": "ollama-operator:1.0"}}, "/image/repository"),
    ("empty-repository", {"image": {"repository": ""}}, "/image/repository"),
    ("bad-tag", {"image": {"tag": "has space"}}, "/image/tag"),
    ("typo-top-level", {"imagee": {"tag": "1"}}, "imagee"),
    ("typo-resources", {"resources": {"limit": {"memory": "1Gi"}}}, "limit"),
    ("bad-quantity", {"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ("negative-quantity", {"resources": {"requests": {"cpu": -1}}}, "/resources/requests/cpu"),
    ("node-selector-not-strings", {"nodeSelector": {"gpu": True}}, "/nodeSelector/gpu"),
    ("tolerations-not-a-list", {"tolerations": {"key": "x"}}, "/tolerations"),
    ("toleration-effect", {"tolerations": [{"key": "x", "effect": "Never"}]}, "/tolerations/0"),
    ("affinity-typo", {"affinity": {"nodeAfinity": {}}}, "nodeAfinity"),
    ("pod-security-user", {"podSecurityContext": {"runAsUser": -1}}, "/podSecurityContext"),
    ("pod-security-typo", {"podSecurityContext": {"runAsNonroot": True}}, "runAsNonroot"),
    ("metrics-port", {"metrics": {"port": 70000}}, "/metrics/port"),
    ("liveness-port", {"livenessProbe": {"port": 0}}, "/livenessProbe/port"),
    ("sidecar-monitor-kind", {"sidecarMonitor": {"kind": "Probe"}}, "/sidecarMonitor/kind"),
    ("scrape-interval", {"sidecarMonitor": {"interval": "often"}}, "/sidecarMonitor/interval"),
    ("rule-duration", {"prometheusRule": {"notReadyFor": ""}}, "/prometheusRule/notReadyFor"),
    ("error-ratio", {"prometheusRule": {"errorRatioThreshold": 5}}, "errorRatioThreshold"),
    ("verbose-string", {"verbose": "yes"}, "/verbose"),
    ("extra-env-no-name", {"extraEnv": [{"value": "1"}]}, "/extraEnv/0"),
    ("service-account-name", {"serviceAccount": {"name": "Bad Name"}}, "/serviceAccount/name"),
]


@pytest.mark.parametrize(
    ("values", "pointer"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_bad_values_are_refused_naming_the_value(values: dict[str, Any], pointer: str) -> None:
    error = render_error(values)
    assert "values don't meet the specifications of the schema" in error
    assert pointer in error, error


GOOD_VALUES: list[dict[str, Any]] = [
    {"watchNamespaces": "all"},
    {"watchNamespaces": ["a", "b-2"]},
    {"resources": {"requests": {"cpu": 0.5, "memory": "1.5Gi"}, "limits": {"cpu": "2"}}},
    {"image": {"repository": "registry.local:5000/team/ollama-operator", "tag": "v1.2.3-rc.1"}},
    {"prometheusRule": {"enabled": True, "notReadyFor": "1h30m", "errorRatioThreshold": 0.01}},
]


@pytest.mark.parametrize("values", GOOD_VALUES)
def test_reasonable_values_are_accepted(values: dict[str, Any]) -> None:
    assert render(values)


def test_the_defaults_satisfy_the_schema_and_every_value_is_described() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) == set(schema["properties"]), "values.yaml and the schema disagree"
