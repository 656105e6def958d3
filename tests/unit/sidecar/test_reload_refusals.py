"""A config reload never opens the door: empty documents and auth-off reloads are refused."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from ollama_operator.sidecar.app import Sidecar
from tests.support.ollama_emulator import OllamaEmulator

from .sidecar_harness import MODEL, FakeAgent, config, sample

KEY = "sk-reload-0123456789"
TOKEN = "internal-reload-token"
REFUSALS = "ollama_gateway_config_reload_refusals_total"


@dataclass
class Pod:
    sidecar: Sidecar
    agent: FakeAgent
    cfg: Path
    keys: Path
    token: Path

    def write(self, **fields: object) -> None:
        """A full config with the pod's files, these fields overriding."""
        doc = {
            "apiKeysFile": str(self.keys),
            "internalTokenFile": str(self.token),
            "gateway": {"rateLimit": {"requestsPerMinute": 600}},
            **fields,
        }
        self.cfg.write_text(config(self.sidecar.config.upstream, **doc).to_yaml())

    async def statuses(self) -> tuple[int, int, int]:
        """(/api/tags without a key, with the key, /status without the token)."""
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{self.sidecar.public_url}/api/tags") as r:
                anonymous = r.status
            async with client.get(
                f"{self.sidecar.public_url}/api/tags", headers={"X-API-Key": KEY}
            ) as r:
                keyed = r.status
                assert r.headers.get("x-ratelimit-limit") == "600", "the rate limit still holds"
            async with client.get(f"{self.sidecar.admin_url}/status") as r:
                status = r.status
        return anonymous, keyed, status


@pytest.fixture
async def pod(tmp_path: Path) -> AsyncIterator[Pod]:
    keys, token, cfg = tmp_path / "keys", tmp_path / "token", tmp_path / "sidecar.yaml"
    keys.write_text(f"{KEY}\n")
    token.write_text(f"{TOKEN}\n")
    async with OllamaEmulator(installed=[MODEL]) as ollama:
        fields = {
            "apiKeysFile": str(keys),
            "internalTokenFile": str(token),
            "gateway": {"rateLimit": {"requestsPerMinute": 600}},
        }
        cfg.write_text(config(ollama.url, **fields).to_yaml())
        agent = FakeAgent([MODEL])
        sidecar = Sidecar(
            config(ollama.url, **fields),
            config_path=str(cfg),
            agent=agent,
            ports=(0, 0),
            host="127.0.0.1",
        )
        await sidecar.start()
        try:
            yield Pod(sidecar, agent, cfg, keys, token)
        finally:
            await sidecar.stop()


LOCKED = (401, 200, 401)


@pytest.mark.parametrize(
    "document", ["", "\n", "# only a comment\n", "null\n", "~\n", "{}\n", "[]\n", "''\n"]
)
async def test_an_empty_document_is_refused_and_the_last_config_kept(
    pod: Pod, caplog: pytest.LogCaptureFixture, document: str
) -> None:
    assert await pod.statuses() == LOCKED
    pod.cfg.write_text(document)
    with caplog.at_level(logging.INFO):
        assert await pod.sidecar.watcher.check() == [str(pod.cfg)]
        assert await pod.sidecar.watcher.check() == [], "one event, one refusal"
    assert await pod.statuses() == LOCKED
    assert pod.agent.updates == [], "the declared models were not emptied"
    assert pod.sidecar.gateway.settings.declared_models == {MODEL}
    assert sample(pod.sidecar.metrics, REFUSALS, reason="empty") == 1
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].levelno == logging.ERROR
    assert KEY not in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("dropped", "reason"), [("apiKeysFile", "auth_off"), ("internalTokenFile", "token_off")]
)
async def test_a_reload_cannot_turn_auth_or_the_token_off(
    pod: Pod, caplog: pytest.LogCaptureFixture, dropped: str, reason: str
) -> None:
    pod.write(**{dropped: None})
    with caplog.at_level(logging.INFO):
        await pod.sidecar.watcher.check()
    assert await pod.statuses() == LOCKED
    assert sample(pod.sidecar.metrics, REFUSALS, reason=reason) == 1
    assert "takes a restart" in caplog.text


async def test_a_truncate_then_write_editor_never_opens_a_window(pod: Pod) -> None:
    pod.cfg.write_text("")
    await pod.sidecar.watcher.check()
    assert await pod.statuses() == LOCKED
    pod.write(models=[{"name": MODEL}, {"name": "qwen:0.5b"}])
    await pod.sidecar.watcher.check()
    assert await pod.statuses() == LOCKED
    assert pod.agent.updates == [([MODEL, "qwen:0.5b"], False)]
    assert sample(pod.sidecar.metrics, REFUSALS, reason="empty") == 1
    assert sample(pod.sidecar.metrics, "ollama_gateway_reloads_total", file="config", result="ok")


async def test_keys_may_move_to_another_file_on_a_reload(pod: Pod, tmp_path: Path) -> None:
    moved = tmp_path / "other-keys"
    moved.write_text(f"{KEY}\n")
    pod.write(apiKeysFile=str(moved))
    await pod.sidecar.watcher.check()
    assert await pod.statuses() == LOCKED
    assert pod.sidecar.config.api_keys_file == str(moved)


async def test_a_reload_that_forgets_the_keys_file_is_refused(
    pod: Pod, caplog: pytest.LogCaptureFixture
) -> None:
    """A config naming no keys file and not saying Disabled is invalid, not auth off."""
    doc = config(pod.sidecar.config.upstream, apiKeysFile=str(pod.keys)).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    del doc["apiKeysFile"]
    pod.cfg.write_text(json.dumps(doc))
    with caplog.at_level(logging.INFO):
        await pod.sidecar.watcher.check()
    assert await pod.statuses() == LOCKED
    assert sample(pod.sidecar.metrics, REFUSALS, reason="invalid") == 1
    assert "apiKeysFile is required" in caplog.text
