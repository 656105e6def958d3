"""Constrained scalar types shared by the resource and the sidecar config.

Each type carries two things that must agree: the Python validation pydantic
runs, and the OpenAPI keywords the CRD generator copies into the schema so the
API server rejects the same values first. Keeping both in one ``Annotated``
alias is what stops them drifting apart.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

#: Kubernetes resource.Quantity, as controller-gen emits it but without a minus
#: sign: no resource amount in an OllamaServer can be negative.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

#: Go-style duration as the sidecar accepts it: ``500ms``, ``30s``, ``5m``, ``1h30m``.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

#: Ollama's keep_alive: a duration, a number of seconds, or ``-1`` (forever).
KEEP_ALIVE_PATTERN = r"^(-1|[0-9]+|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$"

#: An Ollama model reference: ``[host[:port]/][namespace/]model[:tag]``.
MODEL_NAME_PATTERN = (
    r"^([a-zA-Z0-9][a-zA-Z0-9.-]*(:[0-9]{1,5})?/)?"
    r"([a-zA-Z0-9][a-zA-Z0-9._-]*/)?"
    r"[a-zA-Z0-9][a-zA-Z0-9._-]*"
    r"(:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})?$"
)

#: A cloud model's reference: its tag is ``cloud`` or ends in ``-cloud`` (``glm-4.6:cloud``,
#: ``gpt-oss:20b-cloud``). Ollama runs none of these itself: it forwards them to ollama.com.
CLOUD_MODEL_PATTERN = r"(?i):([^:/]*-)?cloud$"
_CLOUD_MODEL = re.compile(CLOUD_MODEL_PATTERN)


def is_cloud_model(name: str) -> bool:
    """Whether ``name`` is a cloud model (see :data:`CLOUD_MODEL_PATTERN`)."""
    return _CLOUD_MODEL.search(name.strip()) is not None


#: A DNS-1123 subdomain (names of Secrets, claims, classes).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

#: An extended resource name such as ``nvidia.com/gpu`` or ``nvidia.com/mig-1g.10gb``.
RESOURCE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"

#: An environment variable name as Kubernetes accepts it (C identifier style).
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def _quantity_schema(schema: dict[str, Any]) -> None:
    schema.clear()
    schema.update(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "maxLength": 64,
            "x-kubernetes-int-or-string": True,
        }
    )


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, bool):
        raise ValueError("a quantity must be a number or a string such as '8Gi'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a quantity must not be negative")
        return value
    if len(value) > 64 or not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as '500m', '8Gi' or '20G'")
    return value


class _QuantityMarker:
    """Marks a field as a Kubernetes quantity (int-or-string) for the schema generator."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        _quantity_schema(schema)
        return schema


Quantity = Annotated[int | str, AfterValidator(_check_quantity), _QuantityMarker()]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)]
KeepAlive = Annotated[str, StringConstraints(pattern=KEEP_ALIVE_PATTERN, max_length=32)]
ModelName = Annotated[
    str, StringConstraints(pattern=MODEL_NAME_PATTERN, min_length=1, max_length=256)
]
DNSName = Annotated[
    str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253)
]
ResourceName = Annotated[str, StringConstraints(pattern=RESOURCE_NAME_PATTERN, max_length=253)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN, min_length=1, max_length=256)]
Port = Annotated[int, Field(ge=1, le=65535)]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")


def parse_duration(value: str) -> float:
    """Seconds in a Go-style duration (``1h30m``, ``250ms``); raises ValueError otherwise."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration such as '500ms', '30s' or '5m'")
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))


class ApiModel(BaseModel):
    """Base of every model serialised to Kubernetes: camelCase on the wire, strict keys.

    ``extra='forbid'`` makes a misspelt field an error that names it, instead of
    a setting silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )
