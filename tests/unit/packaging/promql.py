"""Which metrics the dashboard and the alerts may read, and what their queries read.

The dashboard and the PrometheusRule are text that names metrics; the code that exports
those metrics lives elsewhere. This module asks the code for the sample names it really
exports (``ollama_gateway_*`` from the sidecar, ``ollama_operator_*`` from the
controller), so a renamed metric breaks a test instead of a dashboard panel in
production.

:data:`PROPOSED` lists metrics the alerts read before the code exports them; each entry
says what should export it. Queries are parsed with ``promql-parser`` when it is
installed (a syntax error fails); otherwise metric names are found by pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from ollama_operator.controller import metrics as operator_metrics
from ollama_operator.sidecar.metrics import GatewayMetrics

#: Metrics the alerts use that are not exported yet, with who should export them.
PROPOSED: dict[str, str] = {}
#: Series Prometheus makes itself.
BUILTIN = {"up"}

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
}
_NAME = re.compile(r"\b(ollama_(?:gateway|operator)_[a-z0-9_]+|up(?=\{))")
#: Grafana's variables, replaced by values Prometheus accepts before parsing.
_GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _sample_names(families: Iterable[Any]) -> set[str]:
    names = set()
    for family in families:
        for suffix in _SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def _module_metrics(module: ModuleType) -> set[str]:
    families: list[Any] = []
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            families.extend(value.describe())
    return _sample_names(families)


def exported_metrics() -> set[str]:
    """Every sample name the sidecar and the controller expose."""
    gateway = GatewayMetrics()
    return _sample_names(gateway.registry.collect()) | _module_metrics(operator_metrics)


def for_prometheus(expr: str) -> str:
    """A Grafana query with its variables replaced, as Prometheus would receive it."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def metrics_read(expr: str) -> set[str]:
    """The metric names a query reads; raises ValueError when it does not parse."""
    expr = for_prometheus(expr)
    try:
        import promql_parser
    except ImportError:
        return set(_NAME.findall(expr))
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names
