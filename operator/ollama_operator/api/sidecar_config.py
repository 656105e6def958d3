"""The sidecar's configuration file: the contract between controller and pod.

The controller renders one of these into the OllamaServer's ConfigMap
(``sidecar.yaml``); the sidecar loads it at start and reloads it when the
mounted file changes. It repeats the parts of the spec the pod needs (models,
gateway) in the same shape, plus where the pod finds its secrets. It holds no
secret itself: keys and the internal token are files mounted from Secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from .spec import GatewaySpec, ModelSpec
from .types import ApiModel, Port

CONFIG_KEY = "sidecar.yaml"
CONFIG_DIR = "/etc/ollama-operator/config"
KEYS_DIR = "/etc/ollama-operator/keys"
TOKEN_DIR = "/etc/ollama-operator/token"  # noqa: S105 - a path, not a secret
TOKEN_KEY = "token"  # noqa: S105 - a key name, not a secret
PUBLIC_PORT = 8080
ADMIN_PORT = 9090
OLLAMA_PORT = 11434


class SidecarConfig(ApiModel):
    """Everything ``ollama-operator sidecar`` needs to run one pod's gateway and model agent."""

    server: str = Field("", description="OllamaServer name, for logs and messages.")
    namespace: str = ""
    upstream: str = Field(f"http://127.0.0.1:{OLLAMA_PORT}", description="Ollama's base URL.")
    listen_host: str = Field("0.0.0.0", description="Address both ports bind to.")  # noqa: S104
    public_port: Port = PUBLIC_PORT
    admin_port: Port = ADMIN_PORT
    models: list[ModelSpec] = Field(default_factory=list)
    models_prune: bool = False
    api_keys_file: str | None = Field(
        None, description="File with one API key per line; absent: auth is off."
    )
    internal_token_file: str | None = Field(
        None, description="File with the token the controller presents to /status."
    )
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)

    def to_yaml(self) -> str:
        """Canonical YAML (camelCase keys, defaults included) for the ConfigMap."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return yaml.safe_dump(data, sort_keys=True)

    @classmethod
    def from_mapping(cls, data: Any) -> SidecarConfig:
        """Validate a parsed YAML/JSON document."""
        return cls.model_validate(data or {})

    @classmethod
    def load(cls, path: str | Path) -> SidecarConfig:
        """Read a YAML or JSON file (JSON is YAML)."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_mapping(yaml.safe_load(fh))
