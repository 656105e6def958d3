"""Pure builders: an OllamaServer spec in, plain-dict Kubernetes manifests out.

Nothing here performs I/O or reads the clock, so every manifest the operator
applies can be unit-tested (and golden-filed) without a cluster. The
reconcile loop calls these and server-side-applies the result; whatever is
not in these dicts is not owned by the operator.

Security posture, decided here once: Ollama binds to 127.0.0.1 only (the
sidecar is the one way in), both containers run as a non-root user with a
read-only root filesystem and no capabilities, the pod gets no API token, and
(unless turned off) a NetworkPolicy narrows who reaches the gateway and, more
tightly, its admin port.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..api.sidecar_config import (
    ADMIN_PORT,
    CONFIG_DIR,
    CONFIG_KEY,
    KEYS_DIR,
    OLLAMA_PORT,
    PUBLIC_PORT,
    TOKEN_DIR,
    TOKEN_KEY,
    CachePolicy,
    SidecarConfig,
)
from ..api.spec import (
    DEFAULT_IMAGE,
    GENERATED_KEYS_KEY,
    NetworkPolicyPeer,
    OllamaServerSpec,
    OllamaSettings,
    SecretKeyRef,
)
from .naming import Owner, common_labels, selector_labels

Manifest = dict[str, Any]

#: Where the models volume is mounted; also ollama's HOME (it keeps its key there).
DATA_DIR = "/data"
RUN_AS_USER = 1000
KEYS_FILE_NAME = "keys"
NVIDIA_RESOURCE = "nvidia.com/gpu"
AMD_RESOURCE = "amd.com/gpu"
NVIDIA_TOLERATION = {"key": NVIDIA_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
DEFAULT_SIDECAR_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
#: A startup budget of 10 minutes: slow image or volume setup must not get the pod killed.
STARTUP_PROBE_FAILURES = 120
#: The label the API server puts on every namespace, with its name (Kubernetes 1.21+): how
#: a NetworkPolicy peer names exactly one namespace.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Operator-level settings the builders need beside the spec."""

    #: Image for the sidecar container when ``spec.gateway.image`` is unset.
    operator_image: str = "ollama-operator:0.1.0"
    #: The namespace the operator runs in (``POD_NAMESPACE``): the NetworkPolicy lets it
    #: reach the admin port (/status). None (run outside the cluster): no such peer.
    operator_namespace: str | None = None


def _meta(owner: Owner, name: str, **extra: Any) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": owner.namespace,
        "labels": common_labels(owner),
        "ownerReferences": [owner.reference],
    }
    meta.update(extra)
    return meta


def _dump(value: Any) -> Any:
    """A pydantic model or container as plain JSON data with camelCase keys."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def gpu_resource(spec: OllamaServerSpec) -> str | None:
    """The extended resource the GPUs are requested as, or None without GPUs."""
    if spec.gpu is None:
        return None
    if spec.gpu.resource_name:
        return spec.gpu.resource_name
    return AMD_RESOURCE if spec.gpu.vendor == "amd" else NVIDIA_RESOURCE


def ollama_image(spec: OllamaServerSpec) -> str:
    """The user's image, else the pinned default (``-rocm`` for AMD GPUs)."""
    if spec.image:
        return spec.image
    if spec.gpu is not None and spec.gpu.vendor == "amd":
        return f"{DEFAULT_IMAGE}-rocm"
    return DEFAULT_IMAGE


def ollama_env(settings: OllamaSettings) -> list[Manifest]:
    """``OLLAMA_*`` variables from the typed knobs, then the user's passthrough ``env``."""
    env: list[Manifest] = [
        {"name": "OLLAMA_HOST", "value": f"127.0.0.1:{OLLAMA_PORT}"},
        {"name": "OLLAMA_MODELS", "value": f"{DATA_DIR}/models"},
        {"name": "HOME", "value": DATA_DIR},
    ]
    knobs: list[tuple[str, object]] = [
        ("OLLAMA_KEEP_ALIVE", settings.keep_alive),
        ("OLLAMA_NUM_PARALLEL", settings.num_parallel),
        ("OLLAMA_MAX_LOADED_MODELS", settings.max_loaded_models),
        ("OLLAMA_MAX_QUEUE", settings.max_queue),
        ("OLLAMA_CONTEXT_LENGTH", settings.context_length),
        ("OLLAMA_FLASH_ATTENTION", settings.flash_attention),
        ("OLLAMA_DEBUG", settings.debug or None),
    ]
    for name, value in knobs:
        if value is None:
            continue
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        env.append({"name": name, "value": text})
    if settings.cloud != "Allowed":
        # Ollama's own switch (newer releases): no cloud models, no forwarding to ollama.com.
        env.append({"name": "OLLAMA_NO_CLOUD", "value": "1"})
    env.extend(_dump(settings.env))
    return env


def _container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def ollama_resources(spec: OllamaServerSpec) -> Manifest:
    """The user's requests/limits plus the GPUs (extended resources go in limits)."""
    resources: Manifest = {}
    if spec.resources.requests:
        resources["requests"] = dict(spec.resources.requests)
    limits = dict(spec.resources.limits)
    resource = gpu_resource(spec)
    if resource is not None and spec.gpu is not None:
        limits[resource] = spec.gpu.count
    if limits:
        resources["limits"] = limits
    return resources


def _ollama_container(spec: OllamaServerSpec) -> Manifest:
    container: Manifest = {
        "name": "ollama",
        "image": ollama_image(spec),
        "args": ["serve"],
        "env": ollama_env(spec.ollama),
        "resources": ollama_resources(spec),
        "securityContext": _container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp", "subPath": "ollama"},  # noqa: S108
        ],
    }
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if spec.ollama.env_from:
        container["envFrom"] = [dict(e) for e in spec.ollama.env_from]
    return container


def keys_ref(owner: Owner, spec: OllamaServerSpec) -> SecretKeyRef | None:
    """The Secret key the gateway reads its API keys from; None only when auth is Disabled.

    Auth is on by default: without a ``apiKeysSecretRef`` the keys come from the Secret
    the controller generates once (``<name>-api-keys``), so a server nobody configured
    is never open.
    """
    auth = spec.gateway.auth
    if auth.generated:
        return SecretKeyRef(name=owner.api_keys_secret, key=GENERATED_KEYS_KEY)
    return auth.api_keys_secret_ref  # None exactly when auth is Disabled


def _probe(path: str, **timing: int) -> Manifest:
    return {"httpGet": {"path": path, "port": "admin"}, **timing}


def _sidecar_container(owner: Owner, spec: OllamaServerSpec, ctx: BuildContext) -> Manifest:
    mounts: list[Manifest] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "internal-token", "mountPath": TOKEN_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp", "subPath": "sidecar"},  # noqa: S108
    ]
    if keys_ref(owner, spec) is not None:
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
    resources = _dump(spec.gateway.resources)
    resources = {k: v for k, v in resources.items() if v} or DEFAULT_SIDECAR_RESOURCES
    return {
        "name": "sidecar",
        "image": spec.gateway.image or ctx.operator_image,
        "args": ["sidecar", "--config", f"{CONFIG_DIR}/{CONFIG_KEY}"],
        "ports": [
            {"name": "http", "containerPort": PUBLIC_PORT, "protocol": "TCP"},
            {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
        ],
        "startupProbe": _probe(
            "/healthz", periodSeconds=5, failureThreshold=STARTUP_PROBE_FAILURES
        ),
        "livenessProbe": _probe("/healthz", periodSeconds=10, failureThreshold=6),
        "readinessProbe": _probe("/readyz", periodSeconds=5, failureThreshold=2),
        "resources": resources,
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }


def _volumes(owner: Owner, spec: OllamaServerSpec) -> list[Manifest]:
    volumes: list[Manifest] = [
        {"name": "config", "configMap": {"name": owner.configmap}},
        {"name": "internal-token", "secret": {"secretName": owner.internal_secret}},
        {"name": "tmp", "emptyDir": {}},
    ]
    ref = keys_ref(owner, spec)
    if ref is not None:
        volumes.append(
            {
                "name": "api-keys",
                "secret": {
                    "secretName": ref.name,
                    "items": [{"key": ref.key, "path": KEYS_FILE_NAME}],
                },
            }
        )
    if spec.storage.mode == "Shared":
        volumes.append(
            {"name": "data", "persistentVolumeClaim": {"claimName": spec.storage.existing_claim}}
        )
    elif spec.storage.mode == "Ephemeral":
        volumes.append({"name": "data", "emptyDir": {"sizeLimit": spec.storage.size}})
    return volumes


def _claim_template(owner: Owner, spec: OllamaServerSpec) -> Manifest:
    claim_spec: Manifest = {
        "accessModes": list(spec.storage.access_modes),
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storage_class_name:
        claim_spec["storageClassName"] = spec.storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "labels": common_labels(owner)},
        "spec": claim_spec,
    }


def pod_template(owner: Owner, spec: OllamaServerSpec, ctx: BuildContext) -> Manifest:
    """The pod every replica runs: ollama on loopback, the sidecar in front."""
    labels = {**spec.pod_labels, **common_labels(owner)}
    tolerations = _dump(spec.tolerations)
    # GPU nodes are usually tainted nvidia.com/gpu (MIG nodes too): tolerate it.
    nvidia = spec.gpu is not None and spec.gpu.vendor == "nvidia"
    if nvidia and NVIDIA_TOLERATION not in tolerations:
        tolerations.append(dict(NVIDIA_TOLERATION))
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "fsGroup": RUN_AS_USER,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_ollama_container(spec), _sidecar_container(owner, spec, ctx)],
        "volumes": _volumes(owner, spec),
    }
    optional: dict[str, Any] = {
        "nodeSelector": dict(spec.node_selector),
        "tolerations": tolerations,
        "affinity": spec.affinity,
        "runtimeClassName": spec.runtime_class_name,
        "priorityClassName": spec.priority_class_name,
        "imagePullSecrets": _dump(spec.image_pull_secrets),
    }
    pod_spec.update({k: v for k, v in optional.items() if v})
    metadata: Manifest = {"labels": labels}
    if spec.pod_annotations:
        metadata["annotations"] = dict(spec.pod_annotations)
    return {"metadata": metadata, "spec": pod_spec}


def build_statefulset(owner: Owner, spec: OllamaServerSpec, ctx: BuildContext) -> Manifest:
    """The StatefulSet: identity per replica, a volume per replica in PerReplica mode."""
    sts_spec: Manifest = {
        "replicas": spec.replicas,
        "serviceName": owner.headless_service,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_labels(owner)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": pod_template(owner, spec, ctx),
    }
    if spec.storage.mode == "PerReplica":
        sts_spec["volumeClaimTemplates"] = [_claim_template(owner, spec)]
        sts_spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": "Retain" if spec.storage.retain_on_delete else "Delete",
            "whenScaled": "Retain",
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(owner, owner.statefulset),
        "spec": sts_spec,
    }


def build_service(owner: Owner, spec: OllamaServerSpec) -> Manifest:
    """The client-facing Service: Ollama's usual port, answered by the sidecar."""
    meta = _meta(owner, owner.service)
    if spec.service.annotations:
        meta["annotations"] = dict(spec.service.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": spec.service.type,
            "selector": selector_labels(owner),
            "ports": [
                {
                    "name": "http",
                    "port": spec.service.port,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_headless_service(owner: Owner) -> Manifest:
    """The StatefulSet's governing Service; also what a ServiceMonitor scrapes (admin port)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, owner.headless_service),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(owner),
            "ports": [
                {"name": "http", "port": PUBLIC_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"},
            ],
        },
    }


def cache_policy(spec: OllamaServerSpec) -> CachePolicy | None:
    """The sidecar's top-level ``cache`` block from ``spec.gateway.cache.shared`` and
    ``.maxBytes``; None when the spec sets neither, so such configs render as before."""
    cache = spec.gateway.cache
    if cache.shared is None and cache.max_bytes is None:
        return None
    fields: dict[str, Any] = {}
    if cache.shared is not None:
        fields["shared"] = cache.shared
    if cache.max_bytes is not None:
        fields["max_bytes"] = cache.max_bytes
    return CachePolicy(**fields)


def sidecar_config(owner: Owner, spec: OllamaServerSpec) -> SidecarConfig:
    """What the sidecar needs to know, as the typed config model."""
    auth = keys_ref(owner, spec)
    # shared and maxBytes travel in the top-level ``cache`` block only (where the sidecar
    # reads them), not a second time under ``gateway.cache``.
    cache = spec.gateway.cache.model_copy(update={"shared": None, "max_bytes": None})
    return SidecarConfig(
        server=owner.name,
        namespace=owner.namespace,
        models=list(spec.models),
        models_prune=spec.models_prune,
        api_keys_file=f"{KEYS_DIR}/{KEYS_FILE_NAME}" if auth is not None else None,
        internal_token_file=f"{TOKEN_DIR}/{TOKEN_KEY}",
        gateway=spec.gateway.model_copy(update={"cache": cache}),
        cache=cache_policy(spec),
        cloud_models=spec.ollama.cloud,
    )


def build_configmap(owner: Owner, spec: OllamaServerSpec) -> Manifest:
    """The sidecar config. Model changes land here only: the pod template stays the same."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(owner, owner.configmap),
        "data": {CONFIG_KEY: sidecar_config(owner, spec).to_yaml()},
    }


def build_internal_secret(owner: Owner, token: str) -> Manifest:
    """The token the controller shows the sidecars' /status. The caller generates it once."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, owner.internal_secret),
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def build_api_keys_secret(owner: Owner, key: str) -> Manifest:
    """The API key Secret generated for a server whose spec names none (auth by default).

    One key, one line, in the same format as a user's keys Secret: more keys may be added
    a line each and the sidecars pick them up. The caller generates the key once; the
    controller never rewrites this Secret, so editing it is safe.
    """
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(owner, owner.api_keys_secret),
        "type": "Opaque",
        "data": {GENERATED_KEYS_KEY: base64.b64encode(f"{key}\n".encode()).decode()},
    }


def build_pdb(owner: Owner, spec: OllamaServerSpec) -> Manifest | None:
    """At most one replica down at a time during voluntary disruptions; none for 1 replica."""
    if spec.replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(owner, owner.pdb),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(owner)}},
    }


def _peers(peers: list[NetworkPolicyPeer]) -> list[Manifest]:
    """Peers as the API server stores them: unset lists left out, but an empty selector
    kept (``podSelector: {}`` means every pod, not no pod)."""
    return [p.model_dump(mode="json", by_alias=True, exclude_defaults=True) for p in peers]


def _policy_port(port: int, peers: list[Manifest] | None) -> Manifest:
    rule: Manifest = {"ports": [{"protocol": "TCP", "port": port}]}
    if peers is not None:
        rule["from"] = peers
    return rule


def build_network_policy(
    owner: Owner, spec: OllamaServerSpec, ctx: BuildContext
) -> Manifest | None:
    """Ingress to the server's pods: the gateway from ``ingress`` peers, the admin port from
    the operator's namespace and ``metricsFrom``; nothing else. None when disabled.

    Two NetworkPolicy rules matter here. A rule without ``from`` admits every source, so an
    empty ``ingress`` leaves the gateway open to all (the Service may be a LoadBalancer), but
    the admin rule is left out altogether when it has no peer: with the pods selected and
    no rule for 9090, nobody reaches /status and /metrics (an empty ``from`` would open it).
    Only Ingress is restricted: the sidecar pulls models from registries anywhere. Kubelet
    probes are not affected, node-to-pod traffic is always allowed.
    """
    policy = spec.network_policy
    if not policy.enabled:
        return None
    admin_peers: list[Manifest] = []
    if ctx.operator_namespace:
        admin_peers.append(
            {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ctx.operator_namespace}}}
        )
    admin_peers.extend(_peers(policy.metrics_from))
    rules = [_policy_port(PUBLIC_PORT, _peers(policy.ingress) or None)]
    if admin_peers:
        rules.append(_policy_port(ADMIN_PORT, admin_peers))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(owner, owner.network_policy),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(owner)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def build_children(owner: Owner, spec: OllamaServerSpec, ctx: BuildContext) -> list[Manifest]:
    """Every child the operator applies on each reconcile, in a safe creation order: the
    NetworkPolicy first, so no pod is ever reachable before it is narrowed.

    The internal Secret is not here: it is created once (see reconcile), never re-applied.
    """
    children: list[Manifest] = []
    network_policy = build_network_policy(owner, spec, ctx)
    if network_policy is not None:
        children.append(network_policy)
    children += [
        build_configmap(owner, spec),
        build_headless_service(owner),
        build_service(owner, spec),
        build_statefulset(owner, spec, ctx),
    ]
    pdb = build_pdb(owner, spec)
    if pdb is not None:
        children.append(pdb)
    return children
