"""The sidecar's configuration file: the contract between controller and pod.

The controller renders one of these into the OllamaServer's ConfigMap
(``sidecar.yaml``); the sidecar loads it at start and reloads it when the
mounted file changes. It repeats the parts of the spec the pod needs (models,
gateway) in the same shape, plus where the pod finds its secrets. It holds no
secret itself: keys and the internal token are files mounted from Secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from .spec import CACHE_MAX_BYTES, CACHE_MIN_BYTES, GatewaySpec, ModelSpec
from .types import ApiModel, Duration, Port

CONFIG_KEY = "sidecar.yaml"
CONFIG_DIR = "/etc/ollama-operator/config"
KEYS_DIR = "/etc/ollama-operator/keys"
TOKEN_DIR = "/etc/ollama-operator/token"  # noqa: S105 - a path, not a secret
TOKEN_KEY = "token"  # noqa: S105 - a key name, not a secret
PUBLIC_PORT = 8080
ADMIN_PORT = 9090
OLLAMA_PORT = 11434


class ClientTimeouts(ApiModel):
    """How long the sidecar waits for a slow or idle client."""

    header: Duration = Field(
        "10s", description="From a connection's first byte (or its opening) to its headers."
    )
    body: Duration = Field("60s", description="To read a whole request body.")
    keep_alive: Duration = Field("75s", description="An idle kept-alive connection.")


class AuthFailureLimit(ApiModel):
    """Failed authentications allowed per client address: a token bucket against guessing."""

    burst: int = Field(10, ge=1, le=10_000, description="Failures allowed in a row.")
    failures_per_minute: int = Field(
        10, ge=1, le=10_000, description="Refill rate: failures allowed per minute after that."
    )


class ClientLimits(ApiModel):
    """What the public port allows its clients: timeouts and open connections."""

    timeouts: ClientTimeouts = Field(default_factory=ClientTimeouts)
    auth_failures: AuthFailureLimit = Field(default_factory=AuthFailureLimit)
    max_connections: int = Field(
        1024, ge=1, description="Open connections on the public port; more are refused."
    )


class CachePolicy(ApiModel):
    """Who shares the response cache, and how much memory it may hold.

    Sidecar-side twin of ``spec.gateway.cache.shared`` and ``.maxBytes``: the
    controller renders this block only when the spec sets either. Absent from the
    file, the safe defaults apply: entries are private to the API key that caused
    them, and the cache holds at most 64 MiB.
    """

    shared: bool = Field(
        False,
        description="One cache for all API keys; false: each key sees only its own entries.",
    )
    max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=CACHE_MIN_BYTES,
        le=CACHE_MAX_BYTES,
        description="Bytes of answers the cache may hold (least recently used go first).",
    )


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
        None,
        description="File with one API key per line; absent only with gateway.auth.mode "
        "Disabled (auth off).",
    )
    internal_token_file: str | None = Field(
        None, description="File with the token the controller presents to /status."
    )
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    clients: ClientLimits | None = Field(
        None, description="Client timeouts and the connection cap; absent: the defaults."
    )
    cache: CachePolicy | None = Field(
        None, description="Cache partitioning and byte bound; absent: per key, 64 MiB."
    )
    cloud_models: Literal["Disabled", "Allowed"] = Field(
        "Disabled",
        description="Requests for cloud models (forwarded by Ollama to ollama.com); "
        "Disabled: refused with 403 (spec.ollama.cloud).",
    )

    @model_validator(mode="after")
    def _auth_off_by_name_only(self) -> SidecarConfig:
        # A config that merely forgets the keys file must not open the gateway: auth off
        # is said by name, as in the spec, or the sidecar refuses to start.
        if self.api_keys_file is None and self.gateway.auth.mode != "Disabled":
            raise ValueError(
                "apiKeysFile is required unless gateway.auth.mode is Disabled "
                "(auth is on by default)"
            )
        return self

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
