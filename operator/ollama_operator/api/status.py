"""The observed state of an OllamaServer: what ``kubectl get`` and ``describe`` show.

Conditions follow the Kubernetes API conventions (metav1.Condition shape, a
list-map keyed by ``type``, a top-level ``Ready``). ``summary`` holds the
preformatted strings the printer columns need, because a CRD column is one
JSONPath and cannot compute ``readyReplicas/replicas`` itself.

Every condition is made by :func:`condition` (what is true now) and
:func:`stamp` (when it became true, for which generation), so each one has a
reason the schema accepts and the same transition rule. The controller builds
the whole status and passes it through :class:`OllamaServerStatus` before
writing it: a field the CRD schema would prune fails there (and in the unit
test that checks the written status against the generated schema), instead of
making every reconcile write the same patch again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import Field

from .types import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]
ModelPhase = Literal["Pending", "Pulling", "Creating", "Ready", "Failed"]

#: Condition types, in the order ``Ready``'s reason is chosen from.
CONDITION_TYPES = ("Scheduled", "Available", "ModelsReady", "Progressing", "Degraded")


#: metav1.Condition's rules for ``reason`` and the bound on ``message``.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
REASON_MAX = 1024
MESSAGE_MAX = 32768


class Condition(ApiModel):
    """A metav1.Condition."""

    type: str = Field(max_length=316, pattern=r"^[A-Z][A-Za-z0-9]*$")
    status: ConditionStatus
    reason: str = Field(max_length=REASON_MAX, pattern=REASON_PATTERN)
    message: str = Field("", max_length=MESSAGE_MAX)
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

    def to_json(self) -> dict[str, Any]:
        """The status patch: camelCase keys, exactly the fields that were set (a field left
        out stays as stored; the merge patch never nulls what it does not name)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Verdict(TypedDict):
    """A condition as decided, before it is stamped (see :func:`stamp`)."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


_NOT_IN_REASON = re.compile(r"[^A-Za-z0-9_,:]")


def condition(type_: str, status: ConditionStatus, reason: str, message: str = "") -> Verdict:
    """The one way to state a condition. ``reason`` may come from elsewhere (a kubelet's
    waiting reason, the scheduler's): it is made to fit metav1.Condition's pattern, so
    a status write is never refused for it; the message is bounded."""
    fitted = _NOT_IN_REASON.sub("", reason)[:REASON_MAX].rstrip(",:")
    if not fitted or not fitted[0].isalpha():
        fitted = f"R{fitted}"[:REASON_MAX] if fitted else "Unknown"
    return {"type": type_, "status": status, "reason": fitted, "message": message[:MESSAGE_MAX]}


def stamp(
    verdict: Verdict, prior: Mapping[str, Any] | None, *, now: str, generation: int
) -> dict[str, Any]:
    """The stored condition: ``lastTransitionTime`` kept unless ``status`` flipped."""
    flipped = prior is None or prior.get("status") != verdict["status"]
    since = now if flipped or prior is None else str(prior.get("lastTransitionTime") or now)
    return {**verdict, "lastTransitionTime": since, "observedGeneration": generation}
