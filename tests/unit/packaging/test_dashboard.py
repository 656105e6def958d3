"""dashboards/ollama-operator.json: importable into any Grafana, and every panel can draw.

A dashboard breaks quietly: a renamed metric or a hard-coded datasource leaves empty
panels and no error. These tests read the JSON as Grafana would and hold every query
against the metrics the code exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.kube import REPO_ROOT

from .promql import exported_metrics, for_prometheus, metrics_read

DASHBOARD = REPO_ROOT / "dashboards" / "ollama-operator.json"
DATASOURCE = "${datasource}"
#: What the dashboard must show, and a metric that shows it.
REQUIRED = {
    "requests/s by route and code": "ollama_gateway_requests_total",
    "latency p50/p99": "ollama_gateway_request_duration_seconds_bucket",
    "time to first token": "ollama_gateway_time_to_first_token_seconds_bucket",
    "tokens/s": "ollama_gateway_generated_tokens_total",
    "in flight": "ollama_gateway_in_flight",
    "queue depth": "ollama_gateway_queue_depth",
    "rate limited": "ollama_gateway_rate_limited_total",
    "cache hit ratio": "ollama_gateway_cache_hits_total",
    "circuit state": "ollama_gateway_circuit_state",
    "model pull progress": "ollama_gateway_model_pull_progress_ratio",
    "reconciles": "ollama_operator_reconciles_total",
    "applies": "ollama_operator_applies_total",
    "status writes": "ollama_operator_status_writes_total",
    "reconcile duration": "ollama_operator_reconcile_duration_seconds_bucket",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_identity_for_import(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "ollama-operator"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert "id" not in dashboard or dashboard["id"] is None, "an id pins it to one Grafana"


def test_datasource_is_a_variable_everywhere(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == DATASOURCE, name
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_shows_everything_asked_for(dashboard: dict[str, Any]) -> None:
    read = set().union(*(metrics_read(expr) for _, expr in queries(dashboard)))
    missing = {what: metric for what, metric in REQUIRED.items() if metric not in read}
    assert not missing


def test_every_query_reads_exported_metrics(dashboard: dict[str, Any]) -> None:
    exported = exported_metrics()
    unknown = {}
    for title, expr in queries(dashboard):
        read = metrics_read(expr)
        assert read, f"{title}: reads no metric"
        if read - exported:
            unknown[title] = sorted(read - exported)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = variable["definition"].removeprefix("label_values(").rsplit(",", 1)[0]
            if metrics_read(inner) - exported:
                unknown[f"${variable['name']}"] = sorted(metrics_read(inner) - exported)
    assert not unknown, f"panels read metrics nobody exports: {unknown}"


def test_every_query_parses(dashboard: dict[str, Any]) -> None:
    promql_parser = pytest.importorskip("promql_parser")
    for title, expr in queries(dashboard):
        try:
            promql_parser.parse(for_prometheus(expr))
        except ValueError as error:
            pytest.fail(f"{title}: {error}\n{expr}")


def test_gateway_panels_follow_the_namespace_and_server_variables(
    dashboard: dict[str, Any],
) -> None:
    for title, expr in queries(dashboard):
        for selector in re.findall(r"ollama_gateway_\w+(\{[^}]*\})?", expr):
            assert 'ollamaserver=~"$ollamaserver"' in selector, title
            assert 'namespace=~"$namespace"' in selector, title
