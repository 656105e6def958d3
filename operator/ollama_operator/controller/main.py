"""``ollama-operator run``: configure logging and metrics, then hand over to kopf."""

from __future__ import annotations

import asyncio
import logging
import socket

import kopf
from kopf._core.engines.peering import Identity  # kopf types the argument, exports no name
from prometheus_client import start_http_server


def identity() -> Identity:
    """Who this operator is to its peers, without asking the user database.

    kopf derives it from ``getpass.getuser()`` by default, which raises in a container
    running as a UID without a passwd entry (the image runs as 65532, which has none):
    the operator died at start in every real pod. In a pod the host name is the pod's
    name, which is unique while it runs.
    """
    return Identity(f"ollama-operator@{socket.gethostname()}")


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
                identity=identity(),
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=liveness,
            )
        )
    except KeyboardInterrupt:
        return 0
    return 0
