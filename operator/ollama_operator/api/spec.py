"""The desired state of an OllamaServer: what a platform team writes.

These pydantic models are the single source of truth for the resource. The
CRD schema in ``crds/`` is generated from them (see :mod:`.crd`), the
controller parses every object through them before building anything, and the
sidecar reads the parts it needs (models, gateway) through the same classes.
Cross-field rules are written twice on purpose, next to each other: as a CEL
rule the API server enforces (``x-kubernetes-validations``) and as a pydantic
validator, so a spec the API server would refuse is refused here too, with
the same message.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator
from pydantic.config import JsonDict

from .types import (
    CLOUD_MODEL_PATTERN,
    ApiModel,
    DNSName,
    Duration,
    EnvName,
    KeepAlive,
    ModelName,
    Port,
    Quantity,
    ResourceName,
    is_cloud_model,
)

API_GROUP = "ollama.operator.dev"
API_VERSION = "v1alpha1"
KIND = "OllamaServer"
PLURAL = "ollamaservers"
SINGULAR = "ollamaserver"
SHORT_NAMES = ("ollama", "olls")

#: The Ollama release the operator is tested with; the default image tag.
OLLAMA_VERSION = "0.11.4"
DEFAULT_IMAGE = f"ollama/ollama:{OLLAMA_VERSION}"

#: Pod labels the operator owns: a user's podLabels may not override them.
RESERVED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")


def _rules(*rules: tuple[str, str]) -> JsonDict:
    """JSON-schema extra carrying CEL rules as ``(rule, message)`` pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def _obj(**extra: Any) -> JsonDict:
    """An object-typed field the API server defaults to ``{}`` (so nested defaults apply)."""
    return {"default": {}, **extra}


PRESERVE: JsonDict = {"x-kubernetes-preserve-unknown-fields": True, "type": "object"}


class ModelCreate(ApiModel):
    """Derive a model with Ollama's create API instead of pulling it."""

    from_: ModelName = Field(alias="from", description="Base model to derive from.")
    system: str | None = Field(None, max_length=65536, description="System prompt.")
    template: str | None = Field(None, max_length=65536, description="Prompt template.")
    parameters: dict[str, str] = Field(
        default_factory=dict,
        description="Model parameters (e.g. temperature: '0.2'); numbers are sent as numbers.",
    )


class ModelSpec(ApiModel):
    """One declared model: pulled (or created) into every replica by the sidecar."""

    name: ModelName = Field(description="Ollama model reference, e.g. llama3.2:1b.")
    insecure: bool = Field(False, description="Allow pulling over plain HTTP.")
    create: ModelCreate | None = Field(None, description="Create the model instead of pulling.")
    preload: bool = Field(False, description="Load into memory once present.")
    keep_alive: KeepAlive | None = Field(None, description="How long a loaded model stays.")
    required: bool = Field(True, description="Readiness waits for this model.")
    pull_policy: Literal["IfNotPresent", "Always"] = Field(
        "IfNotPresent", description="Always re-pulls on an interval to follow moving tags."
    )


class GPUSpec(ApiModel):
    """GPUs for the ollama container."""

    count: int = Field(1, ge=1, le=64, description="GPUs per replica.")
    vendor: Literal["nvidia", "amd"] = Field("nvidia", description="Selects resource and image.")
    resource_name: ResourceName | None = Field(
        None, description="Override the extended resource, e.g. nvidia.com/mig-1g.10gb."
    )


_NON_NEGATIVE = "!has(self.{0}) || self.{0}.all(k, !string(self.{0}[k]).startsWith('-'))"


class ResourceRequirements(
    ApiModel,
    json_schema_extra=_rules(
        (_NON_NEGATIVE.format("requests"), "resources.requests must not be negative"),
        (_NON_NEGATIVE.format("limits"), "resources.limits must not be negative"),
    ),
):
    """Standard container resources (requests and limits)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=16)
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=16)


AccessMode = Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]


def _default_access_modes() -> list[AccessMode]:
    return ["ReadWriteOnce"]


class StorageSpec(
    ApiModel,
    json_schema_extra=_rules(
        (
            "!has(self.mode) || self.mode != 'Shared' || has(self.existingClaim)",
            "storage.existingClaim is required when storage.mode is Shared",
        ),
        (
            "!has(self.existingClaim) || (has(self.mode) && self.mode == 'Shared')",
            "storage.existingClaim is only used when storage.mode is Shared",
        ),
        (
            "!has(self.size) || !string(self.size).startsWith('-')",
            "storage.size must not be negative",
        ),
    ),
):
    """Where models live: one volume per replica, a shared claim, or nothing persistent."""

    mode: Literal["PerReplica", "Shared", "Ephemeral"] = Field(
        "PerReplica", description="PerReplica claims a volume per pod; Shared mounts one RWX claim."
    )
    size: Quantity = Field("20Gi", description="Claim size (PerReplica) or emptyDir limit.")
    storage_class_name: DNSName | None = None
    access_modes: list[AccessMode] = Field(
        default_factory=_default_access_modes, min_length=1, max_length=3
    )
    existing_claim: DNSName | None = Field(None, description="Claim to mount in Shared mode.")
    retain_on_delete: bool = Field(False, description="Keep PerReplica claims on delete.")

    @model_validator(mode="after")
    def _shared_needs_claim(self) -> StorageSpec:
        if self.mode == "Shared" and self.existing_claim is None:
            raise ValueError("storage.existingClaim is required when storage.mode is Shared")
        if self.existing_claim is not None and self.mode != "Shared":
            raise ValueError("storage.existingClaim is only used when storage.mode is Shared")
        return self


class EnvVar(ApiModel):
    """An environment variable for the ollama container (Kubernetes EnvVar shape)."""

    name: EnvName
    value: str | None = None
    value_from: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE)


_NO_CLOUD_ENV_MESSAGE = "ollama.env may not set OLLAMA_NO_CLOUD: use ollama.cloud"


class OllamaSettings(
    ApiModel,
    json_schema_extra=_rules(
        (
            "!has(self.env) || self.env.all(e, e.name != 'OLLAMA_HOST')",
            "ollama.env may not set OLLAMA_HOST: Ollama listens on 127.0.0.1 behind the gateway",
        ),
        ("!has(self.env) || self.env.all(e, e.name != 'OLLAMA_NO_CLOUD')", _NO_CLOUD_ENV_MESSAGE),
    ),
):
    """Typed Ollama server knobs, rendered as ``OLLAMA_*`` environment variables."""

    keep_alive: KeepAlive | None = Field(None, description="OLLAMA_KEEP_ALIVE")
    num_parallel: int | None = Field(None, ge=1, le=256, description="OLLAMA_NUM_PARALLEL")
    max_loaded_models: int | None = Field(None, ge=1, le=64, description="OLLAMA_MAX_LOADED_MODELS")
    max_queue: int | None = Field(None, ge=1, le=100000, description="OLLAMA_MAX_QUEUE")
    context_length: int | None = Field(
        None, ge=256, le=1048576, description="OLLAMA_CONTEXT_LENGTH"
    )
    flash_attention: bool | None = Field(None, description="OLLAMA_FLASH_ATTENTION")
    debug: bool = Field(False, description="OLLAMA_DEBUG")
    cloud: Literal["Disabled", "Allowed"] = Field(
        "Disabled",
        description="Cloud models (a tag of cloud or *-cloud), which Ollama forwards to "
        "ollama.com. Disabled (default): OLLAMA_NO_CLOUD=1, none may be declared, and the "
        "gateway refuses requests for them.",
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=128)
    env_from: list[dict[str, Any]] = Field(
        default_factory=list, max_length=32, json_schema_extra={"items": PRESERVE}
    )

    @model_validator(mode="after")
    def _no_host_override(self) -> OllamaSettings:
        if any(e.name == "OLLAMA_HOST" for e in self.env):
            raise ValueError(
                "ollama.env may not set OLLAMA_HOST: Ollama listens on 127.0.0.1 behind the gateway"
            )
        if any(e.name == "OLLAMA_NO_CLOUD" for e in self.env):
            raise ValueError(_NO_CLOUD_ENV_MESSAGE)
        return self


class SecretKeyRef(ApiModel):
    """A key in a Secret of the OllamaServer's namespace."""

    name: DNSName
    key: str = Field("keys", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


#: The key of the generated API key Secret (``<name>-api-keys``) that holds the keys.
GENERATED_KEYS_KEY = "keys"

_AUTH_DISABLED_MESSAGE = (
    "gateway.auth.apiKeysSecretRef may not be set when gateway.auth.mode is Disabled"
)


class AuthSpec(
    ApiModel,
    json_schema_extra=_rules(
        ("!(self.mode == 'Disabled' && has(self.apiKeysSecretRef))", _AUTH_DISABLED_MESSAGE),
    ),
):
    """Who may use the gateway: API keys, unless mode says Disabled."""

    # APIKeys (the default) with no apiKeysSecretRef: the controller generates a random key
    # once into the Secret <name>-api-keys (key "keys"), owned by the server and never
    # rotated by a reconcile. With apiKeysSecretRef: one key per line in that Secret key.
    # Disabled: anyone who reaches the Service may use it; `kubectl get ollama` shows it
    # and the controller posts a Warning Event.

    mode: Literal["APIKeys", "Disabled"] = Field(
        "APIKeys", description="APIKeys (default): a key is required; Disabled: no auth."
    )
    api_keys_secret_ref: SecretKeyRef | None = Field(
        None, description="Your own keys; unset: the operator generates <name>-api-keys."
    )

    @property
    def generated(self) -> bool:
        """Whether the keys come from the Secret the controller generates (<name>-api-keys)."""
        return self.mode != "Disabled" and self.api_keys_secret_ref is None

    @model_validator(mode="after")
    def _disabled_has_no_keys(self) -> AuthSpec:
        if self.mode == "Disabled" and self.api_keys_secret_ref is not None:
            raise ValueError(_AUTH_DISABLED_MESSAGE)
        return self


class RateLimitSpec(ApiModel):
    """Token bucket per API key (or per client address when auth is off)."""

    requests_per_minute: int = Field(600, ge=1, le=1_000_000)
    burst: int | None = Field(None, ge=1, le=1_000_000, description="Defaults to a minute's worth.")
    per_key: bool = Field(True, description="One bucket per key; false: one shared bucket.")


#: Bounds of ``spec.gateway.cache.maxBytes``, the same as the sidecar's ``cache.maxBytes``.
CACHE_MIN_BYTES = 1024
CACHE_MAX_BYTES = 1024 * 1024 * 1024


class CacheSpec(ApiModel):
    """Response cache for identical non-streaming requests."""

    enabled: bool = False
    ttl: Duration = "5m"
    max_entries: int = Field(1000, ge=1, le=1_000_000)
    # No schema defaults for the two below: the API server would write them into every
    # object, and the controller renders the sidecar's ``cache`` block only when set.
    shared: bool | None = Field(
        None,
        description=(
            "One cache for all API keys. Unset or false: each key sees only the answers to"
            " its own requests, so no key can probe which prompts another sent or re-roll"
            " the answer another gets."
        ),
    )
    max_bytes: int | None = Field(
        None,
        ge=CACHE_MIN_BYTES,
        le=CACHE_MAX_BYTES,
        description="Bytes of answers the cache may hold; unset: 67108864 (64 MiB).",
    )


class TimeoutsSpec(ApiModel):
    """Upstream timeouts: connect, first byte of the answer, silence between chunks."""

    connect: Duration = "5s"
    first_byte: Duration = "300s"
    idle: Duration = "120s"


class RetrySpec(ApiModel):
    """Retries before the first byte reached the client (never after)."""

    attempts: int = Field(2, ge=0, le=10, description="Extra attempts after the first.")
    backoff: Duration = "200ms"


class CircuitBreakerSpec(ApiModel):
    """Fail fast after repeated upstream failures, probe again after a pause."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    open_for: Duration = "30s"


class GatewaySpec(ApiModel):
    """The sidecar in front of Ollama: auth, limits, queue, cache, retries."""

    image: str | None = Field(None, max_length=512, description="Defaults to the operator's.")
    auth: AuthSpec = Field(default_factory=AuthSpec, json_schema_extra=_obj())
    rate_limit: RateLimitSpec | None = Field(None, description="Absent: no rate limit.")
    cache: CacheSpec = Field(default_factory=CacheSpec, json_schema_extra=_obj())
    max_concurrent: int = Field(8, ge=1, le=4096, description="Requests in flight to Ollama.")
    max_queue: int = Field(64, ge=0, le=100000, description="Requests waiting for a slot.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec, json_schema_extra=_obj())
    retries: RetrySpec = Field(default_factory=RetrySpec, json_schema_extra=_obj())
    circuit_breaker: CircuitBreakerSpec = Field(
        default_factory=CircuitBreakerSpec, json_schema_extra=_obj()
    )
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, json_schema_extra=_obj()
    )


class ServiceSpec(ApiModel):
    """The Service clients use: a normal Ollama endpoint."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: Port = 11434
    annotations: dict[str, str] = Field(default_factory=dict)


class ServiceMonitorSpec(ApiModel):
    """A prometheus-operator ServiceMonitor for the sidecars' /metrics."""

    enabled: bool = False
    interval: Duration = "30s"
    labels: dict[str, str] = Field(default_factory=dict)


class MonitoringSpec(ApiModel):
    """Prometheus integration."""

    service_monitor: ServiceMonitorSpec = Field(
        default_factory=ServiceMonitorSpec, json_schema_extra=_obj()
    )


#: A label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
#: A label value: empty, or at most 63 characters starting and ending alphanumeric.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"

LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN, max_length=317)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8") from None
    if "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR such as 10.0.0.0/8")
    return value


CIDR = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_cidr)]


class LabelSelectorRequirement(
    ApiModel,
    json_schema_extra=_rules(
        (
            "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
            " : !has(self.values) || size(self.values) == 0",
            "matchExpressions[].values must be non-empty for In and NotIn, "
            "and empty for Exists and DoesNotExist",
        ),
    ),
):
    """One ``matchExpressions`` entry of a Kubernetes label selector."""

    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                "matchExpressions[].values must be non-empty for In and NotIn, "
                "and empty for Exists and DoesNotExist"
            )
        return self


_LABEL_KEYS_RULE = (
    "!has(self.matchLabels) || self.matchLabels.all(k, k.size() <= 317 && "
    f"k.matches('{LABEL_KEY_PATTERN}'))"
)


class LabelSelector(
    ApiModel,
    json_schema_extra=_rules((_LABEL_KEYS_RULE, "matchLabels keys must be label keys")),
):
    """A Kubernetes label selector; empty selects everything."""

    match_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=32)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _label_keys(self) -> LabelSelector:
        bad = [k for k in self.match_labels if not re.fullmatch(LABEL_KEY_PATTERN, k)]
        if bad:
            raise ValueError(f"matchLabels keys must be label keys: {', '.join(sorted(bad))}")
        return self


class IPBlock(
    ApiModel,
    json_schema_extra=_rules(
        ("isCIDR(self.cidr)", "ipBlock.cidr must be a CIDR such as 10.0.0.0/8"),
        (
            "!has(self.except) || self.except.all(e, isCIDR(e) && cidr(self.cidr).containsCIDR(e))",
            "ipBlock.except entries must be CIDRs inside ipBlock.cidr",
        ),
    ),
):
    """Addresses outside the cluster's pods (load balancers, nodes, VPN ranges)."""

    cidr: CIDR
    except_: list[CIDR] = Field(default_factory=list, alias="except", max_length=32)

    @model_validator(mode="after")
    def _except_inside(self) -> IPBlock:
        outer = ipaddress.ip_network(self.cidr, strict=False)
        for entry in self.except_:
            inner = ipaddress.ip_network(entry, strict=False)
            if inner.version != outer.version or not inner.subnet_of(outer):  # type: ignore[arg-type]
                raise ValueError("ipBlock.except entries must be CIDRs inside ipBlock.cidr")
        return self


_PEER_MESSAGE = "a peer is either ipBlock alone, or namespaceSelector and/or podSelector"


class NetworkPolicyPeer(
    ApiModel,
    json_schema_extra=_rules(
        (
            "has(self.ipBlock) ? !has(self.namespaceSelector) && !has(self.podSelector)"
            " : has(self.namespaceSelector) || has(self.podSelector)",
            _PEER_MESSAGE,
        ),
    ),
):
    """A standard NetworkPolicyPeer: pods (by namespace and/or pod labels) or an ipBlock.

    Both selectors set: pods matching ``podSelector`` in namespaces matching
    ``namespaceSelector``; ``namespaceSelector: {}`` alone: every pod in every namespace.
    """

    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPolicyPeer:
        selectors = self.namespace_selector is not None or self.pod_selector is not None
        if (self.ip_block is not None) == selectors:
            raise ValueError(_PEER_MESSAGE)
        return self


class NetworkPolicySpec(ApiModel):
    """Who may reach the pods: a NetworkPolicy the operator renders per server.

    On by default: Ollama listens on 127.0.0.1, so the gateway (8080) and its admin
    port (9090: /status, /metrics) are the only open ports, and the policy narrows who
    reaches each. Egress is not restricted (models are pulled from registries).
    """

    enabled: bool = Field(True, description="Render the NetworkPolicy; false removes it.")
    ingress: list[NetworkPolicyPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Who may reach the gateway; empty: everyone (the gateway is not narrowed).",
    )
    metrics_from: list[NetworkPolicyPeer] = Field(
        default_factory=list,
        max_length=32,
        description="Who may reach the admin port (/metrics, /status) besides the operator, "
        "e.g. the monitoring namespace.",
    )


class Toleration(ApiModel):
    """A Kubernetes Toleration."""

    key: str | None = Field(None, max_length=316)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class LocalObjectReference(ApiModel):
    """A name in the same namespace."""

    name: DNSName


_CLOUD_MODELS_MESSAGE = (
    "models[].name may not be a cloud model (a tag of cloud or *-cloud: Ollama forwards it "
    "to ollama.com) unless ollama.cloud is Allowed"
)

_RESERVED_LABEL_RULE = (
    "!has(self.podLabels) || ("
    + " && ".join(f"!('{label}' in self.podLabels)" for label in RESERVED_LABELS)
    + ")"
)


class OllamaServerSpec(
    ApiModel,
    json_schema_extra=_rules(
        (
            _RESERVED_LABEL_RULE,
            "podLabels may not set app.kubernetes.io/name or app.kubernetes.io/instance: "
            "the operator selects pods by them",
        ),
        (
            "!has(self.models) || self.models.all(m, !has(m.create) || m.create.from != m.name)",
            "models[].create.from must name another model than models[].name",
        ),
        (
            "!has(self.models) || (has(self.ollama) && has(self.ollama.cloud)"
            " && self.ollama.cloud == 'Allowed')"
            f" || self.models.all(m, !m.name.matches('{CLOUD_MODEL_PATTERN}'))",
            _CLOUD_MODELS_MESSAGE,
        ),
    ),
):
    """Desired state of one fleet of identical Ollama servers."""

    image: str | None = Field(
        None, max_length=512, description=f"Defaults to {DEFAULT_IMAGE} (-rocm for AMD GPUs)."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list, max_length=16)
    replicas: int = Field(1, ge=0, le=1000)
    models: list[ModelSpec] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    models_prune: bool = Field(False, description="Delete models that are not declared.")
    gpu: GPUSpec | None = None
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements, json_schema_extra=_obj()
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    affinity: dict[str, Any] | None = Field(None, json_schema_extra=PRESERVE)
    runtime_class_name: DNSName | None = None
    priority_class_name: DNSName | None = None
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    storage: StorageSpec = Field(default_factory=StorageSpec, json_schema_extra=_obj())
    ollama: OllamaSettings = Field(default_factory=OllamaSettings, json_schema_extra=_obj())
    gateway: GatewaySpec = Field(default_factory=GatewaySpec, json_schema_extra=_obj())
    service: ServiceSpec = Field(default_factory=ServiceSpec, json_schema_extra=_obj())
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec, json_schema_extra=_obj())
    network_policy: NetworkPolicySpec = Field(
        default_factory=NetworkPolicySpec, json_schema_extra=_obj()
    )

    @model_validator(mode="after")
    def _cross_field(self) -> OllamaServerSpec:
        reserved = [label for label in RESERVED_LABELS if label in self.pod_labels]
        if reserved:
            raise ValueError(
                "podLabels may not set app.kubernetes.io/name or app.kubernetes.io/instance: "
                "the operator selects pods by them"
            )
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models[].name must be unique; duplicated: {', '.join(dupes)}")
        for m in self.models:
            if m.create is not None and m.create.from_ == m.name:
                raise ValueError("models[].create.from must name another model than models[].name")
        if self.ollama.cloud != "Allowed" and any(is_cloud_model(m.name) for m in self.models):
            raise ValueError(_CLOUD_MODELS_MESSAGE)
        return self
