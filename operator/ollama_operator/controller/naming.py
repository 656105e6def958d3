"""Names and labels of everything the operator creates for one OllamaServer.

One place decides them so builders, reconcile, status and tests agree; the
selector labels are a subset users cannot override (the CRD refuses them in
``podLabels``), because changing a StatefulSet selector is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.spec import API_GROUP, API_VERSION, KIND

MANAGER = "ollama-operator"
LABEL_PREFIX = "ollama.operator.dev"
APP_NAME = "ollama"
#: Annotation on every applied child: a hash of the manifest it was applied from (diff.py).
APPLIED_HASH = f"{LABEL_PREFIX}/applied-hash"


@dataclass(frozen=True, slots=True)
class Owner:
    """The identity of the OllamaServer being reconciled (what children point back to)."""

    name: str
    namespace: str
    uid: str
    generation: int = 0

    @property
    def reference(self) -> dict[str, object]:
        """The controller ownerReference every child carries (garbage collection)."""
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    @property
    def statefulset(self) -> str:
        return self.name

    @property
    def service(self) -> str:
        return self.name

    @property
    def headless_service(self) -> str:
        return f"{self.name}-headless"

    @property
    def configmap(self) -> str:
        return f"{self.name}-config"

    @property
    def internal_secret(self) -> str:
        return f"{self.name}-internal"

    @property
    def api_keys_secret(self) -> str:
        """The API key Secret the operator generates when the spec names none."""
        return f"{self.name}-api-keys"

    @property
    def pdb(self) -> str:
        return self.name

    @property
    def network_policy(self) -> str:
        return self.name

    @property
    def endpoint(self) -> str:
        return f"http://{self.name}.{self.namespace}.svc"


def selector_labels(owner: Owner) -> dict[str, str]:
    """Labels that select this server's pods: stable for the object's whole life."""
    return {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": owner.name}


def common_labels(owner: Owner) -> dict[str, str]:
    """Kubernetes recommended labels on every child."""
    return {
        **selector_labels(owner),
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/part-of": "ollama-operator",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def selector_string(owner: Owner) -> str:
    """``.status.selector`` for the scale subresource (HPA/KEDA)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(owner).items()))
