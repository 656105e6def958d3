"""What a pod's sidecar answers on ``GET :9090/status``: the agent → controller contract.

The sidecar's model agent produces it (:class:`PodReport`, one :class:`ModelReport`
per declared model) and the controller's poller parses every answer through the
same classes. An answer that does not validate is a failed poll of that pod,
logged once, so nothing downstream (aggregation, the status write) ever sees a
shape it does not expect: the sidecar image is user-settable, and a foreign or
broken one must not stop the controller. Types are strict (no ``"5"`` for 5, no
``true`` for 1); fields the controller does not know are ignored, so a newer
sidecar may add some.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .status import ModelPhase


class _Report(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        strict=True,
    )


class ModelReport(_Report):
    """One declared model in one pod's Ollama."""

    name: str = Field(min_length=1, max_length=512)
    phase: ModelPhase = "Pending"
    progress: int | None = Field(None, ge=0, le=100, description="Pull progress in percent.")
    completed_bytes: int | None = Field(None, ge=0)
    total_bytes: int | None = Field(None, ge=0)
    digest: str | None = Field(None, max_length=256)
    size: int | None = Field(None, ge=0, description="Bytes on disk.")
    loaded: bool | None = None
    message: str | None = Field(None, max_length=32768)
    last_transition_time: str | None = None


class PodReport(_Report):
    """The whole ``/status`` document of one pod."""

    ollama_up: bool = False
    ollama_version: str | None = None
    ready: bool = False
    models: list[ModelReport] = Field(default_factory=list, max_length=1024)

    def to_json(self) -> dict[str, Any]:
        """The document as served (camelCase keys, nulls kept: every field is always there)."""
        return self.model_dump(mode="json", by_alias=True)
