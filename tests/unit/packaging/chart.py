"""Rendering the Helm chart offline, and what the rendered objects are checked against.

The chart is tested the way a user meets it: through the real ``helm`` binary
(``helm lint``, ``helm template``), never by reading templates as text. ``helm`` comes
from ``make tools``; without it these tests skip on a developer machine and fail under
``CI``, like the integration suite does without its cluster.

Kubernetes kinds are validated against the API's own JSON schemas (``kubernetes-validate``,
strict: unknown fields are errors). prometheus-operator kinds have no schema there, so
:func:`check_monitoring_object` checks the fields prometheus-operator requires.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.integration.kube import REPO_ROOT, tool

CHART = REPO_ROOT / "charts" / "ollama-operator"
KUBE_VERSION = "1.34"
RELEASE = "ollama-operator"
RELEASE_NAMESPACE = "ollama-operator-system"
MONITORING_GROUP = "monitoring.coreos.com/v1"
#: A Prometheus duration as prometheus-operator validates it.
DURATION = re.compile(
    r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$"
)

Manifest = dict[str, Any]


def in_ci() -> bool:
    """``CI`` set to anything but an empty/false value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def helm_binary() -> Path:
    """The helm of ``make tools``; skips (fails under CI) when there is none."""
    binary = tool("helm")
    if binary is None:
        reason = "helm not found: run `make tools`"
        if in_ci():
            pytest.fail(f"{reason} (required under CI)", pytrace=False)
        pytest.skip(reason)
    return binary


def helm(*args: str, values: Manifest | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm with ``values`` (a dict) on stdin as an extra values file."""
    argv = [str(helm_binary()), *args]
    if values is not None:
        argv += ["--values", "-"]
    return subprocess.run(
        argv,
        input=yaml.safe_dump(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def template_args(*extra: str, release: str = RELEASE) -> list[str]:
    return [
        "template",
        release,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        f"{KUBE_VERSION}.0",
        *extra,
    ]


def render(values: Manifest | None = None, *extra: str, release: str = RELEASE) -> list[Manifest]:
    """``helm template`` with ``values``: the rendered objects, in order."""
    result = helm(*template_args(*extra, release=release), values=values or {})
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(values: Manifest) -> str:
    """``helm template`` with values it must refuse: its error message."""
    result = helm(*template_args(), values=values)
    assert result.returncode != 0, f"helm template accepted {values}"
    return result.stderr


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str) -> Manifest:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def role_rules() -> list[Manifest]:
    """The rules of manifests/rbac/role.yaml: what the operator is allowed, and no more."""
    role = yaml.safe_load((REPO_ROOT / "manifests" / "rbac" / "role.yaml").read_text())
    rules: list[Manifest] = role["rules"]
    return rules


def validate(obj: Manifest) -> None:
    """Kubernetes kinds against the API's schemas (strict); monitoring kinds by hand."""
    if obj["apiVersion"] == MONITORING_GROUP:
        check_monitoring_object(obj)
        return
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.path)
        raise AssertionError(
            f"{obj['kind']}/{obj['metadata'].get('name')}: {path}: {error.message}"
        ) from None


def _require(obj: Any, path: str, kind: type | tuple[type, ...]) -> Any:
    value = obj
    for part in path.split("."):
        assert isinstance(value, dict), f"{path}: {part} is not inside a mapping"
        assert part in value, f"missing {path}"
        value = value[part]
    assert isinstance(value, kind), f"{path} is {type(value).__name__}, not {kind}"
    return value


def _check_endpoint(endpoint: Manifest, where: str) -> None:
    assert isinstance(endpoint.get("port"), str), f"{where}.port"
    assert endpoint["port"], f"{where}.port is empty"
    for field in ("interval", "scrapeTimeout"):
        if field in endpoint:
            assert DURATION.match(endpoint[field]), f"{where}.{field}: {endpoint[field]!r}"
    for i, relabel in enumerate(endpoint.get("relabelings", [])):
        assert relabel.get("action", "replace") in {"replace", "keep", "drop", "labelmap"}
        if relabel.get("action", "replace") == "replace":
            assert relabel.get("targetLabel"), f"{where}.relabelings[{i}].targetLabel"
        assert all(isinstance(s, str) for s in relabel.get("sourceLabels", []))


def _check_selector_objects(spec: Manifest, kind: str) -> None:
    labels = _require(spec, "selector.matchLabels", dict)
    assert labels, f"{kind} selects everything"
    assert all(isinstance(v, str) for v in labels.values()), f"{kind} selector"
    namespaces = spec.get("namespaceSelector", {})
    assert set(namespaces) <= {"any", "matchNames"}, f"{kind} namespaceSelector"
    if "matchNames" in namespaces:
        assert namespaces["matchNames"], f"{kind} matchNames is empty"
        assert all(isinstance(n, str) for n in namespaces["matchNames"])


def check_monitoring_object(obj: Manifest) -> None:
    """The fields prometheus-operator requires of the kinds the chart renders."""
    assert obj["apiVersion"] == MONITORING_GROUP
    _require(obj, "metadata.name", str)
    _require(obj, "metadata.namespace", str)
    spec = _require(obj, "spec", dict)
    kind = obj["kind"]
    if kind in ("ServiceMonitor", "PodMonitor"):
        _check_selector_objects(spec, kind)
        field = "endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"
        endpoints = _require(spec, field, list)
        assert endpoints, f"{kind}.spec.{field} is empty"
        for i, endpoint in enumerate(endpoints):
            _check_endpoint(endpoint, f"{kind}.spec.{field}[{i}]")
        assert set(spec) <= {"selector", "namespaceSelector", field, "jobLabel"}, kind
    elif kind == "PrometheusRule":
        groups = _require(spec, "groups", list)
        names = [g.get("name") for g in groups]
        assert groups, "PrometheusRule without groups"
        assert all(names), "a group without a name"
        assert len(set(names)) == len(names), f"duplicate group names: {names}"
        for group in groups:
            rules = _require(group, "rules", list)
            assert rules, f"group {group['name']} has no rules"
            for rule in rules:
                assert ("alert" in rule) != ("record" in rule), f"alert xor record: {rule}"
                assert isinstance(rule.get("expr"), str), f"expr of {rule}"
                assert rule["expr"].strip(), f"empty expr: {rule}"
                if "for" in rule:
                    assert DURATION.match(rule["for"]), f"{rule.get('alert')}: for {rule['for']}"
                if "alert" in rule:
                    assert rule["labels"]["severity"] in {"warning", "critical"}
                    assert rule["annotations"]["summary"].strip()
                    assert rule["annotations"]["description"].strip()
    else:
        raise AssertionError(f"unexpected monitoring kind {kind}")
