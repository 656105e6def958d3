"""``kubectl port-forward`` as a context manager: the local port it chose, then cleanup."""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.integration.kube import Kubectl

_FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) ->")


@contextmanager
def port_forward(
    kubectl: Kubectl, namespace: str, target: str, port: int, timeout: float = 60
) -> Iterator[int]:
    """Forward a free 127.0.0.1 port to ``target`` (``svc/x``, ``pod/y``) ``port``."""
    argv = [
        str(kubectl.binary),
        "--kubeconfig",
        str(kubectl.kubeconfig),
        "-n",
        namespace,
        "port-forward",
        "--address",
        "127.0.0.1",
        target,
        f":{port}",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = threading.Event()
    lines: list[str] = []
    local: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = _FORWARDING.search(line)
            if match and not local:
                local.append(int(match.group(1)))
                found.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not found.wait(timeout) or (proc.poll() is not None and not local):
            raise TimeoutError(f"kubectl port-forward {target} did not start: {''.join(lines)}")
        yield local[0]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
