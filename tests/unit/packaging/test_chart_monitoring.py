"""The chart's Prometheus objects: what they scrape, and alerts that can fire.

Scrape targets must match what the operator creates (pod labels, the ``admin`` port);
every alert must parse, read only metrics the code exports (or a documented proposal),
and the thresholds in the values must reach the expressions.
"""

from __future__ import annotations

from typing import Any

import pytest

from ollama_operator.controller.builders import build_headless_service
from ollama_operator.controller.naming import Owner, common_labels

from .chart import Manifest, one, render
from .promql import BUILTIN, PROPOSED, exported_metrics, metrics_read

ALL_ON: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}},
    "sidecarMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
}
#: What the issue asks the alerts to cover, and the alert that does.
REQUIRED_ALERTS = {
    "an OllamaServer not Ready": "OllamaServerNotReady",
    "a model pull failing": "OllamaModelPullFailing",
    "a model pull stalled": "OllamaModelPullStalled",
    "the sidecars' 5xx ratio": "OllamaGateway5xxRatioHigh",
    "queue saturation": "OllamaGatewayQueueSaturated",
}


def alerts(objects: list[Manifest]) -> dict[str, Manifest]:
    rule = one(objects, "PrometheusRule")
    found = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    by_name = {r["alert"]: r for r in found}
    assert len(by_name) == len(found), "duplicate alert names"
    return by_name


@pytest.fixture(scope="module")
def rendered() -> list[Manifest]:
    return render(ALL_ON)


def test_monitoring_is_off_by_default() -> None:
    kinds = {o["kind"] for o in render({})}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Service"}


OWNER = Owner(name="llama", namespace="team-a", uid="u")


@pytest.mark.parametrize("kind", ["PodMonitor", "ServiceMonitor"])
def test_sidecar_monitor_selects_the_pods_the_operator_creates(kind: str) -> None:
    objects = render({"sidecarMonitor": {"enabled": True, "kind": kind}})
    monitor = next(o for o in objects if o["metadata"]["name"].endswith("-sidecars"))
    assert monitor["kind"] == kind
    # The pods (PodMonitor) or the headless Service (ServiceMonitor) the operator builds.
    headless = build_headless_service(OWNER)
    target = common_labels(OWNER) if kind == "PodMonitor" else headless["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= target.items()
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    field = "podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"
    [endpoint] = monitor["spec"][field]
    assert (endpoint["port"], endpoint["path"]) == ("admin", "/metrics")
    assert "admin" in [p["name"] for p in headless["spec"]["ports"]]
    [relabel] = endpoint["relabelings"]
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"]
    assert relabel["targetLabel"] == "ollamaserver"


def test_sidecar_monitor_looks_only_in_watched_namespaces() -> None:
    objects = render({"watchNamespaces": ["team-a", "team-b"], "sidecarMonitor": {"enabled": True}})
    monitor = one(objects, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_operator_service_monitor_scrapes_the_metrics_port(rendered: list[Manifest]) -> None:
    monitor = next(o for o in rendered if o["kind"] == "ServiceMonitor")
    service = one(rendered, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ollama-operator-system"]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["honorLabels"] is True


def test_monitor_labels_let_prometheus_select_them() -> None:
    labels = {"release": "kube-prometheus-stack"}
    objects = render(
        {
            "metrics": {"serviceMonitor": {"enabled": True, "labels": labels}},
            "sidecarMonitor": {"enabled": True, "labels": labels},
            "prometheusRule": {"enabled": True, "labels": labels},
        }
    )
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", obj["kind"]


def test_required_alerts_exist(rendered: list[Manifest]) -> None:
    names = alerts(rendered)
    missing = {what: name for what, name in REQUIRED_ALERTS.items() if name not in names}
    assert not missing


def test_alerts_read_only_exported_or_proposed_metrics(rendered: list[Manifest]) -> None:
    known = exported_metrics() | set(PROPOSED) | BUILTIN
    unknown = {}
    for name, rule in alerts(rendered).items():
        read = metrics_read(rule["expr"])
        assert read, f"{name} reads no metric"
        if read - known:
            unknown[name] = sorted(read - known)
    assert not unknown, f"alerts read metrics nobody exports: {unknown}"


def test_proposed_metrics_are_really_needed(rendered: list[Manifest]) -> None:
    read = set().union(*(metrics_read(r["expr"]) for r in alerts(rendered).values()))
    assert set(PROPOSED) <= read, "a proposed metric no alert reads: drop it from PROPOSED"


def test_alert_expressions_parse(rendered: list[Manifest]) -> None:
    promql_parser = pytest.importorskip("promql_parser")
    for name, rule in alerts(rendered).items():
        try:
            promql_parser.parse(rule["expr"])
        except ValueError as error:
            pytest.fail(f"{name}: {error}\n{rule['expr']}")


def test_thresholds_reach_the_expressions() -> None:
    objects = render(
        {
            "prometheusRule": {
                "enabled": True,
                "notReadyFor": "42m",
                "modelPullStalledFor": "2h",
                "errorRatioThreshold": 0.25,
                "queueSaturatedFor": "7m",
            }
        }
    )
    by_name = alerts(objects)
    assert by_name["OllamaServerNotReady"]["for"] == "42m"
    assert by_name["OllamaModelPullStalled"]["for"] == "2h"
    assert by_name["OllamaGateway5xxRatioHigh"]["expr"].rstrip().endswith("> 0.25")
    assert "25%" in by_name["OllamaGateway5xxRatioHigh"]["annotations"]["description"]
    assert by_name["OllamaGatewayQueueSaturated"]["for"] == "7m"


def test_operator_down_alert_needs_the_operator_to_be_scraped() -> None:
    without = alerts(render({"prometheusRule": {"enabled": True}}))
    assert "OllamaOperatorDown" not in without
    with_monitor = alerts(render(ALL_ON))
    expr = with_monitor["OllamaOperatorDown"]["expr"]
    assert 'job="ollama-operator-metrics"' in expr
    assert 'namespace="ollama-operator-system"' in expr


def test_annotations_keep_prometheus_templates(rendered: list[Manifest]) -> None:
    # Helm must pass `{{ $labels.x }}` through to Prometheus untouched.
    summary = alerts(rendered)["OllamaServerNotReady"]["annotations"]["summary"]
    assert "{{ $labels.namespace }}/{{ $labels.name }}" in summary
