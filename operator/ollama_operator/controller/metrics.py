"""The controller's own Prometheus metrics (what an SRE watches about the operator).

Kept apart from the sidecar's gateway metrics: different process, different
questions ("is the operator keeping up and quiet?" vs "is Ollama serving?").
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "ollama_operator_reconciles_total", "Reconciles of an OllamaServer, by result.", ["result"]
)
APPLIES = Counter(
    "ollama_operator_applies_total", "Server-side applies of a child, by kind.", ["kind"]
)
DELETES = Counter("ollama_operator_deletes_total", "Children deleted as stale, by kind.", ["kind"])
STATUS_WRITES = Counter("ollama_operator_status_writes_total", "Status subresource patches.")
RECONCILE_SECONDS = Histogram(
    "ollama_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10),
)
SERVERS = Gauge("ollama_operator_servers", "OllamaServers known to the operator.")
SERVER_READY = Gauge(
    "ollama_operator_server_ready",
    "1 while an OllamaServer's Ready condition is True, else 0.",
    ["namespace", "name"],
)
