"""Is another ollama-operator acting on this cluster? Asked once, before the tests run.

A newcomer's ``make demo`` leaves an operator process running; from an older checkout
(or any ``ollama-operator run`` in a shell, or a killed test session's orphan) it watches
every namespace, and then it reconciles the tests' objects beside the tests' own
operator: the two fight over status and children, and tests fail in ways that say
nothing about the cause. Asking the API server which watches are open does not tell
(kube-controller-manager's garbage collector watches OllamaServers cluster-wide too),
so the probe asks for evidence of reconciling instead: an OllamaServer in a throwaway
namespace, created while no test operator runs, and a condition wait for anything
(status, a labelled child) written for it. Only an operator watching all namespaces
(or that very namespace) can see it, so the demo as it is now, watching only
``ollama-demo``, never trips it. Nothing answering within the window is the normal
case and costs the whole window; any answer ends the wait at once.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from tests.integration.kube import Kubectl, wait_for
from tests.integration.operator_process import install_crds

#: How long an operator has to show itself (seconds). A live operator writes the probe's
#: first child well under a second after the create; the rest is margin for a busy machine.
DEFAULT_WINDOW_S = 6.0
#: Set to 1 to skip the check (e.g. a shared cluster whose operator you mean to test with).
SKIP_ENV = "OLLAMA_TESTS_SKIP_FOREIGN_OPERATOR_CHECK"
WINDOW_ENV = "OLLAMA_TESTS_FOREIGN_OPERATOR_WINDOW"
PROBE = "probe"
MANAGED_BY = "app.kubernetes.io/managed-by"
_KINDS = "ollamaservers.ollama.operator.dev,configmaps,secrets,services,statefulsets.apps"


def window() -> float:
    return float(os.environ.get(WINDOW_ENV, DEFAULT_WINDOW_S))


def skipped() -> bool:
    return os.environ.get(SKIP_ENV, "").strip().lower() in ("1", "true", "yes")


def evidence(items: list[dict[str, Any]]) -> str | None:
    """What someone wrote for the probe, in words; None when nothing was (pure)."""
    found: list[str] = []
    children: list[str] = []
    for item in items:
        meta = item.get("metadata") or {}
        if item.get("kind") == "OllamaServer":
            if item.get("status"):
                managers = sorted(
                    {
                        str(f.get("manager"))
                        for f in meta.get("managedFields") or []
                        if f.get("subresource") == "status"
                    }
                )
                found.append(f"its status was written (field manager {', '.join(managers)})")
        elif (meta.get("labels") or {}).get(MANAGED_BY) == "ollama-operator":
            children.append(f"{item.get('kind')} {meta.get('name')}")
    if children:
        found.append(f"it created {', '.join(children)}")
    return "; ".join(found) or None


def probe(kubectl: Kubectl, timeout: float | None = None) -> str | None:
    """Evidence that an operator outside this test session reconciles a fresh namespace.

    Call it only while none of the session's own cluster-wide operators runs.
    """
    install_crds(kubectl)
    namespace = f"it-foreign-probe-{uuid.uuid4().hex[:6]}"
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {"app.kubernetes.io/part-of": "ollama-operator-tests"},
            },
        }
    )
    try:
        kubectl.apply(
            {
                "apiVersion": "ollama.operator.dev/v1alpha1",
                "kind": "OllamaServer",
                "metadata": {"name": PROBE},
                # No pod: a foreign operator's answer costs the cluster nothing.
                "spec": {"replicas": 0, "storage": {"mode": "Ephemeral"}},
            },
            "-n",
            namespace,
        )

        def answered() -> str | None:
            listed = kubectl(
                "-n", namespace, "get", _KINDS, "--show-managed-fields", "-o", "json", check=False
            )
            if listed.returncode != 0:
                return None
            found = evidence(json.loads(listed.stdout).get("items") or [])
            return None if found is None else f"in namespace {namespace}: {found}"

        try:
            return wait_for(
                answered,
                timeout=window() if timeout is None else timeout,
                interval=0.2,
                what="a foreign operator",
            )
        except TimeoutError:
            return None
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def message(found: str) -> str:
    """What a newcomer reads: what was seen, and what to run."""
    return (
        "another ollama-operator is reconciling OllamaServers in every namespace of this "
        f"cluster ({found}). It would fight the tests' own operator over every object they "
        "create, so the integration tests stop here.\n"
        "  - left over from `make demo`: run `make demo-down` (a current demo watches only "
        "the ollama-demo namespace and is no problem);\n"
        "  - started by hand or by a killed test run: find it with "
        "`pgrep -af 'ollama.operator.*run'` and stop it;\n"
        "  - another test session on the same cluster: wait for it to finish.\n"
        f"  To run anyway: {SKIP_ENV}=1."
    )
