"""The gateway's settings, derived once from the sidecar config.

The config file speaks the resource's language (durations as ``"5m"``, model
references as written); the request path wants seconds as floats and model
names in the form it compares. :class:`GatewaySettings` is that translation,
computed when the file is loaded or reloaded, never per request;
:class:`ConnectionSettings` is the same for the HTTP servers of both ports. It also says
which changes a running gateway can take without a restart (everything but
the addresses it listens on and the upstream URL). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.sidecar_config import CachePolicy, ClientLimits, SidecarConfig
from ..api.types import parse_duration
from ..ollama import normalize_name


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """``gateway.rateLimit``."""

    requests_per_minute: int
    burst: int | None
    per_key: bool


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the request path reads, in the units it uses."""

    upstream: str = "http://127.0.0.1:11434"
    declared_models: frozenset[str] = frozenset()
    api_keys_file: str | None = None
    rate_limit: RateLimitSettings | None = None
    cache_enabled: bool = False
    cache_ttl: float = 300.0
    cache_max_entries: int = 1000
    #: One cache for every API key (``cache.shared``); False: entries are per key.
    cache_shared: bool = False
    cache_max_bytes: int = 64 * 1024 * 1024
    max_concurrent: int = 8
    max_queue: int = 64
    max_body_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 5.0
    first_byte_timeout: float = 300.0
    idle_timeout: float = 120.0
    retry_attempts: int = 2
    retry_backoff: float = 0.2
    breaker_threshold: int = 5
    breaker_open_for: float = 30.0
    body_timeout: float = 60.0
    auth_failures_per_minute: int = 10
    auth_failures_burst: int = 10
    #: Requests for cloud models (``spec.ollama.cloud: Allowed``); False: refused with 403.
    cloud_allowed: bool = False

    @classmethod
    def from_config(cls, config: SidecarConfig) -> GatewaySettings:
        """Translate a validated sidecar config."""
        gw = config.gateway
        rate = gw.rate_limit
        clients = config.clients or ClientLimits()
        policy = config.cache or CachePolicy()
        return cls(
            upstream=config.upstream.rstrip("/"),
            declared_models=frozenset(normalize_name(m.name) for m in config.models),
            api_keys_file=config.api_keys_file,
            cloud_allowed=config.cloud_models == "Allowed",
            rate_limit=(
                None
                if rate is None
                else RateLimitSettings(rate.requests_per_minute, rate.burst, rate.per_key)
            ),
            cache_enabled=gw.cache.enabled,
            cache_ttl=parse_duration(gw.cache.ttl),
            cache_max_entries=gw.cache.max_entries,
            cache_shared=policy.shared,
            cache_max_bytes=policy.max_bytes,
            max_concurrent=gw.max_concurrent,
            max_queue=gw.max_queue,
            max_body_bytes=gw.max_body_bytes,
            connect_timeout=parse_duration(gw.timeouts.connect),
            first_byte_timeout=parse_duration(gw.timeouts.first_byte),
            idle_timeout=parse_duration(gw.timeouts.idle),
            retry_attempts=gw.retries.attempts,
            retry_backoff=parse_duration(gw.retries.backoff),
            breaker_threshold=gw.circuit_breaker.failure_threshold,
            breaker_open_for=parse_duration(gw.circuit_breaker.open_for),
            body_timeout=parse_duration(clients.timeouts.body),
            auth_failures_per_minute=clients.auth_failures.failures_per_minute,
            auth_failures_burst=clients.auth_failures.burst,
        )


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """How a port's server treats connections (``clients`` in the config), in seconds."""

    header_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    #: Open connections allowed; None: no cap (the admin port, whose probes must get in).
    max_connections: int | None = None

    @classmethod
    def from_config(cls, config: SidecarConfig, *, capped: bool) -> ConnectionSettings:
        """The public port's settings (``capped``), or the admin port's (same timeouts)."""
        clients = config.clients or ClientLimits()
        return cls(
            header_timeout=parse_duration(clients.timeouts.header),
            keepalive_timeout=parse_duration(clients.timeouts.keep_alive),
            max_connections=clients.max_connections if capped else None,
        )


def needs_restart(old: SidecarConfig, new: SidecarConfig) -> list[str]:
    """Fields that changed but only take effect after a restart (the sockets and upstream)."""
    fields = ("upstream", "listen_host", "public_port", "admin_port")
    return [f for f in fields if getattr(old, f) != getattr(new, f)]
