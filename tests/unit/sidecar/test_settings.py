"""Translating the config file into the units the request path uses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ollama_operator.api.sidecar_config import SidecarConfig
from ollama_operator.sidecar.settings import GatewaySettings, RateLimitSettings, needs_restart

from .sidecar_harness import config


def test_durations_become_seconds_and_names_are_normalised() -> None:
    cfg = config(
        "http://127.0.0.1:11434/",
        models=[{"name": "Llama3.2"}, {"name": "registry.ollama.ai/library/qwen:1b"}],
        apiKeysFile="/keys",
        gateway={
            "rateLimit": {"requestsPerMinute": 30, "perKey": False},
            "cache": {"enabled": True, "ttl": "1m30s", "maxEntries": 5},
            "timeouts": {"connect": "250ms", "firstByte": "2m", "idle": "1h"},
            "retries": {"attempts": 4, "backoff": "50ms"},
            "circuitBreaker": {"failureThreshold": 7, "openFor": "10s"},
            "maxConcurrent": 3,
            "maxQueue": 0,
            "maxBodyBytes": 4096,
        },
    )
    s = GatewaySettings.from_config(cfg)
    assert s.upstream == "http://127.0.0.1:11434"
    assert s.declared_models == {"llama3.2:latest", "qwen:1b"}
    assert s.api_keys_file == "/keys"
    assert s.rate_limit == RateLimitSettings(30, None, False)
    assert (s.cache_enabled, s.cache_ttl, s.cache_max_entries) == (True, 90.0, 5)
    assert (s.connect_timeout, s.first_byte_timeout, s.idle_timeout) == (0.25, 120.0, 3600.0)
    assert (s.retry_attempts, s.retry_backoff) == (4, 0.05)
    assert (s.breaker_threshold, s.breaker_open_for) == (7, 10.0)
    assert (s.max_concurrent, s.max_queue, s.max_body_bytes) == (3, 0, 4096)


def test_defaults_match_the_resource_defaults() -> None:
    assert GatewaySettings.from_config(config("http://127.0.0.1:11434")) == GatewaySettings(
        declared_models=frozenset({"llama3.2:1b"})
    )


def test_fields_that_need_a_restart() -> None:
    old = config("http://a:1")
    assert needs_restart(old, config("http://a:1", gateway={"maxQueue": 1})) == []
    assert needs_restart(old, config("http://b:1", publicPort=8081)) == ["upstream", "public_port"]


def test_a_config_without_keys_must_say_auth_is_disabled() -> None:
    """Forgetting apiKeysFile does not open the gateway: auth off is said by name."""
    with pytest.raises(ValidationError, match="apiKeysFile is required unless"):
        SidecarConfig.from_mapping({"upstream": "http://127.0.0.1:11434"})
    with pytest.raises(ValidationError, match="apiKeysFile is required unless"):
        SidecarConfig.from_mapping({"gateway": {"auth": {"mode": "APIKeys"}}})
    off = SidecarConfig.from_mapping({"gateway": {"auth": {"mode": "Disabled"}}})
    assert GatewaySettings.from_config(off).api_keys_file is None
    on = SidecarConfig.from_mapping({"apiKeysFile": "/keys"})
    assert GatewaySettings.from_config(on).api_keys_file == "/keys"
