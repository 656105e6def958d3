"""Credentials from a given kubeconfig file, for test and benchmark clients.

kopf's ``login_with_kubeconfig`` reads ``$KUBECONFIG``; harnesses that hold
several kubeconfigs at once (the cluster admin's, the operator's
ServiceAccount's) name the file instead. Only the current context's plain
fields are read: server, CA, client certificate and key, token.
"""

from __future__ import annotations

from pathlib import Path

import kopf
import yaml

from ollama_operator.controller.kube import Kube


def connection_info(path: Path) -> kopf.ConnectionInfo:
    doc = yaml.safe_load(path.read_text()) or {}
    context_name = doc.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    if context_name not in contexts:
        raise ValueError(f"{path}: current-context {context_name!r} is not defined")
    context = contexts[context_name]
    cluster = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}[
        context["cluster"]
    ]
    user = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}[context["user"]]
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=user.get("client-certificate"),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=user.get("client-key"),
        private_key_data=user.get("client-key-data"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
    )


def kube_client(path: Path, timeout: float = 15.0) -> Kube:
    """The operator's API client, authenticated by the kubeconfig at ``path``."""
    return Kube(lambda: connection_info(path), timeout=timeout)
