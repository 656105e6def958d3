"""The public vocabulary of ollama-operator: the OllamaServer resource and the sidecar config.

Controller and sidecar both import from here and never from each other.
"""

from .sidecar_config import SidecarConfig
from .spec import (
    API_GROUP,
    API_VERSION,
    DEFAULT_IMAGE,
    KIND,
    PLURAL,
    GatewaySpec,
    GPUSpec,
    ModelCreate,
    ModelSpec,
    OllamaServerSpec,
    StorageSpec,
)
from .status import Condition, ModelStatus, OllamaServerStatus
from .types import parse_duration

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "DEFAULT_IMAGE",
    "KIND",
    "PLURAL",
    "Condition",
    "GPUSpec",
    "GatewaySpec",
    "ModelCreate",
    "ModelSpec",
    "ModelStatus",
    "OllamaServerSpec",
    "OllamaServerStatus",
    "SidecarConfig",
    "StorageSpec",
    "parse_duration",
]
