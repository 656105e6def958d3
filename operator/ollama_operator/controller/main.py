"""``ollama-operator run``: configure logging and metrics, then hand over to kopf."""

from __future__ import annotations

import asyncio
import logging

import kopf
from prometheus_client import start_http_server


def run(
    *,
    namespaces: list[str],
    log_format: str = "plain",
    verbose: bool = False,
    liveness: str | None = None,
    metrics_port: int = 0,
) -> int:
    """Run the controller until interrupted; watch all namespaces unless some are named."""
    from .handlers import REGISTRY

    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if metrics_port:
        start_http_server(metrics_port)
        logging.getLogger(__name__).info("metrics on :%d/metrics", metrics_port)
    try:
        asyncio.run(
            kopf.operator(
                registry=REGISTRY,
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=liveness,
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0
