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

from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.config import JsonDict

from .types import (
    ApiModel,
    DNSName,
    Duration,
    EnvName,
    KeepAlive,
    ModelName,
    Port,
    Quantity,
    ResourceName,
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


class OllamaSettings(
    ApiModel,
    json_schema_extra=_rules(
        (
            "!has(self.env) || self.env.all(e, e.name != 'OLLAMA_HOST')",
            "ollama.env may not set OLLAMA_HOST: Ollama listens on 127.0.0.1 behind the gateway",
        ),
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
        return self


class SecretKeyRef(ApiModel):
    """A key in a Secret of the OllamaServer's namespace."""

    name: DNSName
    key: str = Field("keys", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class AuthSpec(ApiModel):
    """API keys: one per line in the referenced Secret key. No Secret: auth is off."""

    api_keys_secret_ref: SecretKeyRef | None = None


class RateLimitSpec(ApiModel):
    """Token bucket per API key (or per client address when auth is off)."""

    requests_per_minute: int = Field(600, ge=1, le=1_000_000)
    burst: int | None = Field(None, ge=1, le=1_000_000, description="Defaults to a minute's worth.")
    per_key: bool = Field(True, description="One bucket per key; false: one shared bucket.")


class CacheSpec(ApiModel):
    """Response cache for identical non-streaming requests."""

    enabled: bool = False
    ttl: Duration = "5m"
    max_entries: int = Field(1000, ge=1, le=1_000_000)


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
        return self
