"""``ollama-operator``: one executable, three jobs.

The same image runs the controller (``run``) and the in-pod gateway
(``sidecar``), so the command dispatches lazily: the sidecar never imports
kopf, the controller never imports the gateway.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller (kopf) against the current kubeconfig")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="namespace to watch (repeatable); default: all namespaces",
    )
    run.add_argument("--log-format", choices=("plain", "json"), default="plain")
    run.add_argument("--verbose", action="store_true")
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    run.add_argument(
        "--metrics-port", type=int, default=8082, help="Prometheus metrics port (0 to disable)"
    )

    side = sub.add_parser("sidecar", help="run the in-pod gateway and model agent")
    side.add_argument("--config", required=True, help="path of the sidecar config (YAML/JSON)")
    side.add_argument("--host", default=None, help="override the config's listenHost")

    crds = sub.add_parser("crds", help="write crds/*.yaml from ollama_operator.api")
    crds.add_argument("--check", action="store_true", help="exit 1 when crds/ is stale")
    crds.add_argument("--output-dir", default="crds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "crds":
        from .api.crd import write_or_check

        return write_or_check(args.output_dir, check=args.check)
    if args.command == "run":
        from .controller.main import run

        return run(
            namespaces=args.namespace,
            log_format=args.log_format,
            verbose=args.verbose,
            liveness=args.liveness or None,
            metrics_port=args.metrics_port,
        )
    if args.command == "sidecar":
        from .sidecar.app import main as sidecar_main

        return sidecar_main(config_path=args.config, host=args.host)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
