"""The observed state of an OllamaServer: what ``kubectl get`` and ``describe`` show.

Conditions follow the Kubernetes API conventions (metav1.Condition shape, a
list-map keyed by ``type``, a top-level ``Ready``). ``summary`` holds the
preformatted strings the printer columns need, because a CRD column is one
JSONPath and cannot compute ``readyReplicas/replicas`` itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .types import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]
ModelPhase = Literal["Pending", "Pulling", "Creating", "Ready", "Failed"]

#: Condition types, in the order ``Ready``'s reason is chosen from.
CONDITION_TYPES = ("Scheduled", "Available", "ModelsReady", "Progressing", "Degraded")


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$")
    status: ConditionStatus
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = Field("", max_length=32768)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(None, ge=0)


class ModelStatus(ApiModel):
    """One declared model across all replicas."""

    name: str
    phase: ModelPhase = "Pending"
    progress: int | None = Field(None, ge=0, le=100, description="Pull progress in percent.")
    completed_bytes: int | None = Field(None, ge=0)
    total_bytes: int | None = Field(None, ge=0)
    digest: str | None = None
    size: int | None = Field(None, ge=0, description="Bytes on disk.")
    ready_replicas: int = Field(0, ge=0)
    loaded: bool | None = None
    message: str | None = None
    last_transition_time: str | None = Field(None, json_schema_extra={"format": "date-time"})


class StatusSummary(ApiModel):
    """Preformatted values for printer columns."""

    replicas: str = "0/0"
    models: str = "0/0"
    gpu: str = "-"


class OllamaServerStatus(ApiModel):
    """Observed state, written only by the controller."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    replicas: int = 0
    ready_replicas: int = 0
    selector: str | None = None
    endpoint: str | None = None
    models: list[ModelStatus] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    summary: StatusSummary = Field(default_factory=StatusSummary)
